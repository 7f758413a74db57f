/**
 * An upstream that lies, over a real socket: a manifest whose bytes do not hash to the digest
 * asked for (or to the Docker-Content-Digest it announces), a blob whose bytes do not hash to its
 * digest. Berth answers with an error (or cuts the blob before its last bytes) and caches nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { Cleanup, MANIFEST_ACCEPT, RegistryProcess, sha256 } from '../e2e/helpers.js';

const cleanup = new Cleanup();
let berth: RegistryProcess;
let liar: Server;
/** While true the liar answers everything with 503: what Berth serves then is what it cached. */
let down = false;

const honest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('{}'), size: 2 }, layers: [] }));
const forged = Buffer.from(honest.toString('utf8').replace('"layers":[]', '"layers": []'));
/** A blob digest whose bytes the liar replaces with others (3 MiB, several chunks). */
const blobBytes = randomBytes(3 * 1024 * 1024);
const blobDigest = sha256(blobBytes);
/** A small blob (one chunk) it lies about too. */
const smallDigest = sha256('small');

before(async () => {
  liar = createServer((request, response) => {
    const path = request.url ?? '';
    if (down) return void response.writeHead(503).end();
    if (path === '/v2/' || path === '/v2') return void response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    const manifest = /^\/v2\/lies\/manifests\/(.+)$/.exec(path);
    if (manifest) {
      // Asked for the honest digest (or the tag), it sends other bytes and names the honest digest.
      const headers = { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha256(honest), 'Content-Length': String(forged.length) };
      return void response.writeHead(200, headers).end(request.method === 'HEAD' ? undefined : forged);
    }
    if (path === `/v2/lies/blobs/${blobDigest}` || path === `/v2/lies/blobs/${smallDigest}`) {
      const bytes = path.endsWith(blobDigest) ? randomBytes(blobBytes.length) : Buffer.from('SMALL');
      response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) });
      if (request.method === 'HEAD') return void response.end();
      // Several writes, so that Berth passes most of it on before it can know.
      for (let at = 0; at < bytes.length; at += 256 * 1024) response.write(bytes.subarray(at, at + 256 * 1024));
      return void response.end();
    }
    response.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"no","detail":null}]}');
  });
  await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
  cleanup.add('stop the lying upstream', () => new Promise((resolve) => liar.close(resolve)));
  berth = await RegistryProcess.start(cleanup);
  await berth.berthOk(['cache', 'add', 'lying', `http://127.0.0.1:${(liar.address() as AddressInfo).port}`, '--ttl', '0s']);
});
after(() => cleanup.run());

async function getManifest(reference: string): Promise<{ status: number; code?: string; message?: string }> {
  const response = await fetch(`${berth.url}/v2/lying/lies/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } });
  if (response.status === 200) return { status: 200 };
  const body = (await response.json()) as { errors: Array<{ code: string; message: string }> };
  return { status: response.status, code: body.errors[0].code, message: body.errors[0].message };
}

test('a manifest that does not hash to the digest asked for: 502, nothing cached', async () => {
  const answer = await getManifest(sha256(honest));
  assert.equal(answer.status, 502);
  assert.equal(answer.code, 'MANIFEST_INVALID');
  assert.equal(answer.message, `http://127.0.0.1:${(liar.address() as AddressInfo).port} sent a manifest for lies:${sha256(honest)} whose digest is ${sha256(forged)}, not ${sha256(honest)}; nothing was cached`);
  down = true;
  try {
    // Neither the digest asked for nor the digest of the bytes is there.
    assert.equal((await getManifest(sha256(honest))).status, 502);
    assert.equal((await getManifest(sha256(forged))).status, 502);
  } finally {
    down = false;
  }
});

test('a manifest by tag whose Docker-Content-Digest is not the digest of its bytes: 502, no tag', async () => {
  const answer = await getManifest('v1');
  assert.equal(answer.status, 502);
  assert.match(answer.message!, /whose digest is sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64}; nothing was cached$/);
  down = true;
  try {
    assert.equal((await getManifest('v1')).status, 502);
    const tags = await berth.berth(['tag', 'ls', 'lying/lies']);
    assert.doesNotMatch(tags.stdout, /v1/);
  } finally {
    down = false;
  }
});

for (const [what, digest] of [
  ['a 3 MiB blob', blobDigest],
  ['a 5-byte blob', smallDigest],
] as const) {
  test(`${what} whose bytes do not match its digest: the client never gets it whole, nothing cached`, async () => {
    // The headers may have gone out (then the body breaks off) or not (then the request fails).
    const got = await fetch(`${berth.url}/v2/lying/lies/blobs/${digest}`)
      .then(async (response) => ({ status: response.status, bytes: (await response.arrayBuffer()).byteLength }))
      .catch((error: Error) => error);
    assert.ok(got instanceof Error, `the client got ${JSON.stringify(got)}`);
    down = true;
    try {
      const head = await fetch(`${berth.url}/v2/lying/lies/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 502, 'not cached: Berth had to ask the (now failing) upstream');
    } finally {
      down = false;
    }
    const usage = await berth.berthOk(['du']);
    assert.match(usage.stdout, /total 0 B in 0 blobs/);
  });
}
