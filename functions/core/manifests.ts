/**
 * Manifests, tags and referrers (distribution-spec end-3 GET/HEAD, end-7 PUT, end-8 tags,
 * end-9 DELETE, end-12 referrers). Manifests are verified against their digest, validated,
 * checked against the blobs and manifests of their repository, and stored byte for byte.
 * Write order: large bytes → manifest item → referrer → tag, so that whatever a reader can
 * reach is complete.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { BlobLinks } from './blobs.js';
import { fail } from './errors.js';
import { immutableTag, type ImmutableTags } from './immutable.js';
import { MAX_DESCRIPTION } from './repositories.js';
import { digestAlgorithm, type Digest, type Reference } from './grammar.js';
import { DESCRIPTION_KEY, IMAGE_CONFIG_TYPES, MediaTypes, parseManifest, type ParsedManifest } from './manifest.js';
import type { BlobStore, Descriptor, ManifestRecord, MetadataStore, Page, TagRecord } from '../storage/ports.js';

/** DynamoDB items hold at most 400 KB; larger manifests go to the blob store. */
const INLINE_MANIFEST_BYTES = 256 * 1024;
/** Manifests up to this size are copied into their tags, so a GET by tag is one read. */
const TAG_COPY_BYTES = 4096;
/** Most distinct blobs and manifests one manifest may reference (images have tens of layers). */
const MAX_REFERENCES = 5000;
/** Reads in flight while checking a manifest's references. */
const REFERENCE_CHECKS_AT_ONCE = 32;
/** Image configs larger than this are not read for a description label. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** Referrer annotations beyond this are dropped from the referrers list (the item limit again). */
const MAX_REFERRER_ANNOTATIONS = 64 * 1024;

/** A manifest as served: its bytes with digest and media type. */
export interface ManifestContent {
  digest: Digest;
  mediaType: string;
  size: number;
  bytes: Buffer;
}

/**
 * The parts of an image config (image-spec "Image Configuration") that people read; any field
 * may be missing or of another type, since the registry stores configs as pushed.
 */
export interface ImageConfig {
  created?: unknown;
  architecture?: unknown;
  os?: unknown;
  config?: { Entrypoint?: unknown; Cmd?: unknown; Env?: unknown; ExposedPorts?: unknown; Labels?: Record<string, unknown>; WorkingDir?: unknown; User?: unknown };
}

