/**
 * The pull-through cache as deployed: `BERTH_EMULATE_LAMBDA=1 npm start` (API Gateway + Lambda
 * limits, the front door) caches an upstream Berth on MinIO whose blob GETs redirect to presigned
 * MinIO URLs (`BERTH_BLOB_DELIVERY=redirect`, as Docker Hub and GHCR redirect to their storage).
 * A 100 MiB layer cannot pass through a Lambda answer: the first pull gets the upstream's own
 * redirect while the blob is copied into Berth's S3 in the background, verified; the second pull
 * is served from Berth's own storage.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { provision } from '../backends/provision.js';
import { startEmulatedRegistry, type EmulatedRegistry } from '../emulation/helpers.js';
import { Cleanup, MiB, RegistryProcess, runOk, waitFor } from '../e2e/helpers.js';
import { berth } from '../support/cli.js';
import { Crane } from './helpers.js';

const cleanup = new Cleanup();
const USER = 'mirror';
const PASSWORD = 'upstream-secret-1';
let upstream: RegistryProcess;
let emulated: EmulatedRegistry;
let minio: string;
let crane: Crane;
let layer: string;

/** The environment file test/backends/start.sh writes, as variables. */
async function readEnvFile(path: string): Promise<Record<string, string>> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((line) => /^[A-Z0-9_]+=/.test(line));
  return Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).replace(/^['"]|['"]$/g, '')]));
}

before(async () => {
  const envFile = join(await cleanup.tempDir('backends'), 'backends.env');
  await runOk('bash', ['test/backends/start.sh', envFile], { timeoutMs: 900_000 });
  cleanup.add('stop MinIO and moto', () => runOk('bash', ['test/backends/stop.sh', envFile]));
  const backends = await readEnvFile(envFile);
  minio = backends.BERTH_TEST_S3_ENDPOINT;
  const env = await provision('upstream', backends);
  // On external back ends the server writes no endpoints.json: this one leads `npx berth` to its table.
  const dataDir = await cleanup.tempDir('upstream');
  const endpoints = { BERTH_DYNAMODB_ENDPOINT: env.BERTH_DYNAMODB_ENDPOINT, BERTH_TABLE: env.BERTH_TABLE, AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY, BERTH_AUTH: 'required' };
  await writeFile(join(dataDir, 'endpoints.json'), JSON.stringify(endpoints));
  // On 127.0.0.1 alone: MinIO is named `localhost`, which a registry on every interface would also
  // answer to, and npm start refuses to redirect clients (with their password) to its own name.
  upstream = await RegistryProcess.start(cleanup, { dataDir, env: { ...env, HOST: '127.0.0.1', BERTH_BLOB_DELIVERY: 'redirect', BERTH_AUTH: 'required' } });
  await upstream.addUser(USER, PASSWORD, 'writer');
  crane = await Crane.create(cleanup, { [upstream.host]: { username: USER, password: PASSWORD } });
  const dir = await cleanup.tempDir('big-layer');
  await runOk('sh', ['-c', `head -c ${100 * MiB} /dev/urandom > "${join(dir, 'big.bin')}" && tar -C "${dir}" -cf "${join(dir, 'big.tar')}" big.bin`]);
  await crane.ok(['append', '-f', join(dir, 'big.tar'), '-t', `${upstream.host}/team/big:v1`], 600_000);
  const manifest = JSON.parse(await crane.ok(['manifest', `${upstream.host}/team/big:v1`])) as { layers: Array<{ digest: string; size: number }> };
  assert.ok(manifest.layers[0].size > 100 * MiB, `the layer has ${manifest.layers[0].size} bytes`);
  layer = manifest.layers[0].digest;

  emulated = await startEmulatedRegistry({ BERTH_AUTH: 'off', BERTH_GC_INTERVAL: 'off' });
  cleanup.add('stop the emulated registry', () => emulated.stop());
  const added = await berth(['cache', 'add', 'up', upstream.url, '--username', USER, '--password-stdin'], { dataDir: emulated.dataDir, input: `${PASSWORD}\n` });
  assert.equal(added.code, 0, added.output);
});
after(() => cleanup.run());

/** Where the emulated deployment sends a GET of the layer (its 307's Location), or `HTTP <status>` when it does not redirect. */
async function layerLocation(): Promise<string> {
  const response = await fetch(`${emulated.url}/v2/up/team/big/blobs/${layer}`, { redirect: 'manual' });
  await response.body?.cancel();
  return response.headers.get('location') ?? `HTTP ${response.status}`;
}

test('a 100 MiB layer pulls on the first try (the upstream storage), then from Berth', async () => {
  const dir = await cleanup.tempDir('pulls');
  const client = await Crane.create(cleanup);
  const first = await client.run(['pull', `${emulated.host}/up/team/big:v1`, join(dir, 'first.tar')], 600_000);
  assert.equal(first.code, 0, first.output);
  // The first pull went to the upstream's MinIO; nothing was answered 429.
  assert.ok(!emulated.log.some((line) => / 429 /.test(line) && line.includes(layer)), emulated.tail());

  // The background copy lands in Berth's own S3, verified: then Berth redirects to itself.
  const upstreamHost = new URL(minio).host;
  let location = '';
  const own = await waitFor(
    'the layer to be served from Berth\'s own storage',
    async () => {
      location = await layerLocation();
      // Berth's own: the front door's signed path (relative) or a presigned URL of its own S3.
      return !location.startsWith('HTTP ') && !location.includes(upstreamHost) ? location : undefined;
    },
    180_000,
    1000,
  ).catch((error: Error) => {
    const failures = emulated.log.filter((line) => !/^(GET|HEAD|PUT|POST|PATCH|DELETE) /.test(line));
    throw new Error(`${error.message}; last redirect to ${location}; the emulated deployment logged:\n${failures.slice(-30).join('\n')}`);
  });
  assert.doesNotMatch(own, new RegExp(upstreamHost.replace('.', '\\.')));
  const upstreamGets = upstream.requests('GET', new RegExp(`^/v2/team/big/blobs/${layer}$`), 307).length;

  const second = await client.run(['pull', `${emulated.host}/up/team/big:v1`, join(dir, 'second.tar')], 600_000);
  assert.equal(second.code, 0, second.output);
  assert.equal(upstream.requests('GET', new RegExp(`^/v2/team/big/blobs/${layer}$`), 307).length, upstreamGets, 'the second pull did not reach the upstream');
  const usage = await berth(['du'], { dataDir: emulated.dataDir });
  assert.match(usage.stdout, /total 100\.\d MiB in 2 blobs/);
});
