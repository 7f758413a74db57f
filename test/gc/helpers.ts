/**
 * Helpers of the garbage collection suites: the registry's stored state read straight from the
 * stores, and the invariant every run (finished, failed or killed) must leave: whatever a tag, a
 * manifest or a link reaches exists, and every blob item has its bytes.
 */
import assert from 'node:assert/strict';
import { parseManifest } from '../../functions/core/manifest.js';
import type { Digest } from '../../functions/core/grammar.js';
import type { BlobStore, MetadataStore } from '../../functions/storage/ports.js';
import { blobStoreOf, metadataOf, type Metadata, type TestRegistry } from '../support/stack.js';

/** Unwrapped adapters on the stack's back ends (no fault injection, no recording). */
export function storesOf(stack: TestRegistry): { metadata: Metadata; blobs: BlobStore } {
  return { metadata: metadataOf(stack.backends), blobs: blobStoreOf(stack.backends) };
}

/** Objects under `blobs/` and their total size (the bytes blob data occupies in S3). */
export async function storedBlobBytes(blobs: BlobStore): Promise<{ objects: number; bytes: number }> {
  const objects = await blobs.list('blobs/', 10_000);
  return { objects: objects.length, bytes: objects.reduce((sum, o) => sum + o.size, 0) };
}

/** Every repository of the catalog. */
export async function allRepositories(metadata: MetadataStore): Promise<string[]> {
  const names: string[] = [];
  let last: string | undefined;
  do {
    const page = await metadata.listRepositories(1000, last);
    names.push(...page.items.map((r) => r.name));
    last = page.last;
  } while (last);
  return names;
}

/** Part of the stores to check: these repositories and these blob items. */
export interface Scope {
  repositories: string[];
  digests: Digest[];
}

/**
 * Asserts that nothing reachable is missing: each tag's manifest exists; each manifest's child
 * manifests and linked blobs exist, with blob items and S3 bytes; each blob item has its bytes.
 * Everything by default, or only the repositories and blob items of `scope`.
 */
export async function assertConsistent(metadata: MetadataStore, blobs: BlobStore, what = '', scope?: Scope): Promise<void> {
  for (const name of scope?.repositories ?? (await allRepositories(metadata))) {
    const contents = await metadata.readRepository(name);
    const manifests = new Set(contents.manifests.map((m) => m.digest));
    const links = new Set(contents.links.map((l) => l.digest));
    for (const tag of contents.tags) assert.ok(manifests.has(tag.digest), `${what}: tag ${name}:${tag.tag} names a missing manifest`);
    for (const manifest of contents.manifests) {
      const parsed = parseManifest(manifest.bytes ? Buffer.from(manifest.bytes) : await blobs.read(manifest.key!), manifest.mediaType);
      for (const child of parsed.manifests) assert.ok(manifests.has(child), `${what}: ${name}@${manifest.digest} names missing manifest ${child}`);
      for (const blob of parsed.blobs) assert.ok(links.has(blob), `${what}: ${name}@${manifest.digest} names unlinked blob ${blob}`);
    }
    for (const link of contents.links) {
      const blob = await metadata.getBlob(link.digest);
      assert.ok(blob, `${what}: link ${name}@${link.digest} has no blob item`);
      assert.notEqual(await blobs.size(blob.key), undefined, `${what}: blob ${link.digest} (linked by ${name}) has no bytes`);
    }
  }
  if (scope) {
    for (const digest of scope.digests) {
      const blob = await metadata.getBlob(digest);
      if (blob) assert.notEqual(await blobs.size(blob.key), undefined, `${what}: blob item ${digest} has no bytes`);
    }
    return;
  }
  let last: string | undefined;
  do {
    const page = await metadata.scanBlobs(1000, last);
    for (const blob of page.items) assert.notEqual(await blobs.size(blob.key), undefined, `${what}: blob item ${blob.digest} has no bytes`);
    last = page.last;
  } while (last);
}

/** Whether `repository` links `digest`. */
export async function linked(metadata: MetadataStore, repository: string, digest: Digest): Promise<boolean> {
  return (await metadata.getBlobLink(repository, digest)) !== undefined;
}
