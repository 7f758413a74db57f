/**
 * Upload session leases and the parts a request uploads while its body streams: a request whose
 * lease was taken over by another uploads no more parts, and a request that fails has no part
 * upload running once its lease is released (either could put other bytes under a part the next
 * request completes). The upload core runs on the real back ends with a short lease.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bodyOf } from '../../functions/core/body.js';
import { FrontDoor } from '../../functions/core/frontdoor.js';
import { DEFAULT_SESSION_SETTINGS, UploadSessions } from '../../functions/core/sessions.js';
import { Uploads } from '../../functions/core/uploads.js';
import type { BlobStore } from '../../functions/storage/ports.js';
import { faulty, type FaultPlan } from '../support/faults.js';
import { blobStoreOf, metadataOf, startBackends, type Backends, type Metadata } from '../support/stack.js';
import { MiB, randomBlob, sha256, uniqueRepo } from './helpers.js';

const LEASE_MS = 1000;
const SETTINGS = { partSize: 5 * MiB, partConcurrency: 2 };

let backends: Backends;
let metadata: Metadata;
let blobs: BlobStore;
before(async () => {
  backends = await startBackends();
  metadata = metadataOf(backends);
  blobs = blobStoreOf(backends);
});
after(() => backends.stop());

/** The upload core on `store`, with a lease of LEASE_MS. */
function uploadsOn(store: BlobStore): Uploads {
  const sessions = new UploadSessions(metadata, store, { ...DEFAULT_SESSION_SETTINGS, leaseMs: LEASE_MS });
  return new Uploads(sessions, store, new FrontDoor(sessions, metadata, store, undefined), SETTINGS);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a request whose lease another request took over uploads no more parts; the session completes with the bytes committed', async () => {
  // Counts part uploads when they start (no call fails: failAt 0 is never reached).
  const plan: FaultPlan = { calls: 0, failAt: 0, methods: ['uploadPart'] };
  const uploads = uploadsOn(faulty(blobs, plan));
  const repo = uniqueRepo('lease');
  const session = await uploads.start(repo);
  const first = randomBlob(11 * MiB);
  await uploads.append(repo, session.id, bodyOf(first), { start: 0, end: first.length - 1 });

  let takenOver!: () => void;
  const resumed = new Promise<void>((resolve) => (takenOver = resolve));
  async function* slowBody(): AsyncGenerator<Uint8Array> {
    yield randomBlob(MiB);
    await resumed;
    yield randomBlob(12 * MiB);
  }
  const stale = uploads.append(repo, session.id, { chunks: slowBody() });
  stale.catch(() => undefined);
  await sleep(LEASE_MS + 200);
  const second = randomBlob(6 * MiB);
  await uploads.append(repo, session.id, bodyOf(second), { start: first.length, end: first.length + second.length - 1 });
  const partsBefore = plan.calls;
  takenOver();

  await assert.rejects(stale, { code: 'BLOB_UPLOAD_INVALID' });
  assert.equal(plan.calls, partsBefore, 'no part upload after the lease was lost');
  const whole = Buffer.concat([first, second]);
  const blob = await uploads.finish(repo, session.id, sha256(whole), bodyOf(new Uint8Array(0)));
  assert.equal(blob.size, whole.length);
  assert.ok((await blobs.read(blob.key)).equals(whole));
});

test('a request whose body fails has no part upload running when its lease is released', async () => {
  let running = 0;
  const slow: BlobStore = new Proxy(blobs, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'uploadPart') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<BlobStore['uploadPart']>) => {
        running++;
        try {
          await sleep(500);
          return await target.uploadPart(...args);
        } finally {
          running--;
        }
      };
    },
  });
  const uploads = uploadsOn(slow);
  const repo = uniqueRepo('lease');
  const session = await uploads.start(repo);
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield randomBlob(11 * MiB);
    throw new Error('the client went away');
  }
  await assert.rejects(uploads.append(repo, session.id, { chunks: failing() }), /the client went away/);
  assert.equal(running, 0, 'every part upload ended before the request did');
});
