/**
 * What the web pages show, gathered from the registry core for one caller: the repositories it
 * may pull (searched and ranked as `docker search` ranks them), a repository's tags with sizes and
 * platforms, an image's layers, config, platform children and referrers. No HTML here.
 */
import type { Caller } from '../auth/service.js';
import { fail } from '../core/errors.js';
import type { Digest, Reference } from '../core/grammar.js';
import type { ImageConfig } from '../core/manifests.js';
import { escape } from './html.js';
import type { Registry } from '../core/registry.js';
import type { RepositorySummary } from '../core/repositories.js';
import type { RepositoryInfo } from '../storage/ports.js';

/** Repositories per page of the list. */
export const REPOSITORIES_PER_PAGE = 25;
/** Tags per page of a repository (each costs a manifest read and a config read). */
export const TAGS_PER_PAGE = 20;
/** Entries shown of one list in a config (labels, environment) and characters of one value: pages stay small. */
const MAX_ENTRIES = 100;
const MAX_VALUE = 2000;

/** Orders of the repository list; `match` is the `docker search` ranking (then last push). */
export const SORTS = ['match', 'name', 'pushed', 'size'] as const;
export type Sort = (typeof SORTS)[number];

/** A repository in the list: its counts and bytes, and its description. */
export type ListedRepository = RepositorySummary & { description?: string };

/** One page of something, 1-based. */
export interface Paged<T> {
  items: T[];
  page: number;
  pages: number;
  total: number;
}

/** The repositories `caller` may pull that match `term`, in `sort` order, page `page`. */
export async function repositoryList(registry: Registry, caller: Caller, term: string, sort: Sort, page: number): Promise<Paged<ListedRepository>> {
  const { results } = await registry.search.search(term, (repository) => caller.mayPull(repository), Number.MAX_SAFE_INTEGER, 1);
  if (sort === 'name') results.sort((a, b) => a.name.localeCompare(b.name));
  if (sort === 'pushed') results.sort((a, b) => (b.pushedAt ?? 0) - (a.pushedAt ?? 0));
  // Sizes cost a partition read per repository: all of them only to sort by size.
  const summarize = (info: RepositoryInfo) => registry.repositories.summary(info).then((s) => ({ ...s, description: info.description }));
  if (sort === 'size') {
    const all = await Promise.all(results.map(summarize));
    all.sort((a, b) => b.bytes - a.bytes);
    return paged(all, page, REPOSITORIES_PER_PAGE);
  }
  const slice = paged(results, page, REPOSITORIES_PER_PAGE);
  return { ...slice, items: await Promise.all(slice.items.map(summarize)) };
}

function paged<T>(all: T[], page: number, size: number): Paged<T> {
  const pages = Math.max(1, Math.ceil(all.length / size));
  const current = Math.min(Math.max(1, page), pages);
  return { items: all.slice((current - 1) * size, current * size), page: current, pages, total: all.length };
}

/**
 * The catalog entry of a repository `caller` may pull.
 * @throws RegistryError NAME_UNKNOWN also for one it may not pull (its existence stays hidden).
 */
export async function visibleRepository(registry: Registry, caller: Caller, name: string): Promise<RepositoryInfo> {
  const info = await registry.repositories.info(name);
  if (!(await caller.mayPull(info))) throw fail('NAME_UNKNOWN', `repository ${name} not known to registry`, { name });
  return info;
}

/**
 * How much pusher-chosen text one page may show, counted as sent (HTML-escaped: `"` costs 6), so
 * that a page stays under 100 KB whatever was pushed; text beyond it is cut with `…`. Lists are
 * also cut at {@link MAX_ENTRIES} and values at {@link MAX_VALUE} characters.
 */
export class TextBudget {
  constructor(private left = 60_000) {}

