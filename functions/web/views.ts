/**
 * What the web pages show, gathered from the registry core for one caller: the repositories it
 * may pull (searched and ranked as `docker search` ranks them), a repository's tags with sizes and
 * platforms, an image's layers, config, platform children and referrers. No HTML here.
 */
import type { Caller } from '../auth/service.js';
import { fail } from '../core/errors.js';
import type { Digest, Reference } from '../core/grammar.js';
import type { ImageConfig } from '../core/manifests.js';
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
  platforms: string[];
  /** The image config's `created`, when it has one. */
  created?: string;
  pushedAt: number;
}

/** The tags of a repository, most recently pushed first, page `page`. */
export async function tagList(registry: Registry, name: string, page: number): Promise<Paged<TagRow>> {
  const tags = (await registry.repositories.tags(name)).sort((a, b) => b.updatedAt - a.updatedAt || a.tag.localeCompare(b.tag));
  const slice = paged(tags, page, TAGS_PER_PAGE);
  const items = await Promise.all(
    slice.items.map(async (tag) => {
      const image = await imageOf(registry, name, { kind: 'digest', digest: tag.digest });
      const children = await Promise.all(image.children.filter((c) => c.platform).map((c) => imageOf(registry, name, { kind: 'digest', digest: c.digest })));
      const first = image.config ? image : children[0];
      return {
        tag: tag.tag,
        digest: tag.digest,
        mediaType: tag.mediaType,
        size: image.children.length > 0 ? children.reduce((sum, child) => sum + child.size, 0) : image.size,
        platforms: image.children.flatMap((c) => (c.platform ? [c.platform] : [])),
        created: text(first?.config?.created),
        pushedAt: tag.updatedAt,
      };
    }),
  );
  return { ...slice, items };
}

/** An image manifest or image index, read for display. */
export interface ImageView {
  digest: Digest;
  mediaType: string;
  artifactType?: string;
  /** Bytes of config and layers (an image); of the index document itself (an index). */
  size: number;
  layers: ShownDescriptor[];
  configDescriptor?: ShownDescriptor;
  config?: ImageConfig;
  /** Platform children and other manifests of an index (children without a platform: attestations and the like). */
  children: ShownDescriptor[];
  annotations: [string, string][];
  subject?: Digest;
}

/** @throws RegistryError MANIFEST_UNKNOWN */
export async function imageOf(registry: Registry, name: string, reference: Reference): Promise<ImageView> {
  const manifest = await registry.manifests.get(name, reference);
  // The registry accepted these bytes as a manifest or index (core/manifest.ts): the shapes hold.
  const document = JSON.parse(manifest.bytes.toString('utf8')) as RawManifest;
  const layers = (document.layers ?? []).map(shown);
  const configDescriptor = document.config && shown(document.config);
  const view: ImageView = {
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    artifactType: document.artifactType,
    size: configDescriptor ? [configDescriptor, ...layers].reduce((sum, d) => sum + d.size, 0) : manifest.size,
    layers,
    configDescriptor,
    children: (document.manifests ?? []).map(shown),
    annotations: entries(document.annotations),
    subject: document.subject?.digest,
  };
  if (document.config) view.config = await registry.manifests.config(name, document.config);
  return view;
}

/** The referrers of `digest` (signatures, SBOMs, attestations) with their artifact types. */
export async function referrersOf(registry: Registry, name: string, digest: Digest): Promise<ShownDescriptor[]> {
  const index = JSON.parse((await registry.manifests.referrers(name, digest)).toString('utf8')) as RawManifest;
  return (index.manifests ?? []).map(shown);
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

function shown(descriptor: RawDescriptor): ShownDescriptor {
  const { platform } = descriptor;
  // `unknown/unknown` marks the attestation manifests buildx adds to an index: no platform.
  const named = platform && !(platform.os === 'unknown' && platform.architecture === 'unknown');
  return {
    mediaType: descriptor.mediaType,
    digest: descriptor.digest,
    size: descriptor.size,
    platform: named ? [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/') : undefined,
    artifactType: descriptor.artifactType,
    annotations: entries(descriptor.annotations),
  };
}

/** Key/value pairs of a record, at most {@link MAX_ENTRIES}, values clipped to {@link MAX_VALUE} characters. */
export function entries(record: unknown): [string, string][] {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return [];
  return Object.entries(record)
    .slice(0, MAX_ENTRIES)
    .map(([key, value]) => [clip(key), clip(typeof value === 'string' ? value : JSON.stringify(value))]);
}

/** The strings of a config list (Entrypoint, Cmd, Env), at most {@link MAX_ENTRIES}, clipped. */
export function strings(value: unknown): string[] {
  if (typeof value === 'string') return [clip(value)];
  return Array.isArray(value) ? value.slice(0, MAX_ENTRIES).map((v) => clip(String(v))) : [];
}

/** A config string field, clipped; undefined when it is no string. */
export function text(value: unknown): string | undefined {
  return typeof value === 'string' ? clip(value) : undefined;
}

function clip(value: string): string {
  return value.length > MAX_VALUE ? `${value.slice(0, MAX_VALUE)}…` : value;
}