/** Manifest push, pull and delete, tags and referrers of one registry. */
export class Manifests {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly links: BlobLinks,
    private readonly immutable: ImmutableTags,
  ) {}

  /**
   * Stores a manifest under its digest and tags it with the tag reference, if any, and with
   * `tags` (the `?tag=` parameters of a push by digest, distribution-spec v1.2 draft).
   * @returns its digest and subject (for `OCI-Subject`).
   * @throws RegistryError DIGEST_INVALID (digest reference that does not match), MANIFEST_INVALID,
   *   MANIFEST_BLOB_UNKNOWN (a referenced blob or child manifest is not in the repository),
   *   DENIED (an immutable tag would move: core/immutable.ts).
   */
  async put(
    repository: string,
    reference: Reference,
    contentType: string | undefined,
    bytes: Buffer,
    tags: readonly string[] = [],
  ): Promise<{ digest: Digest; subject?: Digest }> {
    const algorithm = reference.kind === 'digest' ? digestAlgorithm(reference.digest) : 'sha256';
    const digest: Digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (reference.kind === 'digest' && reference.digest !== digest) {
      throw fail('DIGEST_INVALID', `manifest digest is ${digest}, not ${reference.digest}`, { expected: reference.digest, actual: digest });
    }
    const parsed = parseManifest(bytes, contentType);
    const tagged = reference.kind === 'tag' ? [reference.tag, ...tags] : tags;
    const ruleOf = tagged.length > 0 ? await this.immutable.of(repository) : () => undefined;
    for (const tag of tagged) {
      const rule = ruleOf(tag);
      const current = rule && (await this.metadata.getTag(repository, tag));
      if (rule && current && current.digest !== digest) throw immutableTag(repository, tag, rule, 'moved to another digest');
    }
    await this.claimReferences(repository, parsed);
    const now = Date.now();
    const record = await this.write(repository, digest, parsed, bytes, now);
    // Claimed again after the write: a collection that missed this manifest loses, or took a reference away.
    try {
      await this.claimReferences(repository, parsed);
    } catch (error) {
      await this.metadata.deleteManifest(repository, digest);
      throw error;
    }
    if (parsed.subject) await this.metadata.putReferrer(repository, parsed.subject, referrerDescriptor(record, parsed));
    for (const tag of tagged) {
      const item = tagOf(record, tag, now);
      const rule = ruleOf(tag);
      // Conditional for immutable tags: of two first pushes of one tag, the second one loses.
      if (!rule) await this.metadata.putTag(item);
      else if (!(await this.metadata.putTagIfUnmoved(item))) throw immutableTag(repository, tag, rule, 'moved to another digest');
    }
    // Likewise for the manifest itself, which the tags now name (it is untagged until they are written).
    if (tagged.length > 0 && !(await this.metadata.claimManifest(repository, digest, Date.now()))) {
      for (const tag of tagged) await this.metadata.deleteTag(repository, tag);
      throw fail('MANIFEST_BLOB_UNKNOWN', `manifest ${digest} was removed by garbage collection while it was pushed; push the image again`, { digest });
    }
    await this.metadata.touchRepository(repository, now, await this.description(repository, parsed));
    return { digest, subject: parsed.subject };
  }

  /**
   * Stores a manifest the pull-through cache fetched (core/cache.ts) and, with `tag`, tags it
   * `tag.name` only while that tag is still as the cache read it (`replacing`; undefined: absent):
   * a write that lost to another refresh or to a delete leaves theirs. The caller has checked
   * `digest` against the bytes; unlike a push, the blobs and child manifests it names need not be
   * here: the cache fetches them when they are pulled. Immutability rules do not apply: a cached
   * tag follows its upstream.
   * @throws RegistryError MANIFEST_INVALID when the bytes are no manifest.
   */
  async cache(
    repository: string,
    digest: Digest,
    contentType: string | undefined,
    bytes: Buffer,
    tag?: { name: string; replacing: TagRecord | undefined },
  ): Promise<ManifestContent> {
    const parsed = parseManifest(bytes, contentType);
    const now = Date.now();
    const record = await this.write(repository, digest, parsed, bytes, now);
    if (parsed.subject) await this.metadata.putReferrer(repository, parsed.subject, referrerDescriptor(record, parsed));
    if (tag) await this.metadata.replaceTag(tagOf(record, tag.name, now), tag.replacing);
    await this.metadata.touchRepository(repository, now);
    return { digest, mediaType: record.mediaType, size: record.size, bytes };
  }

  /** Writes the manifest item, its bytes first when they are too large for it. */
  private async write(repository: string, digest: Digest, parsed: ParsedManifest, bytes: Buffer, now: number): Promise<ManifestRecord> {
    const record: ManifestRecord = { repository, digest, mediaType: parsed.mediaType, size: bytes.length, subject: parsed.subject, createdAt: now };
    if (bytes.length > INLINE_MANIFEST_BYTES) {
      // A key of its own per write, never shared or rewritten: garbage collection may then delete
      // any old object no manifest item names, with no race against a push of the same digest.
      record.key = `manifests/${digest.replace(':', '/')}/${randomUUID()}`;
      await this.store.put(record.key, bytes);
    } else {
      record.bytes = bytes;
    }
    await this.metadata.putManifest(record);
    return record;
  }

  /** The image's description: its manifest annotation, else its config label; undefined when it has none. */
  private async description(repository: string, parsed: ParsedManifest): Promise<string | undefined> {
    const annotated = parsed.annotations?.[DESCRIPTION_KEY];
    if (annotated !== undefined) return clipDescription(annotated);
    const label = parsed.config && (await this.config(repository, parsed.config))?.config?.Labels?.[DESCRIPTION_KEY];
    return typeof label === 'string' ? clipDescription(label) : undefined;
  }

  /**
   * The image config JSON `descriptor` names (image-spec "Image Configuration"), read when it is
   * linked to `repository`, of a config media type and at most 1 MiB as stored (the stored size,
   * not the descriptor's claim, decides); undefined otherwise or when it is no JSON object.
   */
  async config(repository: string, descriptor: { mediaType: string; digest: Digest }): Promise<ImageConfig | undefined> {
    if (!IMAGE_CONFIG_TYPES.has(descriptor.mediaType)) return undefined;
    const blob = await this.metadata.getBlobLink(repository, descriptor.digest);
    if (!blob || blob.size > MAX_CONFIG_BYTES) return undefined;
    try {
      const image: unknown = JSON.parse((await this.store.read(blob.key)).toString('utf8'));
      return typeof image === 'object' && image !== null ? (image as ImageConfig) : undefined;
    } catch {
      return undefined; // a config that is not JSON describes nothing; the push itself is fine
    }
  }

  /**
   * Digest, media type and size, read from the tag alone for a tag (HEAD), with the bytes of a
   * small manifest. @throws MANIFEST_UNKNOWN
   */
  async stat(repository: string, reference: Reference): Promise<Omit<ManifestContent, 'bytes'> & { bytes?: Uint8Array }> {
    if (reference.kind === 'tag') {
      const tag = await this.metadata.getTag(repository, reference.tag);
      if (!tag) throw unknownManifest(reference);
      return tag;
    }
    return this.record(repository, reference);
  }

  /** @throws RegistryError MANIFEST_UNKNOWN */
  async get(repository: string, reference: Reference): Promise<ManifestContent> {
    let digest: Digest;
    if (reference.kind === 'tag') {
      const tag = await this.stat(repository, reference);
      if (tag.bytes) return { digest: tag.digest, mediaType: tag.mediaType, size: tag.size, bytes: Buffer.from(tag.bytes) };
      digest = tag.digest;
    } else {
      digest = reference.digest;
    }
    const record = await this.record(repository, { kind: 'digest', digest });
    const bytes = record.bytes ? Buffer.from(record.bytes) : await this.store.read(record.key!);
    return { digest, mediaType: record.mediaType, size: record.size, bytes };
  }

  /**
   * Deletes a tag (tag reference), or a manifest with every tag that points to it and its
   * referrer entry (digest reference).
   * @throws RegistryError MANIFEST_UNKNOWN, DENIED (an immutable tag would go: core/immutable.ts)
   */
  async delete(repository: string, reference: Reference): Promise<void> {
    const ruleOf = await this.immutable.of(repository);
    if (reference.kind === 'tag') {
      const rule = ruleOf(reference.tag);
      if (rule && (await this.metadata.getTag(repository, reference.tag))) throw immutableTag(repository, reference.tag, rule, 'deleted');
      if (!(await this.metadata.deleteTag(repository, reference.tag))) throw unknownManifest(reference);
      return;
    }
    const record = await this.record(repository, reference);
    const tags = (await this.allTags(repository)).filter((tag) => tag.digest === record.digest);
    for (const tag of tags) {
      const rule = ruleOf(tag.tag);
      if (rule) throw immutableTag(repository, tag.tag, rule, 'deleted');
    }
    for (const tag of tags) await this.metadata.deleteTag(repository, tag.tag);
    if (record.subject) await this.metadata.deleteReferrer(repository, record.subject, record.digest);
    await this.metadata.deleteManifest(repository, record.digest);
  }

  /**
   * Tags of a repository in lexical order (end-8a/end-8b).
   * @throws RegistryError NAME_UNKNOWN for a repository that does not exist.
   */
  async tags(repository: string, limit: number, last?: string): Promise<Page<string>> {
    if (!(await this.metadata.getRepository(repository))) {
      throw fail('NAME_UNKNOWN', `repository ${repository} not known to registry`, { name: repository });
    }
    if (limit === 0) return { items: [] };
    const page = await this.metadata.listTags(repository, limit, last);
    return { items: page.items.map((tag) => tag.tag), last: page.last };
  }

  /**
   * The referrers of `subject` as an image index (end-12a/end-12b); never 404, an unknown
   * subject has none. With `artifactType`, only those of that type.
   */
  async referrers(repository: string, subject: Digest, artifactType?: string): Promise<Buffer> {
    const all = await this.metadata.listReferrers(repository, subject);
    const manifests = artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
    return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests }));
  }

  private async record(repository: string, reference: Reference & { kind: 'digest' }): Promise<ManifestRecord> {
    const record = await this.metadata.getManifest(repository, reference.digest);
    if (!record) throw unknownManifest(reference);
    return record;
  }

  /**
   * Checks that every blob and child manifest the manifest references is in the repository, and
   * claims each (see core/gc.ts): called before and after the manifest is written.
   * @throws RegistryError MANIFEST_INVALID (too many references), MANIFEST_BLOB_UNKNOWN.
   */
  private async claimReferences(repository: string, parsed: ParsedManifest): Promise<void> {
    const now = Date.now();
    // One deadline for the whole request, however many of its blobs are still being verified.
    const deadline = this.links.deadline();
    const claimBlob = async (digest: Digest) =>
      (await this.metadata.claimBlobLink(repository, digest, now)) ??
      // Not linked yet: maybe a front-door upload still being verified (links.find waits for it).
      ((await this.links.find(repository, digest, deadline)) && (await this.metadata.claimBlobLink(repository, digest, now)));
    const checks = [
      ...[...new Set(parsed.blobs)].map((digest) => () => claimBlob(digest).then((found) => (found ? undefined : digest))),
      ...[...new Set(parsed.manifests)].map((digest) => () => this.metadata.claimManifest(repository, digest, now).then((found) => (found ? undefined : digest))),
    ];
    if (checks.length > MAX_REFERENCES) throw fail('MANIFEST_INVALID', `a manifest may reference at most ${MAX_REFERENCES} blobs and manifests`);
    let unknown: Digest | undefined;
    // Bounded concurrency: a 4 MiB manifest can name tens of thousands of descriptors.
    for (let i = 0; i < checks.length && !unknown; i += REFERENCE_CHECKS_AT_ONCE) {
      unknown = (await Promise.all(checks.slice(i, i + REFERENCE_CHECKS_AT_ONCE).map((check) => check()))).find((d) => d !== undefined);
    }
    if (unknown) {
      throw fail('MANIFEST_BLOB_UNKNOWN', `manifest references ${unknown}, which is not in repository ${repository}; push it first`, {
        digest: unknown,
      });
    }
  }

  private async allTags(repository: string) {
    const tags = [];
    let last: string | undefined;
    do {
      const page = await this.metadata.listTags(repository, 1000, last);
      tags.push(...page.items);
      last = page.last;
    } while (last);
    return tags;
  }
}

/** The tag item naming `record`, with a copy of a small manifest's bytes. */
function tagOf(record: ManifestRecord, tag: string, now: number): TagRecord {
  const bytes = record.size <= TAG_COPY_BYTES ? record.bytes : undefined;
  return { repository: record.repository, tag, digest: record.digest, mediaType: record.mediaType, size: record.size, bytes, updatedAt: now };
}

function clipDescription(text: string): string {
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 1)}…` : text;
}

function referrerDescriptor(record: ManifestRecord, parsed: ParsedManifest): Descriptor {
  const annotations = parsed.annotations && JSON.stringify(parsed.annotations).length <= MAX_REFERRER_ANNOTATIONS ? parsed.annotations : undefined;
  return { mediaType: record.mediaType, digest: record.digest, size: record.size, artifactType: parsed.artifactType, annotations };
}

function unknownManifest(reference: Reference) {
  const name = reference.kind === 'tag' ? reference.tag : reference.digest;
  return fail('MANIFEST_UNKNOWN', `manifest unknown: ${name}`, reference.kind === 'tag' ? { tag: name } : { digest: name });
}
