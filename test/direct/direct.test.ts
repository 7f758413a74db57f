/**
 * The direct upload extension over sockets: parts go to the blob store through presigned URLs (the
 * file store's, answered by the registry server as npm start does; s3rver; or MinIO with its
 * signature checks), the registry verifies the digest itself.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/stack.js';

let stack: TestRegistry;
before(async () => (stack = await startRegistry({ BERTH_AUTH: 'off' })));
after(() => stack.stop());

const MiB = 1024 * 1024;
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface Part {
  number: number;
  url: string;
  offset: number;
  length: number;
}
interface Started {
  id: string;
  location: string;
  partSize: number;
  partCount: number;
  parts: Part[];
}

async function start(repository: string, digest: string, size: number): Promise<Started> {
  const response = await fetch(`${stack.url}/v2/${repository}/_berth/uploads/?digest=${digest}&size=${size}`, { method: 'POST' });
  assert.equal(response.status, 202, await response.clone().text());
  return (await response.json()) as Started;
}

async function uploadParts(started: Started, blob: Buffer): Promise<{ number: number; etag: string }[]> {
  return Promise.all(
    started.parts.map(async (part) => {
      const response = await fetch(part.url, { method: 'PUT', body: new Uint8Array(blob.subarray(part.offset, part.offset + part.length)) });
      assert.equal(response.status, 200, await response.clone().text());
      return { number: part.number, etag: response.headers.get('etag')! };
    }),
  );
}

async function complete(started: Started, parts: { number: number; etag: string }[]): Promise<Response> {
  return fetch(`${stack.url}${started.location}/complete`, { method: 'POST', body: JSON.stringify({ parts }) });
}

async function poll(location: string): Promise<Response> {
  for (let i = 0; i < 100; i++) {
    const response = await fetch(`${stack.url}${location}`);
    if (response.status !== 202) return response;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('verification did not finish');
}

test('a 20 MiB blob in three parts: uploaded to S3 directly, verified, then visible', async () => {
  const blob = randomBytes(20 * MiB + 123);
  const digest = sha256(blob);
  const started = await start('direct/app', digest, blob.length);
  assert.equal(started.partSize, 8 * MiB);
  assert.equal(started.partCount, 3);
  assert.deepEqual(started.parts.map((p) => [p.number, p.offset, p.length]), [[1, 0, 8 * MiB], [2, 8 * MiB, 8 * MiB], [3, 16 * MiB, 4 * MiB + 123]]);
  assert.equal((await fetch(`${stack.url}/v2/direct/app/blobs/${digest}`, { method: 'HEAD' })).status, 404, 'not visible before verification');
  const done = await poll((await complete(started, await uploadParts(started, blob))).headers.get('location')!);
  assert.equal(done.status, 200);
  assert.equal(done.headers.get('docker-content-digest'), digest);
  assert.equal(((await done.json()) as { state: string }).state, 'verified');
  const head = await fetch(`${stack.url}/v2/direct/app/blobs/${digest}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), String(blob.length));
  const got = await fetch(`${stack.url}/v2/direct/app/blobs/${digest}`);
  assert.equal(sha256(Buffer.from(await got.arrayBuffer())), digest);
});

test('a wrong digest: DIGEST_INVALID, nothing visible, the data removed', async () => {
  const blob = randomBytes(MiB);
  const claimed = sha256(Buffer.from('something else'));
  const started = await start('direct/app', claimed, blob.length);
  const answer = await complete(started, await uploadParts(started, blob));
  const final = answer.status === 202 ? await poll(started.location) : answer;
  assert.equal(final.status, 400);
  assert.equal(((await final.json()) as { errors: { code: string }[] }).errors[0].code, 'DIGEST_INVALID');
  for (const digest of [claimed, sha256(blob)]) {
    assert.equal((await fetch(`${stack.url}/v2/direct/app/blobs/${digest}`, { method: 'HEAD' })).status, 404);
  }
  assert.equal(await stack.blobs.size(`blobs/${started.id}`), undefined, 'the S3 object is gone');
});

test('completion needs every part in order; a short upload is refused; the empty blob works', async () => {
  const blob = randomBytes(9 * MiB);
  const started = await start('direct/app', sha256(blob), blob.length);
  const parts = await uploadParts(started, blob);
  assert.equal((await complete(started, parts.slice(0, 1))).status, 400);
  assert.equal((await complete(started, [...parts].reverse())).status, 400);
  assert.equal((await poll((await complete(started, parts)).headers.get('location')!)).status, 200);

  const empty = Buffer.alloc(0);
  const none = await start('direct/app', sha256(empty), 0);
  assert.equal(none.partCount, 1);
  assert.equal((await poll((await complete(none, await uploadParts(none, empty))).headers.get('location')!)).status, 200);
});

test('bad requests: size over 5 TiB, a sha512 digest, garbage', async () => {
  const digest = sha256(Buffer.from('x'));
  const cases: [string, number][] = [
    [`digest=${digest}&size=${6 * 1024 ** 4}`, 400],
    [`digest=sha512:${'a'.repeat(128)}&size=1`, 400],
    [`digest=${digest}&size=-1`, 400],
    [`digest=nope&size=1`, 400],
    [`size=1`, 400],
  ];
  for (const [query, status] of cases) {
    const response = await fetch(`${stack.url}/v2/direct/app/_berth/uploads/?${query}`, { method: 'POST' });
    assert.equal(response.status, status, query);
  }
  const started = await start('direct/app', digest, 1);
  assert.equal((await fetch(`${stack.url}/v2/direct/other/_berth/uploads/${started.id}`)).status, 404, 'another repository');
  assert.equal((await fetch(`${stack.url}${started.location}/complete`, { method: 'POST', body: 'not json' })).status, 400);
  assert.equal((await fetch(`${stack.url}${started.location}`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${stack.url}${started.location}`)).status, 404);
});

test('a direct session is unknown to the standard upload endpoints (its object may be a published blob)', async () => {
  const blob = randomBytes(1000);
  const digest = sha256(blob);
  const started = await start('direct/guard', digest, blob.length);
  assert.equal((await poll((await complete(started, await uploadParts(started, blob))).headers.get('location')!)).status, 200);
  const evil = Buffer.from('attacker bytes');
  const hijack = await fetch(`${stack.url}/v2/direct/guard/blobs/uploads/${started.id}?digest=${sha256(evil)}`, { method: 'PUT', body: new Uint8Array(evil) });
  assert.equal(hijack.status, 404);
  for (const method of ['GET', 'PATCH', 'DELETE']) {
    assert.equal((await fetch(`${stack.url}/v2/direct/guard/blobs/uploads/${started.id}`, { method })).status, 404, method);
  }
  const got = await fetch(`${stack.url}/v2/direct/guard/blobs/${digest}`);
  assert.equal(sha256(Buffer.from(await got.arrayBuffer())), digest);
  const standard = await fetch(`${stack.url}/v2/direct/guard/blobs/uploads/`, { method: 'POST' });
  assert.equal((await fetch(`${stack.url}${standard.headers.get('location')!.replace('/blobs/uploads/', '/_berth/uploads/')}`)).status, 404, 'and the other way round');
});
