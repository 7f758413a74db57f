/**
 * `npx berth push` end to end: a registry process (`infra/local/main.ts`) under
 * `BERTH_EMULATE_LAMBDA=1`, so every request meets API Gateway's and Lambda's limits and large
 * layers must go through the direct-to-S3 extension; images from the local Docker Engine, a
 * `docker save` archive and an OCI layout (skopeo); then `docker pull` must give the same image
 * id. Also a re-push ("Layer already exists"), a mount into another repository, and a registry
 * with `BERTH_AUTH=required` and `docker login`. Prints the push's peak RSS and throughput.
 *
 * Needs: dockerd, skopeo, /usr/bin/time (as test/e2e does).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  buildImage,
  Cleanup,
  describeFailure,
  Docker,
  importImage,
  MiB,
  RegistryProcess,
  run,
  RUN_ID,
  Skopeo,
  type RunResult,
} from '../e2e/helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;
let cacheDir: string;

before(async () => {
  docker = await Docker.create(cleanup);
  cacheDir = await cleanup.tempDir('push-cache');
  registry = await RegistryProcess.start(cleanup, { env: { BERTH_EMULATE_LAMBDA: '1' } });
});
after(() => cleanup.run());

interface Pushed {
  result: RunResult;
  digest: string;
  seconds: number;
  /** Peak resident set size of the push (KiB), from /usr/bin/time -v. */
  peakKiB: number;
}

/** `npx berth push <args>` under /usr/bin/time -v, which must succeed. */
async function berthPush(args: string[], env: Record<string, string> = {}, expectFailure = false): Promise<Pushed> {
  const started = Date.now();
  const result = await run('/usr/bin/time', ['-v', 'npx', 'berth', 'push', ...args], {
    env: { BERTH_CACHE_DIR: cacheDir, DOCKER_CONFIG: docker.configDir, ...env },
    timeoutMs: 600_000,
  });
  const seconds = (Date.now() - started) / 1000;
  if ((result.code === 0) === expectFailure) throw new Error(describeFailure(result));
  const digest = /^\S+: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(result.stdout)?.[1] ?? '';
  if (!expectFailure && !digest) throw new Error(`no digest line in:\n${result.output}`);
  const peakKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr)?.[1] ?? 0);
  return { result, digest, seconds, peakKiB };
}

const bigRef = () => `${registry.host}/push/big:${RUN_ID}`;
let bigId: string;

test('a 300 MiB random layer from the Docker Engine, through the direct upload extension; docker pull gives the same image id', async (t) => {
  bigId = await importImage(docker, cleanup, bigRef(), { 'big.bin': 300 * MiB });
  const pushed = await berthPush([bigRef()]);
  const out = pushed.result.stdout;
  assert.match(out, /: Compressing\n/);
  assert.match(out, /: Pushed\n/);
  assert.equal(registry.requests('POST', /^\/v2\/push\/big\/_berth\/uploads\/$/, 202).length, 1, 'the layer went through the extension');
  assert.equal(registry.requests('POST', /^\/v2\/push\/big\/blobs\/uploads\/$/, 201).length, 1, 'the config went by monolithic POST');
  const mib = 300 + 0.02;
  t.diagnostic(`berth push of 300 MiB: ${pushed.seconds.toFixed(1)} s (${(mib / pushed.seconds).toFixed(1)} MiB/s end to end), peak RSS ${(pushed.peakKiB / 1024).toFixed(0)} MiB`);
  assert.ok(pushed.peakKiB > 0 && pushed.peakKiB < 400 * 1024, `peak RSS ${pushed.peakKiB} KiB stays far below the layer size`);

  await docker.forget(bigRef());
  await docker.pull(bigRef(), 1, 600_000);
  assert.equal(await docker.imageId(bigRef()), bigId);
});

test('a re-push finds the layer without compressing it again: "Layer already exists"', async (t) => {
  const pushed = await berthPush([bigRef()]);
  t.diagnostic(`re-push: ${pushed.seconds.toFixed(1)} s`);
  assert.match(pushed.result.stdout, /: Layer already exists\n/);
  assert.doesNotMatch(pushed.result.stdout, /Compressing|Pushing/);
});

test('into another repository of the registry: mounted from the first one', async () => {
  const copy = `${registry.host}/push/copy:${RUN_ID}`;
  cleanup.images(copy);
  await docker.ok(['tag', bigRef(), copy]);
  const pushed = await berthPush([copy]);
  assert.match(pushed.result.stdout, /: Mounted from push\/big\n/);
  assert.equal(registry.requests('POST', /^\/v2\/push\/copy\/blobs\/uploads\/$/, 201).length, 2, 'the layer mounted, the config by POST ?mount= or a monolithic POST');
});

