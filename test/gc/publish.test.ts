/**
 * Garbage collection against a closing PUT in the same instant: a blob that arrived whole in one
 * streamed PATCH waits in its session's own object until the PUT publishes it, possibly days later
 * (older than the grace by then). A collection that read the blob keys before the PUT and lists
 * the object after it must leave the bytes the new blob item points at.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GarbageCollector } from '../../functions/core/gc.js';
import { UploadSessions } from '../../functions/core/sessions.js';
import type { BlobStore, MetadataStore } from '../../functions/storage/ports.js';
import { startRegistry, type Metadata, type TestRegistry } from '../support/stack.js';
import { Api, randomBlob, sha256, uniqueRepo } from '../http/helpers.js';
import { assertConsistent, storesOf } from './helpers.js';

let stack: TestRegistry;
let api: Api;
let metadata: Metadata;
let blobs: BlobStore;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
  ({ metadata, blobs } = storesOf(stack));
});
after(() => stack.stop());

/**
 * `store` with one pause: the first read of blob items once `blobs/` was listed (the objects
 * phase) answers only after `paused` resolved and `resume` was called.
 */
function pausingAtBlobKeys(store: MetadataStore, listed: () => boolean): { store: MetadataStore; paused: Promise<void>; resume: () => void } {
  let pause!: () => void;
  let resume!: () => void;
  const paused = new Promise<void>((resolve) => (pause = resolve));
  const resumed = new Promise<void>((resolve) => (resume = resolve));
  let done = false;
  const wrapped = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'scanBlobs') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<MetadataStore['scanBlobs']>) => {
        const page = await target.scanBlobs(...args);
        if (listed() && !done) {
          done = true;
          pause();
          await resumed;
        }
        return page;
      };
    },
  });
  return { store: wrapped, paused, resume };
}

test('a whole blob published while a run reads the blob keys and then lists its object keeps its bytes', async () => {
  const repo = uniqueRepo('publish');
  const bytes = randomBlob(300_000);
  const digest = sha256(bytes);
  const { location } = await api.startUpload(repo);
  const patched = await api.patch(location, bytes);
  assert.equal(patched.status, 202, await patched.text());
  assert.equal((await blobs.list('blobs/', 100)).filter((object) => object.key.includes('.')).length, 1, 'the PATCH wrote the whole blob under its session');

  let listed = false;
  const listing: BlobStore = new Proxy(blobs, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'list') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<BlobStore['list']>) => {
        const page = await target.list(...args);
        if (args[0] === 'blobs/') listed = true;
        return page;
      };
    },
  });
  const pausing = pausingAtBlobKeys(metadata, () => listed);
  // A minute on, with a grace of a second: the PATCH's object is older than the grace.
  const later = Date.now() + 60_000;
  const run = new GarbageCollector(pausing.store, listing, new UploadSessions(pausing.store, listing)).run({ graceMs: 1000, now: () => later });
  await pausing.paused;
  const closed = await api.put(location, digest);
  assert.equal(closed.status, 201, await closed.text());
  pausing.resume();
  await run;

  assert.ok((await api.blobBytes(repo, digest)).equals(bytes), 'the published blob keeps its bytes');
  await assertConsistent(metadata, blobs, 'after the run');
});
