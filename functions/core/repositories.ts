/**
 * Repository management for administrators (`npx berth repo ls | tag ls | rm | du`, and the
 * `/v2/_berth/…` admin routes): listings with stored sizes, and deletes of a tag, a manifest or a
 * whole repository. Deletes remove metadata only; the bytes no repository links any more are
 * freed by the next garbage collection (core/gc.ts), which alone may decide that nothing else
 * still needs them.
 */
import { fail } from './errors.js';
import type { Digest, Reference } from './grammar.js';
import { immutableTag, type ImmutableTags } from './immutable.js';
import type { Manifests } from './manifests.js';
import type { Visibility } from '../auth/accounts.js';
import type { ImmutableRule, MetadataStore, RepositoryInfo, RetentionRule, TagRecord } from '../storage/ports.js';

/** Longest description an admin can set (characters); pushed ones are clipped to it (core/manifests.ts). */
export const MAX_DESCRIPTION = 300;

/** One repository as `repo ls` shows it. */
export interface RepositorySummary {
  name: string;
  visibility: RepositoryInfo['visibility'];
  tags: number;
  manifests: number;
  /** Bytes of the blobs the repository links, each blob once (manifests stored inline not counted). */
  bytes: number;
  /** Epoch ms of the last push, when known. */
  pushedAt?: number;
}

/** `du`: the registry's stored blob bytes, each blob once, and per repository. */
export interface DiskUsage {
  /** Bytes of all blob items (shared blobs once), including blobs no repository links any more. */
  total: number;
  blobs: number;
  /** Bytes of blob items no repository links: what the next collection frees (after the grace period). */
  unlinked: number;
  repositories: { name: string; bytes: number }[];
}

/** Listings and deletes across repositories. */
export class Repositories {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly manifests: Manifests,
    private readonly immutable: ImmutableTags,
  ) {}

  /** Every repository of the catalog, with its tags, manifests and stored bytes (one partition read each). */
  async list(): Promise<RepositorySummary[]> {
    const summaries: RepositorySummary[] = [];
    for (const info of await this.catalog()) summaries.push(await this.summary(info));
    return summaries;
  }

  /** One repository's counts and stored bytes (one partition read). */
  async summary(info: RepositoryInfo): Promise<RepositorySummary> {
    const contents = await this.metadata.readRepository(info.name);
    return {
      name: info.name,
      visibility: info.visibility,
      tags: contents.tags.length,
      manifests: contents.manifests.length,
      bytes: contents.links.reduce((sum, link) => sum + link.size, 0),
      pushedAt: info.pushedAt,
    };
  }

  /**
   * The catalog entry of `repository`.
   * @throws RegistryError NAME_UNKNOWN
   */
  async info(repository: string): Promise<RepositoryInfo> {
    const info = await this.metadata.getRepository(repository);
    if (!info) throw unknownRepository(repository);
    return info;
  }

  /** Sets who may pull `repository` without an account (creates its catalog entry if needed). */
  async setVisibility(repository: string, visibility: Visibility): Promise<void> {
    await this.metadata.setVisibility(repository, visibility);
  }

  /**
   * Sets the description `docker search` and the web interface show.
   * @throws RegistryError UNSUPPORTED (400) above {@link MAX_DESCRIPTION} characters.
   */
  async describe(repository: string, text: string): Promise<void> {
    if (text.length > MAX_DESCRIPTION) throw fail('UNSUPPORTED', `a description has at most ${MAX_DESCRIPTION} characters`, null, { status: 400 });
    await this.metadata.setDescription(repository, text);
  }

  /** The immutability and retention rules of the registry (core/immutable.ts, core/retention.ts). */
  async rules(): Promise<{ immutable: ImmutableRule[]; retention: RetentionRule[] }> {
    const [immutable, retention] = await Promise.all([this.metadata.listImmutableRules(), this.metadata.listRetentionRules()]);
    return { immutable, retention };
  }

  /**
   * The tags of `repository` with their digests and push times.
   * @throws RegistryError NAME_UNKNOWN
   */
  async tags(repository: string): Promise<TagRecord[]> {
    await this.known(repository);
    return (await this.metadata.readRepository(repository)).tags;
  }

  /** Stored bytes: all blob items once, the unlinked ones, and each repository's linked blobs. */
  async usage(): Promise<DiskUsage> {
    const linked = new Set<Digest>();
    const repositories = [];
    for (const info of await this.catalog()) {
      const { links } = await this.metadata.readRepository(info.name);
      links.forEach((link) => linked.add(link.digest));
      repositories.push({ name: info.name, bytes: links.reduce((sum, link) => sum + link.size, 0) });
    }
    let total = 0;
    let unlinked = 0;
    let blobs = 0;
    let last: string | undefined;
    do {
      const page = await this.metadata.scanBlobs(1000, last);
      for (const blob of page.items) {
        blobs++;
        total += blob.size;
        if (!linked.has(blob.digest)) unlinked += blob.size;
      }
      last = page.last;
    } while (last);
    return { total, blobs, unlinked, repositories };
  }

  /**
   * Deletes a tag (the tag only), a manifest by digest (with every tag that names it and its
   * referrer entry, as the distribution spec's DELETE does), or with no reference the whole
   * repository: tags, manifests, referrer entries, blob links and its catalog entry (it leaves the
   * catalog and search). Returns what was deleted.
   * @throws RegistryError NAME_UNKNOWN, MANIFEST_UNKNOWN, DENIED (an immutable tag would go)
   */
  async remove(repository: string, reference?: Reference): Promise<{ tags: number; manifests: number; links: number }> {
    await this.known(repository);
    if (reference) {
      const before = (await this.metadata.readRepository(repository)).tags.length;
      await this.manifests.delete(repository, reference);
      const tags = before - (await this.metadata.readRepository(repository)).tags.length;
      return { tags, manifests: reference.kind === 'digest' ? 1 : 0, links: 0 };
    }
    const contents = await this.metadata.readRepository(repository);
    const ruleOf = await this.immutable.of(repository);
    for (const tag of contents.tags) {
      const rule = ruleOf(tag.tag);
      if (rule) throw immutableTag(repository, tag.tag, rule, 'deleted');
    }
    // Tags first, links last: every moment in between leaves a consistent (smaller) repository.
    for (const tag of contents.tags) await this.metadata.deleteTag(repository, tag.tag);
    for (const referrer of contents.referrers) await this.metadata.deleteReferrer(repository, referrer.subject, referrer.digest);
    for (const manifest of contents.manifests) await this.metadata.deleteManifest(repository, manifest.digest);
    for (const link of contents.links) await this.metadata.deleteBlobLink(repository, link.digest);
    await this.metadata.deleteRepository(repository);
    return { tags: contents.tags.length, manifests: contents.manifests.length, links: contents.links.length };
  }

  private async known(repository: string): Promise<void> {
    await this.info(repository);
  }

  private async catalog(): Promise<RepositoryInfo[]> {
    const all: RepositoryInfo[] = [];
    let last: string | undefined;
    do {
      const page = await this.metadata.listRepositories(1000, last);
      all.push(...page.items);
      last = page.last;
    } while (last);
    return all;
  }
}

function unknownRepository(repository: string) {
  return fail('NAME_UNKNOWN', `repository ${repository} not known to registry`, { name: repository });
}