test('a docker save archive with several layers (a big one and small ones), pushed with an empty cache', async () => {
  const ref = `${registry.host}/push/archive:${RUN_ID}`;
  const id = await buildImage(docker, cleanup, ref, [{ 'a.bin': 12 * MiB }, { 'b.txt': 'hello\n' }, { 'c.bin': 3 * MiB }]);
  const archive = join(await cleanup.tempDir('archive'), 'image.tar');
  await docker.ok(['save', '-o', archive, ref], { timeoutMs: 300_000 });
  const pushed = await berthPush([ref, '--from', 'docker-archive', '--path', archive], { BERTH_CACHE_DIR: await cleanup.tempDir('push-cache-2') });
  assert.equal(pushed.result.stdout.match(/: Pushed\n/g)?.length, 3);
  await docker.forget(ref);
  await docker.pull(ref, 3, 300_000);
  assert.equal(await docker.imageId(ref), id);
});

test('an OCI layout made by skopeo: its manifest pushed unchanged; docker pull gives its config as image id', async () => {
  const source = `${registry.host}/push/oci-source:${RUN_ID}`;
  await buildImage(docker, cleanup, source, [{ 'x.bin': 9 * MiB }, { 'y.txt': 'oci\n' }]);
  const dir = join(await cleanup.tempDir('oci'), 'layout');
  await (await Skopeo.create(cleanup)).ok(['copy', `docker-daemon:${source}`, `oci:${dir}:v1`]);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0].digest;
  const manifest = JSON.parse(await readFile(join(dir, 'blobs', ...manifestDigest.split(':')), 'utf8')) as { config: { digest: string } };
  const ref = `${registry.host}/push/oci:${RUN_ID}`;
  cleanup.images(ref);
  const pushed = await berthPush([ref, '--path', `${dir}:v1`], { BERTH_CACHE_DIR: await cleanup.tempDir('push-cache-3') });
  assert.equal(pushed.digest, manifestDigest);
  await docker.pull(ref, 2, 300_000);
  assert.equal(await docker.imageId(ref), manifest.config.digest);
});

test('BERTH_AUTH=required: without a login the push is refused up front; after docker login it works', async () => {
  const secured = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
  await secured.addUser('pusher', 'push-password-1', 'writer');
  const ref = `${secured.host}/push/auth:${RUN_ID}`;
  const source = `${registry.host}/push/archive:${RUN_ID}`;
  cleanup.images(ref);
  await docker.ok(['tag', source, ref]);
  const refused = await berthPush([ref], {}, true);
  assert.match(refused.result.stderr, new RegExp(`needs a login: run docker login ${secured.host.replaceAll('.', '\\.')}`));
  assert.doesNotMatch(refused.result.stdout, /Compressing/, 'refused before any work');
  const login = await docker.login(secured.host, 'pusher', 'push-password-1');
  assert.equal(login.code, 0, describeFailure(login));
  const pushed = await berthPush([ref]);
  assert.match(pushed.result.stdout, /: Pushed\n/);
  assert.ok(secured.requests('GET', /^\/token/, 200).length + secured.requests('POST', /^\/token/, 200).length > 0, 'the token service was used');
  const id = await docker.imageId(ref);
  await docker.forget(ref);
  await docker.pull(ref, 3, 300_000);
  assert.equal(await docker.imageId(ref), id);
});

// The full CI run (BERTH_PUSH_HUGE=1) also pushes a 2 GiB layer: memory must not grow with the layer.
test('a 2 GiB random layer (BERTH_PUSH_HUGE=1): same image id after docker pull; peak RSS reported', { skip: process.env.BERTH_PUSH_HUGE !== '1' && 'set BERTH_PUSH_HUGE=1' }, async (t) => {
  const ref = `${registry.host}/push/huge:${RUN_ID}`;
  const id = await importImage(docker, cleanup, ref, { 'huge.bin': 2048 * MiB });
  const pushed = await berthPush([ref]);
  t.diagnostic(`berth push of 2 GiB: ${pushed.seconds.toFixed(1)} s (${(2048 / pushed.seconds).toFixed(1)} MiB/s end to end), peak RSS ${(pushed.peakKiB / 1024).toFixed(0)} MiB`);
  console.log(`berth push of 2 GiB: ${pushed.seconds.toFixed(1)} s, peak RSS ${(pushed.peakKiB / 1024).toFixed(0)} MiB`);
  assert.ok(pushed.peakKiB < 512 * 1024, `peak RSS ${pushed.peakKiB} KiB stays far below the layer size`);
  await docker.forget(ref);
  await docker.pull(ref, 1, 1_200_000);
  assert.equal(await docker.imageId(ref), id);
});