  /** `value`, clipped to {@link MAX_VALUE} characters and to what is left of the budget. */
  take(value: string): string {
    const clipped = value.length > MAX_VALUE ? `${value.slice(0, MAX_VALUE)}…` : value;
    const cost = escape(clipped).length;
    if (cost <= this.left) {
      this.left -= cost;
      return clipped;
    }
    let out = '';
    for (const char of clipped) {
      const charCost = escape(char).length;
      if (charCost > this.left) break;
      this.left -= charCost;
      out += char;
    }
    this.left = 0;
    return `${out}…`;
  }

  /** Key/value pairs of a record, at most {@link MAX_ENTRIES}. */
  entries(record: unknown): [string, string][] {
    if (typeof record !== 'object' || record === null || Array.isArray(record)) return [];
    return Object.entries(record)
      .slice(0, MAX_ENTRIES)
      .map(([key, value]) => [this.take(key), this.take(typeof value === 'string' ? value : JSON.stringify(value))]);
  }

  /** The strings of a config list (Entrypoint, Cmd, Env; a string alone counts as one), at most {@link MAX_ENTRIES}. */
  strings(value: unknown): string[] {
    if (typeof value === 'string') return [this.take(value)];
    return Array.isArray(value) ? value.slice(0, MAX_ENTRIES).map((v) => this.take(String(v))) : [];
  }

  /** A config string field; undefined when it is no string. */
  text(value: unknown): string | undefined {
    return typeof value === 'string' ? this.take(value) : undefined;
  }
}

/** A descriptor as pages show it. */
export interface ShownDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  /** `os/architecture[/variant]`, for index children. */
  platform?: string;
  artifactType?: string;
  annotations: [string, string][];
}

/** A tag and the image it names. */
export interface TagRow {
  tag: string;
  digest: Digest;
  mediaType: string;
  /** Bytes of config and layers (an index: of all its children's), as stored compressed. */
  size: number;
  /** Platforms of an index, at most {@link MAX_PLATFORMS}, and how many more it has. */
  platforms: string[];
  morePlatforms: number;
  /** The image config's `created`, when it has one. */
  created?: string;
  pushedAt: number;
}

/** Platforms named per tag in the tag list. */
const MAX_PLATFORMS = 12;

/** The tags of a repository, most recently pushed first, page `page`. */
export async function tagList(registry: Registry, name: string, page: number): Promise<Paged<TagRow>> {
  const tags = (await registry.repositories.tags(name)).sort((a, b) => b.updatedAt - a.updatedAt || a.tag.localeCompare(b.tag));
  const slice = paged(tags, page, TAGS_PER_PAGE);
  const budget = new TextBudget();
  const items = await Promise.all(
    slice.items.map(async (tag) => {
      const image = await imageOf(registry, name, { kind: 'digest', digest: tag.digest }, budget);
      const platforms = image.children.filter((c) => c.platform);
      const children = await Promise.all(platforms.map((c) => imageOf(registry, name, { kind: 'digest', digest: c.digest }, budget)));
      const first = image.configDescriptor ? image : children[0];
      return {
        tag: tag.tag,
        digest: tag.digest,
        mediaType: tag.mediaType,
        size: image.children.length > 0 ? children.reduce((sum, child) => sum + child.size, 0) : image.size,
        platforms: platforms.slice(0, MAX_PLATFORMS).map((c) => c.platform!),
        morePlatforms: Math.max(0, platforms.length - MAX_PLATFORMS),
        created: first?.facts?.created,
        pushedAt: tag.updatedAt,
      };
    }),
  );
  return { ...slice, items };
}

/** What an image config says, as pages show it (image-spec "Image Configuration"). */
export interface ConfigFacts {
  created?: string;
  /** `os/architecture`. */
  platform?: string;
  entrypoint: string[];
  command: string[];
  workingDir?: string;
  user?: string;
  exposedPorts: string[];
  environment: string[];
  labels: [string, string][];
}

