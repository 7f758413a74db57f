/**
 * Where `npm start` listens and what its banner says: anonymous full access stays on loopback
 * unless a person asks for more in so many words; with logins required it serves every
 * interface. The banner states the address, the mode and the data folder.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Cleanup, RegistryProcess } from '../e2e/helpers.js';
import { start } from '../support/cli.js';

const cleanup = new Cleanup();
let scratch: string;
before(async () => (scratch = await mkdtemp(join(tmpdir(), 'berth-listen-'))));
after(async () => {
  await cleanup.run();
  await rm(scratch, { recursive: true, force: true });
});

/** An IPv4 address of this machine other than loopback, if it has one. */
const lanAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** Whether `GET /v2/` at `address:port` gets any HTTP answer. */
async function answers(address: string, port: number): Promise<boolean> {
  const response = await fetch(`http://${address}:${port}/v2/`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
  await response?.body?.cancel();
  return response !== undefined;
}

const banner = (registry: RegistryProcess) => registry.lines.find((line) => line.includes('registry listening')) ?? '';

test('without logins and without HOST: loopback only, and the banner says so, with the mode and the data folder', async () => {
  const registry = await RegistryProcess.start(cleanup);
  assert.equal(
    banner(registry),
    `berth: registry listening on http://127.0.0.1:${registry.port} (this machine only); anonymous full access (no logins; BERTH_AUTH=required asks for them); data folder ${registry.dataDir} (native metadata store; blobs in ${registry.dataDir}/blobs)`,
  );
  if (lanAddress) assert.equal(await answers(lanAddress, registry.port), false, `not served on ${lanAddress}`);
});

test('without logins, HOST beyond loopback: refused in one line unless BERTH_OPEN=1, which is printed loudly', async () => {
  const refused = await start([], { BERTH_DATA_DIR: scratch, HOST: '0.0.0.0', PORT: '0', BERTH_AUTH: 'off', BERTH_OPEN: undefined });
  assert.equal(refused.code, 2, refused.output);
  assert.equal(
    refused.stderr,
    'berth: HOST=0.0.0.0 would give anyone who can reach it anonymous full access (push and delete included): set BERTH_AUTH=required, or BERTH_OPEN=1 to serve it anyway\n',
  );
  const open = await RegistryProcess.start(cleanup, { env: { HOST: '0.0.0.0', BERTH_OPEN: '1' } });
  assert.match(banner(open), new RegExp(`^berth: registry listening on http://0\\.0\\.0\\.0:${open.port} \\(every interface\\); anonymous full access`));
  assert.ok(open.lines.some((line) => line.startsWith('berth: WARNING: BERTH_OPEN=1: anyone who can reach')), open.tail());
  if (lanAddress) assert.equal(await answers(lanAddress, open.port), true, `served on ${lanAddress}`);
});

test('with logins required and without HOST: every interface, and the banner says logins are required', async () => {
  const registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
  assert.match(banner(registry), new RegExp(`^berth: registry listening on http://0\\.0\\.0\\.0:${registry.port} \\(every interface\\); logins required; data folder `));
  assert.ok(!registry.lines.some((line) => line.includes('WARNING')));
  if (lanAddress) assert.equal(await answers(lanAddress, registry.port), true, `served on ${lanAddress}`);
});

/** The `Location` of a GET of `path` sent to 127.0.0.1:`port` with the `Host` header `host`. */
function locationFor(port: number, path: string, host: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host } }, (response) => {
      response.resume();
      resolve({ status: response.statusCode ?? 0, location: response.headers.location });
    })
      .on('error', reject)
      .end();
  });
}

test('on every interface without BERTH_HOSTS, presigned URLs of the file store name the host the client used, not loopback', async () => {
  const registry = await RegistryProcess.start(cleanup, { env: { HOST: '0.0.0.0', BERTH_OPEN: '1', BERTH_BLOB_DELIVERY: 'redirect' } });
  const blob = Buffer.from('reached by its own name');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const pushed = await fetch(`${registry.url}/v2/lan/app/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: blob });
  assert.equal(pushed.status, 201, await pushed.text());
  const path = `/v2/lan/app/blobs/${digest}`;
  const named = await locationFor(registry.port, path, `registry.example.com:${registry.port}`);
  assert.equal(named.status, 307);
  assert.equal(new URL(named.location!).origin, `http://registry.example.com:${registry.port}`);
  assert.match(new URL(named.location!).pathname, /^\/_berth\/objects\//);
  if (lanAddress) {
    // A client on another machine: the redirect leads back to this server's LAN address, and serves the blob.
    const redirect = await fetch(`http://${lanAddress}:${registry.port}${path}`, { redirect: 'manual' });
    assert.equal(new URL(redirect.headers.get('location')!).origin, `http://${lanAddress}:${registry.port}`);
    assert.ok(Buffer.from(await (await fetch(`http://${lanAddress}:${registry.port}${path}`)).arrayBuffer()).equals(blob));
  }
});

test('redirect delivery to an S3 endpoint on the registry\'s own host name (Go clients would send it the password) is refused in one line', async () => {
  const external = { BERTH_DATA_DIR: scratch, PORT: '0', BERTH_DYNAMODB_ENDPOINT: 'http://127.0.0.1:9', BERTH_BLOB_DELIVERY: 'redirect' };
  const same = await start([], { ...external, HOST: '127.0.0.1', BERTH_AUTH: 'off', BERTH_S3_ENDPOINT: 'http://127.0.0.1:9000' });
  assert.equal(same.code, 2, same.output);
  assert.equal(
    same.stderr,
    "berth: invalid configuration: BERTH_BLOB_DELIVERY=redirect would send clients to BERTH_S3_ENDPOINT http://127.0.0.1:9000, on the registry's own host name 127.0.0.1, and Go clients (docker, crane, skopeo) send the user's Authorization (password) along to it: use BERTH_BLOB_DELIVERY=stream, or an S3 endpoint under another host name\n",
  );
  // On every interface, clients may name the machine: its host name (and a subdomain of it) clash too.
  const machine = await start([], { ...external, HOST: '0.0.0.0', BERTH_AUTH: 'required', BERTH_S3_ENDPOINT: `http://s3.${hostname()}:9000` });
  assert.equal(machine.code, 2, machine.output);
  assert.match(machine.stderr, new RegExp(`^berth: invalid configuration: BERTH_BLOB_DELIVERY=redirect would send clients to BERTH_S3_ENDPOINT http://s3\\.${hostname().replace(/\./g, '\\.')}:9000, on the registry's own host name ${hostname().toLowerCase().replace(/\./g, '\\.')},`));
  // Streaming sends clients nowhere else: the same endpoints start.
  const streaming = await RegistryProcess.start(cleanup, { env: { HOST: '127.0.0.1', BERTH_S3_ENDPOINT: 'http://127.0.0.1:9000', BERTH_DYNAMODB_ENDPOINT: 'http://127.0.0.1:9', BERTH_BLOB_DELIVERY: 'stream' } });
  assert.ok(streaming.running);
});
