/**
 * A tag's refresh (the HEAD upstream once its TTL is over) against what happens meanwhile, over
 * real sockets: an upstream whose first HEAD is held back until the test lets it answer. A
 * refresh that read the tag before another refresh moved it must not move it back; one that read
 * it before retention deleted it must not bring it back. Both write conditionally on the tag as
 * they read it (MetadataStore.replaceTag).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createDynamoClient, DynamoMetadataStore } from '../../functions/storage/dynamodb.js';
import { Cleanup, MANIFEST_ACCEPT, sha256, waitFor } from '../e2e/helpers.js';
import { startRegistry, type TestRegistry } from '../support/stack.js';

const cleanup = new Cleanup();
let berth: TestRegistry;
let store: DynamoMetadataStore;
let upstream: Server;

/** Two versions of the upstream's `app:v1`. */
const manifest = (version: string) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('{}'), size: 2 }, layers: [], annotations: { version } }));
const [first, second] = [manifest('1'), manifest('2')];
/** What the upstream's tag names now. */
let current = first;
/** HEADs of the tag the upstream received. */
let heads = 0;
/** While set, the next HEAD waits for it (it answers the digest the tag named when it arrived). */
let gate: Promise<void> | undefined;
let open = () => {};

before(async () => {
  upstream = createServer(async (request, response) => {
    if (request.url !== '/v2/app/manifests/v1') return void response.writeHead(404).end();
    const bytes = current;
    const headers = { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha256(bytes), 'Content-Length': String(bytes.length) };
    if (request.method === 'HEAD') {
      heads++;
      const held = gate;
      gate = undefined;
      if (held) await held;
      return void response.writeHead(200, headers).end();
    }
    response.writeHead(200, headers).end(bytes);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  cleanup.add('stop the upstream', () => new Promise((resolve) => upstream.close(resolve)));
  berth = await startRegistry();
  cleanup.add('stop Berth', () => berth.stop());
  store = new DynamoMetadataStore(createDynamoClient(berth.backends.config.dynamo), berth.backends.config.dynamo.table);
  // TTL 0: every pull by tag refreshes it.
  await store.putCacheRule({ prefix: 'up', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, ttlSeconds: 0, createdAt: Date.now() });
});
after(() => cleanup.run());

/** A pull of `up/app:v1` through Berth: the digest it answered. */
async function pull(): Promise<string | null> {
  const response = await fetch(`${berth.url}/v2/up/app/manifests/v1`, { headers: { Accept: MANIFEST_ACCEPT } });
  await response.arrayBuffer();
  assert.equal(response.status, 200);
  return response.headers.get('docker-content-digest');
}

/** Starts a pull whose refresh HEAD is held back; `release` lets the upstream answer it. */
async function heldPull(): Promise<{ done: Promise<string | null>; release: () => void }> {
  gate = new Promise((resolve) => (open = resolve));
  const before = heads;
  const done = pull();
  await waitFor('the held refresh to reach the upstream', () => heads > before, 10_000, 20);
  return { done, release: () => open() };
}

test('a refresh that read the tag before another one moved it does not move it back', async () => {
  assert.equal(await pull(), sha256(first));
  const slow = await heldPull(); // its HEAD will say the first digest, as the tag still names it
  current = second;
  assert.equal(await pull(), sha256(second), 'a second refresh moves the tag on');
  slow.release();
  await slow.done;
  assert.equal((await store.getTag('up/app', 'v1'))?.digest, sha256(second));
  assert.equal(await pull(), sha256(second));
});

test('a refresh that read the tag before retention deleted it does not bring it back', async () => {
  const slow = await heldPull();
  const tag = (await store.getTag('up/app', 'v1'))!;
  // As garbage collection applies a retention rule: only while the tag is as it read it.
  assert.equal(await store.collect({ kind: 'tag', repository: 'up/app', tag: 'v1', digest: tag.digest, updatedAt: tag.updatedAt }), true);
  slow.release();
  assert.equal(await slow.done, sha256(second), 'the pull itself is answered (by digest)');
  assert.equal(await store.getTag('up/app', 'v1'), undefined);
});