/** An image manifest or image index, read for display. */
export interface ImageView {
  digest: Digest;
  mediaType: string;
  artifactType?: string;
  /** Bytes of config and layers (an image); of the index document itself (an index). */
  size: number;
  /** At most {@link MAX_ROWS} (the count of all is `layerCount`). */
  layers: ShownDescriptor[];
  layerCount: number;
  configDescriptor?: ShownDescriptor;
  /** The config's facts, when it is an image config the registry holds. */
  facts?: ConfigFacts;
  /** Platform children and other manifests of an index, at most {@link MAX_ROWS} (children without a platform: attestations and the like). */
  children: ShownDescriptor[];
  childCount: number;
  annotations: [string, string][];
  subject?: Digest;
}

/** Rows of one table of an image page (layers, index children, referrers). */
export const MAX_ROWS = 100;

/**
 * An image or index of `name`, its pusher-chosen text drawn from `budget` (one per page).
 * @throws RegistryError MANIFEST_UNKNOWN
 */
export async function imageOf(registry: Registry, name: string, reference: Reference, budget = new TextBudget()): Promise<ImageView> {
  const manifest = await registry.manifests.get(name, reference);
  // The registry accepted these bytes as a manifest or index (core/manifest.ts): the shapes hold.
  const document = JSON.parse(manifest.bytes.toString('utf8')) as RawManifest;
  const layers = document.layers ?? [];
  const children = document.manifests ?? [];
  const configDescriptor = document.config && shown(document.config, budget);
  const config = document.config && (await registry.manifests.config(name, document.config));
  return {
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    artifactType: document.artifactType && budget.take(document.artifactType),
    size: document.config ? [document.config, ...layers].reduce((sum, d) => sum + d.size, 0) : manifest.size,
    layers: layers.slice(0, MAX_ROWS).map((d) => shown(d, budget)),
    layerCount: layers.length,
    configDescriptor,
    facts: config && factsOf(config, budget),
    children: children.slice(0, MAX_ROWS).map((d) => shown(d, budget)),
    childCount: children.length,
    annotations: budget.entries(document.annotations),
    subject: document.subject?.digest,
  };
}

function factsOf(image: ImageConfig, budget: TextBudget): ConfigFacts {
  const config = typeof image.config === 'object' && image.config !== null ? image.config : {};
  const platform = [budget.text(image.os), budget.text(image.architecture)].filter(Boolean).join('/');
  return {
    created: budget.text(image.created),
    platform: platform || undefined,
    entrypoint: budget.strings(config.Entrypoint),
    command: budget.strings(config.Cmd),
    workingDir: budget.text(config.WorkingDir) || undefined,
    user: budget.text(config.User) || undefined,
    exposedPorts: budget.entries(config.ExposedPorts).map(([port]) => port),
    environment: budget.strings(config.Env),
    labels: budget.entries(config.Labels),
  };
}

/** The referrers of `digest` (signatures, SBOMs, attestations) with their artifact types, at most {@link MAX_ROWS}. */
export async function referrersOf(registry: Registry, name: string, digest: Digest, budget: TextBudget): Promise<{ referrers: ShownDescriptor[]; count: number }> {
  const index = JSON.parse((await registry.manifests.referrers(name, digest)).toString('utf8')) as RawManifest;
  const all = index.manifests ?? [];
  return { referrers: all.slice(0, MAX_ROWS).map((d) => shown(d, budget)), count: all.length };
}

interface RawDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

interface RawManifest {
  artifactType?: string;
  config?: RawDescriptor;
  layers?: RawDescriptor[];
  manifests?: RawDescriptor[];
  subject?: RawDescriptor;
  annotations?: Record<string, string>;
}

function shown(descriptor: RawDescriptor, budget: TextBudget): ShownDescriptor {
  const { platform } = descriptor;
  // `unknown/unknown` marks the attestation manifests buildx adds to an index: no platform.
  const named = platform && !(platform.os === 'unknown' && platform.architecture === 'unknown');
  return {
    mediaType: budget.take(descriptor.mediaType),
    digest: descriptor.digest,
    size: descriptor.size,
    platform: named ? budget.take([platform.os, platform.architecture, platform.variant].filter(Boolean).join('/')) : undefined,
    artifactType: descriptor.artifactType && budget.take(descriptor.artifactType),
    annotations: budget.entries(descriptor.annotations),
  };
}
