/**
 * Upload sessions continued by another process (on Lambda any request may run in another
 * container). Node's hash of a session's first chunk stays in the process that took it; another
 * process writes on without it, and the closing PUT hashes the completed object by reading it
 * back. The digest saved with the session verifies a closing PUT that adds no bytes in any
 * process. Two registry servers on the same back ends stand for the two processes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { recordingStore, serveRegistry, startRegistry, type StoreCall, type TestRegistry } from '../support/stack.js';
import { Api, expectError, MiB, randomBlob, sha256, uniqueRepo } from './helpers.js';

let first: TestRegistry;
let second: TestRegistry;
/** Blob store calls of the second process. */
const calls: StoreCall[] = [];
let a: Api;
let b: Api;
before(async () => {
  first = await startRegistry();
  second = await serveRegistry(first.backends, (store) => store, recordingStore(calls));
  a = new Api(first);
  b = new Api(second);
});
after(async () => {
  await second.stop();
  await first.stop();
});

/** PATCHes `chunks` in turn through `apis` (Content-Range), returns the next location. */
async function patchAll(location: string, chunks: Buffer[], apis: Api[]): Promise<string> {
  let offset = 0;
  for (const [i, chunk] of chunks.entries()) {
    const response = await apis[i].patch(location, chunk, [offset, offset + chunk.length - 1]);
    assert.equal(response.status, 202, await response.text());
    offset += chunk.length;
    location = response.headers.get('location')!;
  }
  return location;
}

test("docker's pattern, the PUT in another process: verified by the session's saved digest, nothing read back", async () => {
  const repo = uniqueRepo('across');
  const bytes = randomBlob(5 * MiB + 17);
  const { location } = await a.startUpload(repo);
  const patched = await a.patch(location, bytes);
  assert.equal(patched.status, 202);
  calls.length = 0;
  const put = await b.put(patched.headers.get('location')!, sha256(bytes));
  assert.equal(put.status, 201, await put.text());
  assert.deepEqual(calls, [], 'the whole blob is published as it is');
  assert.ok((await a.blobBytes(repo, sha256(bytes))).equals(bytes), 'the blob is served with its bytes');
});

test("docker's pattern with a wrong digest, the PUT in another process: DIGEST_INVALID, nothing visible", async () => {
  const repo = uniqueRepo('across');
  const bytes = randomBlob(MiB);
  const wrong = sha256(randomBlob(10));
  const { location } = await a.startUpload(repo);
  const next = (await a.patch(location, bytes)).headers.get('location')!;
  await expectError(await b.put(next, wrong), 400, 'DIGEST_INVALID');
  for (const digest of [wrong, sha256(bytes)]) assert.equal((await a.head(`/v2/${repo}/blobs/${digest}`)).status, 404);
  await expectError(await a.get(next), 404, 'BLOB_UPLOAD_UNKNOWN');
});

test('chunks alternating between processes (a hash kept for an older session version is not used): read back and verified', async () => {
  const repo = uniqueRepo('across');
  const chunks = [6 * MiB, 3 * MiB, 2 * MiB].map((size) => randomBlob(size));
  const whole = Buffer.concat(chunks);
  const { location } = await a.startUpload(repo);
  const next = await patchAll(location, chunks, [a, b, a]);
  const put = await b.put(next, sha256(whole));
  assert.equal(put.status, 201, await put.text());
  assert.ok((await a.blobBytes(repo, sha256(whole))).equals(whole), 'the blob is served with its bytes');

  // The last chunk in the PUT, in the process that took the first.
  const more = uniqueRepo('across');
  const last = randomBlob(1000);
  const withLast = Buffer.concat([...chunks, last]);
  const then = await patchAll((await a.startUpload(more)).location, chunks, [a, b, b]);
  const finished = await a.put(then, sha256(withLast), last, [whole.length, withLast.length - 1]);
  assert.equal(finished.status, 201, await finished.text());
  assert.ok((await a.blobBytes(more, sha256(withLast))).equals(withLast), 'the blob is served with its bytes');
});

test('chunks across processes with a wrong digest: DIGEST_INVALID, nothing visible, the session is gone', async () => {
  const repo = uniqueRepo('across');
  const chunks = [5 * MiB, 2 * MiB].map((size) => randomBlob(size));
  const whole = Buffer.concat(chunks);
  const wrong = sha256(Buffer.concat([chunks[0], randomBlob(2 * MiB)]));
  const { location } = await a.startUpload(repo);
  const next = await patchAll(location, chunks, [a, b]);
  await expectError(await a.put(next, wrong), 400, 'DIGEST_INVALID');
  for (const digest of [wrong, sha256(whole)]) assert.equal((await a.head(`/v2/${repo}/blobs/${digest}`)).status, 404);
  await expectError(await b.get(next), 404, 'BLOB_UPLOAD_UNKNOWN');
});
