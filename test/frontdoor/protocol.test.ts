/**
 * The front door on the wire, through `BERTH_EMULATE_LAMBDA=1 npm start` (emulated CloudFront
 * running infra/aws/frontdoor/function.js, before the emulated API Gateway + Lambda, S3 events to
 * the bundled `verify` function): a whole-blob PUT to the signed upload URL goes to S3 and becomes
 * visible only once its digest is verified; blob GETs are served from S3 by a signed path; every
 * kind of bad input gets an OCI error and leaves nothing visible.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { signUpload } from '../../functions/core/signed-paths.js';
import { startEmulatedRegistry, type EmulatedRegistry } from '../emulation/helpers.js';

let registry: EmulatedRegistry;
before(async () => {
  registry = await startEmulatedRegistry();
});
after(() => registry?.stop());

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function startUpload(repository: string): Promise<string> {
  const response = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  assert.equal(response.status, 202, registry.tail());
  return response.headers.get('location')!;
}

function put(location: string, digest: string, body: Buffer<ArrayBuffer>): Promise<Response> {
  return fetch(`${registry.url}${location}?digest=${digest}`, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
}

async function ociError(response: Response, status: number, code: string): Promise<string> {
  assert.equal(response.status, status, `${response.status} ${await response.clone().text()}`);
  const body = (await response.json()) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0].code, code);
  return body.errors[0].message;
}

async function manifestFor(repository: string, layer: { digest: string; size: number }): Promise<Response> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = sha256(config);
  const monolithic = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/?digest=${configDigest}`, { method: 'POST', body: config });
  assert.equal(monolithic.status, 201, await monolithic.text());
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
  };
  return fetch(`${registry.url}/v2/${repository}/manifests/1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: JSON.stringify(manifest),
  });
}

test('POST answers an upload URL on the same host with a signature in its path', async () => {
  const location = await startUpload('fd/location');
  assert.match(location, /^\/v2\/fd\/location\/blobs\/uploads\/[0-9a-f-]{36}\.\d+\.1\.[A-Za-z0-9_-]{43}$/);
});

test('a 20 MiB whole-blob PUT goes to S3, answers 201 with the digest, and is visible once verified', { timeout: 120_000 }, async () => {
  const blob = randomBytes(20 * MiB);
  const digest = sha256(blob);
  const response = await put(await startUpload('fd/whole'), digest, blob);
  assert.equal(response.status, 201, `${await response.text()}\n${registry.tail()}`);
  assert.equal(response.headers.get('docker-content-digest'), digest);
  assert.equal(response.headers.get('location'), `/v2/fd/whole/blobs/${digest}`);
  assert.ok(!response.headers.get('apigw-requestid'), 'answered by S3 through CloudFront, not by API Gateway');
  // HEAD right away: verified by the S3 event or by this request, whichever comes first.
  const head = await fetch(`${registry.url}/v2/fd/whole/blobs/${digest}`, { method: 'HEAD' });
  assert.equal(head.status, 200, registry.tail());
  assert.equal(head.headers.get('content-length'), String(blob.length));
  const get = await fetch(`${registry.url}/v2/fd/whole/blobs/${digest}`, { redirect: 'manual' });
  assert.equal(get.status, 307);
  assert.match(get.headers.get('location')!, /^\/_berth\/blobs\/[0-9a-f-]{36}\.\d+\.1\.[A-Za-z0-9_-]{43}$/);
  const bytes = Buffer.from(await (await fetch(`${registry.url}/v2/fd/whole/blobs/${digest}`)).arrayBuffer());
  assert.equal(sha256(bytes), digest, 'GET through the signed blob path gives the same bytes');
  assert.equal((await manifestFor('fd/whole', { digest, size: blob.length })).status, 201);
  // The PUT reached no API request: verify writes its audit line once the digest is checked.
  const pushed = () => registry.log.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).find((r) => r.message === 'audit' && r.action === 'blob.push' && r.digest === digest);
  for (let i = 0; i < 100 && !pushed(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(pushed() && [pushed().repository, pushed().status, pushed().bytes], ['fd/whole', 201, blob.length], registry.tail());
});

test('a manifest PUT right after the blob PUT waits for the verification in flight', { timeout: 180_000 }, async () => {
  const blob = randomBytes(96 * MiB);
  const digest = sha256(blob);
  assert.equal((await put(await startUpload('fd/race'), digest, blob)).status, 201);
  const manifest = await manifestFor('fd/race', { digest, size: blob.length });
  assert.equal(manifest.status, 201, `${await manifest.text()}\n${registry.tail()}`);
});

test('bytes that do not match the digest: 201 from S3, then never visible; the manifest PUT is refused', { timeout: 60_000 }, async () => {
  const claimed = sha256(randomBytes(16));
  const body = randomBytes(MiB);
  assert.equal((await put(await startUpload('fd/liar'), claimed, body)).status, 201);
  assert.equal((await fetch(`${registry.url}/v2/fd/liar/blobs/${claimed}`, { method: 'HEAD' })).status, 404);
  await ociError(await manifestFor('fd/liar', { digest: claimed, size: body.length }), 400, 'MANIFEST_BLOB_UNKNOWN');
});

test('tampered, foreign-repository and expired upload URLs are refused by the function', async () => {
  const blob = randomBytes(1024);
  const digest = sha256(blob);
  const location = await startUpload('fd/tokens');
  const tampered = location.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  assert.match(await ociError(await put(tampered, digest, blob), 404, 'BLOB_UPLOAD_UNKNOWN'), /invalid/);
  const foreign = location.replace('/v2/fd/tokens/', '/v2/fd/other/');
  await ociError(await put(foreign, digest, blob), 404, 'BLOB_UPLOAD_UNKNOWN');
  const key = { version: 1, secret: Buffer.from((await readFile(join(registry.dataDir, 'upload-key'), 'utf8')).trim(), 'base64') };
  const id = /uploads\/([0-9a-f-]{36})\./.exec(location)![1];
  const expired = `/v2/fd/tokens/blobs/uploads/${signUpload(key, 'fd/tokens', id, Math.floor(Date.now() / 1000) - 1)}`;
  assert.match(await ociError(await put(expired, digest, blob), 404, 'BLOB_UPLOAD_UNKNOWN'), /expired/);
  // A correctly signed URL of the same session still works: nothing above touched it.
  assert.equal((await put(location, digest, blob)).status, 201);
  assert.equal((await fetch(`${registry.url}/v2/fd/tokens/blobs/${digest}`, { method: 'HEAD' })).status, 200);
  await ociError(await put(location, 'sha256:xyz', blob), 400, 'DIGEST_INVALID');
});

test('an upload URL used twice: the edge refuses the second PUT, which never replaces the published blob', { timeout: 60_000 }, async () => {
  const first = randomBytes(2 * MiB);
  const digest = sha256(first);
  const location = await startUpload('fd/replay');
  assert.equal((await put(location, digest, first)).status, 201);
  assert.equal((await fetch(`${registry.url}/v2/fd/replay/blobs/${digest}`, { method: 'HEAD' })).status, 200);
  // The verify function marked the URL in the KeyValueStore when S3's event reached it.
  const kvs = JSON.parse(await readFile(join(registry.dataDir, 'cloudfront-kvs.json'), 'utf8')) as { data: { key: string }[] };
  const id = /uploads\/([0-9a-f-]{36})\./.exec(location)![1];
  assert.ok(kvs.data.some((item) => item.key === `spent-${id}`), 'marked as used');
  assert.match(await ociError(await put(location, digest, randomBytes(2 * MiB)), 404, 'BLOB_UPLOAD_UNKNOWN'), /already used/);
  const bytes = Buffer.from(await (await fetch(`${registry.url}/v2/fd/replay/blobs/${digest}`)).arrayBuffer());
  assert.equal(sha256(bytes), digest);
});

test('headers a client sends with the PUT are not stored with the blob nor served to those who pull it', { timeout: 60_000 }, async () => {
  const blob = randomBytes(MiB);
  const digest = sha256(blob);
  const location = await startUpload('fd/headers');
  const sent = await fetch(`${registry.url}${location}?digest=${digest}`, {
    method: 'PUT',
    body: blob,
    headers: { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'public, max-age=1', 'content-disposition': 'inline', 'x-amz-meta-evil': '1' },
  });
  assert.equal(sent.status, 201, await sent.text());
  const redirect = await fetch(`${registry.url}/v2/fd/headers/blobs/${digest}`, { redirect: 'manual' });
  const served = await fetch(`${registry.url}${redirect.headers.get('location')}`, { headers: { 'accept-encoding': 'identity' } });
  assert.equal(served.status, 200);
  assert.equal(served.headers.get('content-type'), 'application/octet-stream');
  for (const name of ['content-encoding', 'content-disposition', 'x-amz-meta-evil']) assert.equal(served.headers.get(name), null, name);
  assert.notEqual(served.headers.get('cache-control'), 'public, max-age=1');
  assert.equal(sha256(Buffer.from(await served.arrayBuffer())), digest);
});

test('a body shorter than its Content-Length (the client goes away): nothing visible, the retry succeeds', { timeout: 60_000 }, async () => {
  const blob = randomBytes(2 * MiB);
  const digest = sha256(blob);
  const location = await startUpload('fd/short');
  await new Promise<void>((resolve) => {
    const req = httpRequest(`${registry.url}${location}?digest=${digest}`, { method: 'PUT', headers: { 'content-length': String(blob.length) } });
    req.on('error', () => resolve());
    req.on('response', (res) => {
      res.resume();
      resolve();
    });
    req.write(blob.subarray(0, MiB), () => setTimeout(() => req.destroy(), 200));
  });
  assert.equal((await fetch(`${registry.url}/v2/fd/short/blobs/${digest}`, { method: 'HEAD' })).status, 404);
  assert.equal((await put(await startUpload('fd/short'), digest, blob)).status, 201);
  assert.equal((await fetch(`${registry.url}/v2/fd/short/blobs/${digest}`, { method: 'HEAD' })).status, 200);
});

test('a declared size over 5 GiB is refused before any byte is sent', async () => {
  const location = await startUpload('fd/huge');
  const { status, body } = await rawPut(`${location}?digest=${sha256(Buffer.alloc(0))}`, { 'content-length': String(5 * 1024 * MiB + 1) });
  assert.equal(status, 413);
  assert.equal(JSON.parse(body).errors[0].code, 'SIZE_INVALID');
});

test('two clients pushing the same blob at once: both 201, one blob, right bytes', { timeout: 120_000 }, async () => {
  const blob = randomBytes(24 * MiB);
  const digest = sha256(blob);
  const [a, b] = await Promise.all([startUpload('fd/twins'), startUpload('fd/twins')]);
  const answers = await Promise.all([put(a, digest, blob), put(b, digest, blob)]);
  assert.deepEqual(answers.map((r) => r.status), [201, 201]);
  assert.equal((await manifestFor('fd/twins', { digest, size: blob.length })).status, 201);
  const bytes = Buffer.from(await (await fetch(`${registry.url}/v2/fd/twins/blobs/${digest}`)).arrayBuffer());
  assert.equal(sha256(bytes), digest);
});

test('PATCH, status and DELETE on a signed upload URL still reach the API', async () => {
  const location = await startUpload('fd/patch');
  const chunk = randomBytes(1000);
  const patch = await fetch(`${registry.url}${location}`, { method: 'PATCH', body: chunk, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(patch.status, 202, await patch.text());
  assert.ok(patch.headers.get('apigw-requestid'));
  const next = patch.headers.get('location')!;
  const done = await fetch(`${registry.url}${next}?digest=${sha256(chunk)}`, { method: 'PUT' });
  assert.equal(done.status, 201, await done.text());
  const cancel = await fetch(`${registry.url}${await startUpload('fd/patch')}`, { method: 'DELETE' });
  assert.equal(cancel.status, 204);
});

/** A PUT with headers fetch would not send as given (a Content-Length without the body). */
function rawPut(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${registry.url}${path}`, { method: 'PUT', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}
