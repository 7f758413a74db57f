/**
 * The bundled handler behind the emulated HTTP API (`BERTH_EMULATE_LAMBDA=1 npm start`): the POST
 * that starts an upload advertises the largest chunk a deployment accepts, chunks of that size go
 * through, bigger bodies get exactly AWS's answer and leave the session as it was, and blob GETs
 * redirect to S3 (a Lambda response could not carry them). This is a deployment without the
 * front door (`BERTH_FRONT_DOOR=0`): every request goes through API Gateway (test/frontdoor has the rest).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { maxChunkBytes } from '../../infra/local/lambda-emulator.js';
import { startEmulatedRegistry, type EmulatedRegistry } from './helpers.js';

let registry: EmulatedRegistry;
before(async () => {
  registry = await startEmulatedRegistry({ BERTH_FRONT_DOOR: '0' });
});
after(() => registry?.stop());

const MiB = 1024 * 1024;

async function startUpload(repository: string): Promise<{ location: string; maxChunk: number }> {
  const response = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  assert.equal(response.status, 202, registry.tail());
  return { location: new URL(response.headers.get('location')!, registry.url).href, maxChunk: Number(response.headers.get('oci-chunk-max-length')) };
}

async function assertAwsTooLarge(response: Response): Promise<void> {
  assert.equal(response.status, 413);
  assert.equal(response.headers.get('content-type'), 'application/json');
  assert.equal(await response.text(), '{"message":"Request Entity Too Large"}');
  assert.ok(response.headers.get('apigw-requestid'));
}

test('the first request is a cold start of the bundle', async () => {
  const response = await fetch(`${registry.url}/v2/`);
  assert.equal(response.status, 200);
  assert.ok(response.headers.get('apigw-requestid'), 'answered through the emulated HTTP API');
  assert.match(await registry.waitForLog(/^GET \/v2\/ /), /cold start \d+ms \(environment 1\)/);
});

test('POST advertises OCI-Chunk-Max-Length, and chunks of that size upload a blob', { timeout: 120_000 }, async () => {
  const { location, maxChunk } = await startUpload('emulation/chunked');
  assert.equal(maxChunk, maxChunkBytes());
  const blob = randomBytes(2 * maxChunk + 12345);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  let url = location;
  for (let offset = 0; offset < blob.length; offset += maxChunk) {
    const chunk = blob.subarray(offset, offset + maxChunk);
    const response = await fetch(url, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}`, 'user-agent': `berth-emulation-test ${'x'.repeat(500)}` },
      body: chunk,
    });
    assert.equal(response.status, 202, `chunk at ${offset}: ${await response.text()}\n${registry.tail()}`);
    assert.equal(response.headers.get('range'), `0-${offset + chunk.length - 1}`);
    url = new URL(response.headers.get('location')!, registry.url).href;
  }
  const done = await fetch(`${url}${url.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT' });
  assert.equal(done.status, 201, registry.tail());
  assert.equal(done.headers.get('docker-content-digest'), digest);

  const get = await fetch(`${registry.url}/v2/emulation/chunked/blobs/${digest}`, { redirect: 'manual' });
  assert.equal(get.status, 307, 'blobs are redirected to S3, never sent through Lambda');
  const bytes = Buffer.from(await (await fetch(get.headers.get('location')!)).arrayBuffer());
  assert.ok(bytes.equals(blob), 'the redirect serves the exact bytes');
});

test('bodies over the limits get AWS\'s 413 and the session is untouched', { timeout: 120_000 }, async () => {
  const { location } = await startUpload('emulation/toolarge');
  const first = randomBytes(1000);
  const ok = await fetch(location, { method: 'PATCH', headers: { 'content-range': '0-999' }, body: first });
  assert.equal(ok.status, 202);
  const next = new URL(ok.headers.get('location')!, registry.url).href;

  // Over Lambda's 6 MiB event (4.5 MiB of bytes are 6 MiB of base64), under the 10 MiB quota.
  await assertAwsTooLarge(await fetch(next, { method: 'PATCH', headers: { 'content-range': `1000-${1000 + 4.5 * MiB - 1}` }, body: randomBytes(4.5 * MiB) }));
  // Over the HTTP API's 10 MiB quota, streamed without a length (as docker sends layers).
  const stream = new ReadableStream({
    start(controller) {
      for (let i = 0; i < 11; i++) controller.enqueue(randomBytes(MiB));
      controller.close();
    },
  });
  await assertAwsTooLarge(await fetch(next, { method: 'PATCH', body: stream, duplex: 'half' } as RequestInit));

  const status = await fetch(next);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), '0-999', 'neither request reached the function');
  await registry.waitForLog(/ 413 .*Lambda: event of \d+ bytes/);
  await registry.waitForLog(/ 413 .*HTTP API payload quota/);
});
