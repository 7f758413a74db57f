/**
 * Metadata round trips per request on the hot paths (each store method used here sends one
 * DynamoDB request when it succeeds): a PATCH takes the session's lease and commits it, nothing
 * more; a HEAD of a manifest by tag or digest reads one item; a HEAD of a blob reads its link.
 * Every extra call is a DynamoDB request, and on Lambda a few milliseconds of every push and pull.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { recordingStore, startRegistry, type StoreCall, type TestRegistry } from '../support/stack.js';
import { Api, MediaTypes, uniqueRepo } from './helpers.js';

const calls: StoreCall[] = [];
let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry({}, recordingStore(calls));
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
