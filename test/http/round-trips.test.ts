/**
 * Metadata round trips per request on the hot paths (each store method used here sends one
 * DynamoDB request when it succeeds): a PATCH takes the session's lease and commits it, nothing
 * more; a HEAD of a manifest by tag or digest reads one item; a HEAD of a blob reads its link.
 * Every extra call is a DynamoDB request, and on Lambda a few milliseconds of every push and pull.
 * Blob store calls of uploads too: docker's push of a small layer is one PutObject, and chunks of
 * 5 MiB each become a part, nothing written twice or read back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { recordingStore, startRegistry, type StoreCall, type TestRegistry } from '../support/stack.js';
import { Api, MediaTypes, MiB, sha256, uniqueRepo } from './helpers.js';

const calls: StoreCall[] = [];
const blobCalls: StoreCall[] = [];
let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry({}, recordingStore(calls), recordingStore(blobCalls));
  api = new Api(stack);
});
after(() => stack.stop());

/** The metadata store methods `request` calls, in order. */
async function callsOf(request: () => Promise<Response>, status: number): Promise<string[]> {
  calls.length = 0;
  const response = await request();
  assert.equal(response.status, status, await response.text());
  return calls.map((call) => call.method);
}

test('a PATCH leases and commits its session: two DynamoDB requests', async () => {
  const repo = uniqueRepo('trips');
  const { location } = await api.startUpload(repo);
  assert.deepEqual(await callsOf(() => api.patch(location, randomBytes(64 * 1024)), 202), ['leaseUpload', 'commitUpload']);
  const next = (await api.patch(location, randomBytes(1024))).headers.get('location')!;
  assert.deepEqual(await callsOf(() => api.patch(next, randomBytes(64 * 1024)), 202), ['leaseUpload', 'commitUpload'], 'a second chunk too');
});

test('HEAD of a manifest, by tag and by digest, and HEAD of a blob: one DynamoDB request each', async () => {
  const repo = uniqueRepo('trips');
  const image = await api.pushImage(repo, 'v1');
  const accept = { Accept: MediaTypes.ociManifest };
  assert.equal((await callsOf(() => api.head(`/v2/${repo}/manifests/v1`, accept), 200)).length, 1);
  assert.equal((await callsOf(() => api.head(`/v2/${repo}/manifests/${image.digest}`, accept), 200)).length, 1);
  assert.equal((await callsOf(() => api.head(`/v2/${repo}/blobs/${image.layer.digest}`), 200)).length, 1);
});

/** The blob store methods `requests` call, in order. */
async function blobCallsOf(requests: () => Promise<void>): Promise<string[]> {
  blobCalls.length = 0;
  await requests();
  return blobCalls.map((call) => call.method);
}

test("docker's push of a 5 MiB blob (one streamed PATCH, an empty PUT): one S3 PutObject, nothing read back", async () => {
  const repo = uniqueRepo('trips');
  const bytes = randomBytes(5 * MiB + 1234);
  const { location } = await api.startUpload(repo);
  const methods = await blobCallsOf(async () => {
    const patched = await api.patch(location, bytes);
    assert.equal(patched.status, 202);
    const put = await api.put(patched.headers.get('location')!, sha256(bytes));
    assert.equal(put.status, 201, await put.text());
  });
  assert.deepEqual(methods, ['put']);
  assert.ok((await api.blobBytes(repo, sha256(bytes))).equals(bytes), 'the blob is served with its bytes');
});

test('chunked upload in 5 MiB Content-Range chunks: each PATCH uploads one part, nothing is written twice or read back', async () => {
  const repo = uniqueRepo('trips');
  const bytes = randomBytes(16 * MiB);
  let { location } = await api.startUpload(repo);
  const methods = await blobCallsOf(async () => {
    for (let start = 0; start < 15 * MiB; start += 5 * MiB) {
      const patched = await api.patch(location, bytes.subarray(start, start + 5 * MiB), [start, start + 5 * MiB - 1]);
      assert.equal(patched.status, 202);
      location = patched.headers.get('location')!;
    }
    const put = await api.put(location, sha256(bytes), bytes.subarray(15 * MiB), [15 * MiB, bytes.length - 1]);
    assert.equal(put.status, 201, await put.text());
  });
  assert.deepEqual(methods, ['createMultipart', 'uploadPart', 'uploadPart', 'uploadPart', 'uploadPart', 'completeMultipart']);
  assert.ok((await api.blobBytes(repo, sha256(bytes))).equals(bytes), 'the blob is served with its bytes');
});
