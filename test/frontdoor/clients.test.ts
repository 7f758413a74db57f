/**
 * Real clients through the emulated AWS deployment (`BERTH_EMULATE_LAMBDA=1 npm start`: the
 * emulated CloudFront front door running infra/aws/frontdoor/function.js, before the emulated API
 * Gateway + Lambda and its ~4.4 MiB request limit). Clients that upload a blob as one
 * `PUT <Location>?digest=…` (containerd's pusher, oras, regctl, BuildKit) push layers far over
 * that limit: the PUT goes straight to S3 through the front door, none of the layer through a
 * Lambda request body (checked in the registry log: the CloudFront emulator's line
 * `PUT /v2/<name>/blobs/uploads/<uuid>.<exp>.<kv>.<sig> 201 … in=<bytes> origin=blobs`, and the
 * API Gateway emulator's lines `… in=<bytes> out=<bytes>` for the repository). Blob GETs answer
 * 307 to a signed `/_berth/blobs/…` path, served from S3 by the front door.
 *
 * - containerd 1.6 (Debian's `ctr`) pushes an image with a 300 MiB layer; the system docker
 *   (20.10, classic store) pulls it back (same image id);
 * - containerd 2.4's `ctr` pushes it too and pulls it into a fresh root;
 * - Docker 29 (containerd image store, on containerd 2.4) pushes it, and a debootstrapped Debian
 *   image, which the system docker pulls back;
 * - oras pushes and pulls a 100 MiB artifact; regctl copies a multi-layer image from an OCI
 *   layout; BuildKit builds and pushes an image with a 30 MiB layer.
 * Classic docker's PATCH uploads (refused over the limit with API Gateway's 413) are covered by
 * test/emulation/docker.test.ts.
 *
 * Each push prints `fd-timing: <client> <MiB> <seconds>`. Needs root, the system dockerd
 * (test/e2e/setup.sh), skopeo, Debian's containerd, debootstrap, runc, and the tools of
 * test/frontdoor/tools.sh and test/clients/install.sh (built from the Go module proxy when missing).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureBundle } from '../../infra/local/lambda-emulator.js';
import { bin, scratch } from '../clients/helpers.js';
import { debianTarball } from '../e2e/debian.js';
import {
  buildImage,
  Cleanup,
  Containerd,
  Docker,
  getManifest,
  importImage,
  MiB,
  RegistryProcess,
  runOk,
  RUN_ID,
  Skopeo,
  waitFor,
  withRegistryLog,
  writeRandomFile,
  type FetchedManifest,
} from '../e2e/helpers.js';
import { frontdoorTools, startBuildkit, startContainerd, startDocker29, type FrontdoorTools } from './daemons.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;
let tools: FrontdoorTools;

/** The largest request body the emulated API Gateway + Lambda take (a PATCH client's chunk). */
const LAMBDA_LIMIT = 4.4 * MiB;
const BIG_MiB = 300;

before(async () => {
  // Build the Lambda bundle here if it is stale, not inside the registry's start-up wait.
  ensureBundle();
  tools = await frontdoorTools(['containerd', 'docker', 'buildkit']);
  docker = await Docker.create(cleanup);
  registry = await RegistryProcess.start(cleanup, { env: { BERTH_EMULATE_LAMBDA: '1', BERTH_FRONT_DOOR: '1' } });
  await waitFor('the registry to say it runs behind the front door', () => registry.lines.some((line) => line.includes('emulated CloudFront front door')), 10_000);
  await warmUp();
});

/**
 * Starts the execution environments the clients' parallel requests need, and the `verify`
 * function, before any client runs. A cold start imports a Lambda bundle on the registry
 * process's main thread (about 1.5 s of CPU here); the CloudFront emulator measures its 100 ms
 * function time cap with a main-thread timer, so a cold start during a client's upload can fail
 * an upload PUT with the emulator's 503 "did not finish within 100 ms" (regctl then falls back to
 * 1 MiB PATCHes through the Lambda). Nothing of the kind happens on AWS, where the function does
 * not share a CPU with the Lambda functions.
 */
async function warmUp(): Promise<void> {
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      const response = await fetch(`${registry.url}/v2/`);
      await response.body?.cancel();
      assert.equal(response.status, 200);
    }),
  );
  const blob = Buffer.from(`warm-up ${RUN_ID}\n`);
  const post = await fetch(`${registry.url}/v2/fd/warm-up/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202, registry.tail());
  const put = await fetch(`${registry.url}${post.headers.get('location')}?digest=sha256:${createHash('sha256').update(blob).digest('hex')}`, { method: 'PUT', body: blob });
  assert.equal(put.status, 201, `${await put.text()}\n${registry.tail()}`);
  await waitFor('the verify function to publish the warm-up blob', async () => {
    const response = await fetch(`${registry.url}/v2/fd/warm-up/blobs/sha256:${createHash('sha256').update(blob).digest('hex')}`, { method: 'HEAD' });
    return response.status === 200;
  }, 30_000, 200);
}
after(() => cleanup.run());

// ---------------------------------------------------------------------------------------------
// Helpers

/** Something with a log to add to a failure and a `stop()` for the end of the test. */
interface Watched {
  what: string;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A test with the registry log appended to failures, plus the logs of the daemons it `watch`es,
 * which are stopped when it ends.
 */
function fdTest(name: string, timeoutMs: number, body: (watch: <T extends Watched>(daemon: T) => T) => Promise<void>): void {
  test(name, { timeout: timeoutMs }, withRegistryLog(() => registry, async () => {
    const watched: Watched[] = [];
    try {
      await body((daemon) => (watched.push(daemon), daemon));
    } catch (error) {
      if (error instanceof Error) for (const daemon of watched) error.message += `\n--- ${daemon.what} log (last lines) ---\n${await daemon.log().catch(() => '')}`;
      throw error;
    } finally {
      for (const daemon of watched.reverse()) await daemon.stop();
    }
  }));
}

/** Runs `push`, prints `fd-timing: <client> <MiB> <seconds>` and returns its result. */
async function timed<T>(client: string, mib: number, push: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await push();
  console.log(`fd-timing: ${client} ${mib} ${((performance.now() - started) / 1000).toFixed(1)}`);
  return result;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface FrontDoorPut {
  status: number;
  bytes: number;
  origin: string;
}

/** The CloudFront emulator's lines for PUTs to signed upload URLs of `repository`. */
function uploadPuts(lines: string[], repository: string): FrontDoorPut[] {
  const pattern = new RegExp(`^PUT /v2/${escape(repository)}/blobs/uploads/[0-9a-f-]{36}\\.\\d+\\.\\d+\\.[A-Za-z0-9_-]{43} (\\d{3}) \\S+ in=(\\d+) origin=(\\S+)`);
  return lines.flatMap((line) => {
    const match = pattern.exec(line);
    return match ? [{ status: Number(match[1]), bytes: Number(match[2]), origin: match[3] }] : [];
  });
}

/** The API Gateway emulator's lines (`METHOD path status time in=… out=…`) for requests of `repository`. */
function gatewayRequests(lines: string[], repository: string): Array<{ line: string; bytesIn: number }> {
  const pattern = new RegExp(`^[A-Z]+ /v2/${escape(repository)}/\\S* \\d{3} \\S+ in=(\\d+) out=\\d+`);
  return lines.flatMap((line) => {
    const match = pattern.exec(line);
    return match ? [{ line, bytesIn: Number(match[1]) }] : [];
  });
}

/**
 * Every blob of `sizes` (bytes) over the Lambda limit went up as one whole-blob PUT to S3 through
 * the front door (201, `origin=blobs`, the whole blob as its body) since log line `mark`, and no
 * Lambda request of `repository` carried more than a manifest's worth of body.
 */
async function assertPushedThroughFrontDoor(mark: number, repository: string, sizes: number[]): Promise<void> {
  const big = sizes.filter((size) => size > LAMBDA_LIMIT);
  assert.ok(big.length > 0, `some blob of ${repository} is over the Lambda limit: ${sizes.join(', ')}`);
  const found = await waitFor(
    `whole-blob PUTs of ${big.join(', ')} bytes to ${repository} through the front door`,
    () => {
      const puts = uploadPuts(registry.lines.slice(mark), repository);
      return big.every((size) => puts.some((put) => put.status === 201 && put.origin === 'blobs' && put.bytes === size)) && puts;
    },
    10_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; upload PUTs seen: ${JSON.stringify(uploadPuts(registry.lines.slice(mark), repository))}`);
  });
  assert.ok(found.length >= big.length);
  const lambda = gatewayRequests(registry.lines.slice(mark), repository);
  const lambdaBytes = lambda.reduce((sum, request) => sum + request.bytesIn, 0);
  assert.ok(lambda.length > 0, `the manifest PUT (at least) went through API Gateway for ${repository}`);
  assert.ok(
    lambdaBytes < Math.min(...big) && lambda.every((request) => request.bytesIn < 256 * 1024),
    `no layer bytes went through a Lambda request body (${lambdaBytes} bytes in all):\n${lambda.map((request) => request.line).join('\n')}`,
  );
  assert.deepEqual(
    lambda.filter((request) => request.line.startsWith('PATCH ') && request.bytesIn > 0).map((request) => request.line),
    [],
    'no PATCH with a body',
  );
}

/**
 * Since log line `mark`: a blob GET of `repository` answered 307 by the API, and at least
 * `bytes` served from S3 through the front door's signed `/_berth/blobs/…` paths.
 */
async function assertPulledThroughFrontDoor(mark: number, repository: string, digest: string, bytes: number): Promise<void> {
  const redirect = new RegExp(`^GET /v2/${escape(repository)}/blobs/${digest} 307 \\S+ in=\\d+ origin=api`);
  const served = /^GET \/_berth\/blobs\/[0-9a-f-]{36}\.\d+\.\d+\.[A-Za-z0-9_-]{43} 20[06] \S+ in=\d+ origin=blobs .*out=(\d+)/;
  await waitFor(
    `GET ${repository}@${digest} → 307 → /_berth/blobs/… (${bytes} bytes from S3)`,
    () => {
      const lines = registry.lines.slice(mark);
      const total = lines.reduce((sum, line) => sum + Number(served.exec(line)?.[1] ?? 0), 0);
      return lines.some((line) => redirect.test(line)) && total >= bytes;
    },
    10_000,
  );
}

/** The image manifest of `repository:reference` (the linux/amd64 one if that is an index). */
async function imageManifest(repository: string, reference: string): Promise<FetchedManifest> {
  const fetched = await getManifest(registry, repository, reference);
  assert.equal(fetched.status, 200, `GET manifest ${repository}:${reference}`);
  const index = fetched.json as unknown as { manifests?: Array<{ digest: string; platform?: { os: string; architecture: string } }> };
  if (!index.manifests) return fetched;
  const entry = index.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
  assert.ok(entry, `a linux/amd64 manifest in the index of ${repository}:${reference}: ${fetched.bytes.toString()}`);
  return imageManifest(repository, entry.digest);
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

const round = (bytes: number) => Math.round(bytes / MiB);

/** `<tool> --version`-like first line. */
async function versionOf(command: string, args: string[], env?: Record<string, string>): Promise<string> {
  return (await runOk(command, args, { env })).stdout.trim().split('\n')[0];
}

// ---------------------------------------------------------------------------------------------
// The image with a 300 MiB random layer, made once with the system docker

interface BigImage {
  /** Its name in the system docker (until test 1 removes it there) and in `docker save`. */
  local: string;
  /** The image id: the config digest. */
  id: string;
  /** `docker save` archive. */
  archive: string;
}

let big: Promise<BigImage> | undefined;
function bigImage(): Promise<BigImage> {
  return (big ??= (async () => {
    const work = await cleanup.tempDir('fd-big');
    const local = `berth-e2e/fd-big:${RUN_ID}`;
    const id = await importImage(docker, cleanup, local, { 'big/random.bin': BIG_MiB * MiB });
    const archive = join(work, 'big.tar');
    await docker.ok(['save', '-o', archive, local], { timeoutMs: 900_000 });
    return { local, id, archive };
  })());
}

// ---------------------------------------------------------------------------------------------
// The tests

fdTest(`containerd 1.6 ctr pushes a ${BIG_MiB} MiB layer; the system docker pulls it back`, 3_600_000, async (watch) => {
  const image = await bigImage();
  const work = await cleanup.tempDir('fd-ctr16');
  const version = await versionOf('ctr', ['--version']);
  console.log(`fd-version: ${version}`);
  const containerd = await Containerd.start(cleanup, join(work, 'c'));
  watch({ what: 'containerd 1.6', log: () => containerd.log(), stop: () => containerd.stop() });
  await containerd.ctr(['images', 'import', '--no-unpack', image.archive], 900_000);
  const [[localRef, digest], ...others] = [...(await containerd.images())];
  assert.equal(others.length, 0, 'one imported image');

  const remote = `${registry.host}/fd/ctr16:${RUN_ID}`;
  const mark = registry.lines.length;
  await timed(`ctr-${version.split(' ').pop()}`, BIG_MiB, () => containerd.ctr(['images', 'push', '--plain-http', remote, localRef], 1_800_000));
  const served = await imageManifest('fd/ctr16', RUN_ID);
  assert.equal(served.digestHeader, digest, 'the registry serves the manifest containerd pushed');
  assert.equal(served.json.config.digest, image.id, 'its config is the docker image id');
  const [layer] = served.json.layers;
  assert.ok(layer.size > BIG_MiB * MiB, `the ${layer.size}-byte layer`);
  await assertPushedThroughFrontDoor(mark, 'fd/ctr16', [layer.size]);

  // The system docker (classic store), with the image removed there: downloads the layer.
  await docker.forget(image.local);
  cleanup.images(remote);
  const pullMark = registry.lines.length;
  await docker.pull(remote, 1, 1_800_000);
  assert.equal(await docker.imageId(remote), image.id, 'docker pulled the same image');
  await assertPulledThroughFrontDoor(pullMark, 'fd/ctr16', layer.digest, layer.size);
});

fdTest(`containerd 2.4 ctr pushes the ${BIG_MiB} MiB image and pulls it into a fresh root`, 3_600_000, async (watch) => {
  const image = await bigImage();
  const work = await cleanup.tempDir('fd-ctr24');
  const binaries = { containerd: tools.CONTAINERD!, ctr: tools.CTR! };
  const version = await versionOf(tools.CTR!, ['--version']);
  console.log(`fd-version: ${version}`);
  const first = await Containerd.start(cleanup, join(work, 'a'), 'test', binaries);
  watch({ what: 'containerd 2.4 (push)', log: () => first.log(), stop: () => first.stop() });
  await first.ctr(['images', 'import', '--no-unpack', image.archive], 900_000);
  const [[localRef, digest], ...others] = [...(await first.images())];
  assert.equal(others.length, 0, 'one imported image');

  const remote = `${registry.host}/fd/ctr24:${RUN_ID}`;
  const mark = registry.lines.length;
  await timed(`ctr-${version.split(' ').pop()}`, BIG_MiB, () => first.ctr(['images', 'push', '--plain-http', remote, localRef], 1_800_000));
  const served = await imageManifest('fd/ctr24', RUN_ID);
  assert.equal(served.digestHeader, digest, 'the registry serves the manifest containerd pushed');
  assert.equal(served.json.config.digest, image.id);
  const [layer] = served.json.layers;
  await assertPushedThroughFrontDoor(mark, 'fd/ctr24', [layer.size]);
  await first.stop();

  const second = await Containerd.start(cleanup, join(work, 'b'), 'test', binaries);
  watch({ what: 'containerd 2.4 (pull)', log: () => second.log(), stop: () => second.stop() });
  const pullMark = registry.lines.length;
  await second.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'native', remote], 1_800_000);
  assert.equal((await second.images()).get(remote), digest, 'the pulled manifest digest is the pushed one');
  const manifest = JSON.parse((await second.ctr(['content', 'get', digest])).stdout) as { config: { digest: string } };
  assert.equal(manifest.config.digest, image.id);
  await assertPulledThroughFrontDoor(pullMark, 'fd/ctr24', layer.digest, layer.size);
});

fdTest(`Docker 29 (containerd image store) pushes the ${BIG_MiB} MiB image and a Debian image`, 3_600_000, async (watch) => {
  const image = await bigImage();
  const containerd = watch({ what: 'containerd 2.4 (Docker 29)', ...(await startContainerd(tools.CONTAINERD!, { cleanup })) });
  const daemon = await startDocker29({ dockerd: tools.DOCKERD!, containerd, cleanup });
  watch({ what: 'dockerd 29', log: () => daemon.log(), stop: () => daemon.stop() });
  const docker29 = (args: string[], timeoutMs = 600_000) => docker.ok(args, { env: daemon.env, timeoutMs });
  const version = (await docker29(['version', '--format', 'client {{.Client.Version}} (API {{.Client.APIVersion}}), server {{.Server.Version}} (API {{.Server.APIVersion}})'])).stdout.trim();
  console.log(`fd-version: docker 29 daemon: ${version}; system docker: ${(await docker.ok(['version', '--format', 'client {{.Client.Version}}, server {{.Server.Version}}'])).stdout.trim()}`);
  const pushed = (output: string) => /digest: (sha256:[0-9a-f]{64})/.exec(output)?.[1];

  // The 300 MiB image, from the docker save archive.
  await docker29(['load', '-i', image.archive], 1_200_000);
  const remote = `${registry.host}/fd/docker29:${RUN_ID}`;
  await docker29(['tag', image.local, remote]);
  let mark = registry.lines.length;
  const bigPush = await timed('docker-29', BIG_MiB, () => docker29(['push', remote], 1_800_000));
  const served = await imageManifest('fd/docker29', RUN_ID);
  assert.equal(served.json.config.digest, image.id, 'Docker 29 pushed the same config');
  const digest = pushed(bigPush.output);
  assert.ok(digest, `a digest in the output of docker push:\n${bigPush.output}`);
  assert.equal((await getManifest(registry, 'fd/docker29', RUN_ID)).digestHeader, digest);
  await assertPushedThroughFrontDoor(mark, 'fd/docker29', served.json.layers.map((layer) => layer.size));

  // A real Debian root filesystem: docker import into Docker 29, push, pull with the system docker.
  const debian = `${registry.host}/fd/debian:${RUN_ID}`;
  await docker29(['import', await debianTarball(), debian], 900_000);
  mark = registry.lines.length;
  const started = performance.now();
  const debianPush = await docker29(['push', debian], 1_800_000);
  const seconds = (performance.now() - started) / 1000;
  const debianManifest = await imageManifest('fd/debian', RUN_ID);
  const sizes = debianManifest.json.layers.map((layer) => layer.size);
  console.log(`fd-timing: docker-29-debian ${round(sizes.reduce((a, b) => a + b, 0))} ${seconds.toFixed(1)}`);
  assert.equal((await getManifest(registry, 'fd/debian', RUN_ID)).digestHeader, pushed(debianPush.output));
  await assertPushedThroughFrontDoor(mark, 'fd/debian', sizes);

  cleanup.images(debian);
  const pullMark = registry.lines.length;
  await docker.pull(debian, 1, 1_200_000);
  assert.equal(await docker.imageId(debian), debianManifest.json.config.digest, 'the system docker pulled the config Docker 29 pushed');
  const [layer] = debianManifest.json.layers;
  await assertPulledThroughFrontDoor(pullMark, 'fd/debian', layer.digest, layer.size);
  const release = await docker.ok(['run', '--rm', '--network', 'none', debian, 'cat', '/etc/debian_version'], { timeoutMs: 300_000 });
  assert.match(release.stdout, /^\d+/, 'the pulled Debian runs');
});

fdTest('oras pushes and pulls a 100 MiB artifact', 1_800_000, async () => {
  ensureGoOnPath();
  const oras = bin('oras');
  console.log(`fd-version: oras ${await versionOf(oras, ['version'])}`);
  const home = await scratch();
  cleanup.add(`remove ${home.dir}`, () => home.cleanup());
  const src = join(home.dir, 'src');
  const payload = join(src, 'payload.bin');
  await writeRandomFile(payload, 100 * MiB);
  const digest = await fileDigest(payload);
  const ref = `${registry.host}/fd/oras:v1`;

  const mark = registry.lines.length;
  const push = await timed('oras', 100, () =>
    runOk(oras, ['push', '--plain-http', '--format', 'json', ref, '--artifact-type', 'application/vnd.berth.test.v1', 'payload.bin:application/octet-stream'], { env: home.env, cwd: src, timeoutMs: 1_200_000 }),
  );
  const manifest = await imageManifest('fd/oras', 'v1');
  assert.equal(manifest.digestHeader, (JSON.parse(push.stdout) as { digest: string }).digest);
  assert.deepEqual(manifest.json.layers.map((layer) => [layer.digest, layer.size]), [[digest, 100 * MiB]]);
  await assertPushedThroughFrontDoor(mark, 'fd/oras', [100 * MiB]);

  const out = join(home.dir, 'out');
  await mkdir(out);
  const pullMark = registry.lines.length;
  await runOk(oras, ['pull', '--plain-http', ref], { env: home.env, cwd: out, timeoutMs: 1_200_000 });
  assert.equal(await fileDigest(join(out, 'payload.bin')), digest, 'oras pulled the same bytes');
  assert.equal((await stat(join(out, 'payload.bin'))).size, 100 * MiB);
  await assertPulledThroughFrontDoor(pullMark, 'fd/oras', digest, 100 * MiB);
});

fdTest('regctl copies a multi-layer image from an OCI layout', 1_800_000, async () => {
  ensureGoOnPath();
  const regctl = bin('regctl');
  console.log(`fd-version: regctl ${(await runOk(regctl, ['version', '--format', '{{.VCSTag}}'])).stdout.trim()}`);
  const home = await scratch();
  cleanup.add(`remove ${home.dir}`, () => home.cleanup());
  const work = await cleanup.tempDir('fd-regctl');

  // Three layers, two of them over 5 MiB, from the system docker through docker save and skopeo.
  const local = `berth-e2e/fd-multi:${RUN_ID}`;
  await buildImage(docker, cleanup, local, [{ 'a/six.bin': 6 * MiB }, { 'b/nine.bin': 9 * MiB }, { 'c/small.txt': 'a small layer\n' }]);
  await docker.ok(['save', '-o', join(work, 'multi.tar'), local], { timeoutMs: 300_000 });
  const skopeo = await Skopeo.create(cleanup);
  await skopeo.ok(['copy', `docker-archive:${join(work, 'multi.tar')}`, `oci:${join(work, 'layout')}:v1`]);
  const source = `ocidir://${join(work, 'layout')}:v1`;
  const sourceDigest = (await runOk(regctl, ['image', 'digest', source], { env: home.env })).stdout.trim();

  await runOk(regctl, ['registry', 'set', registry.host, '--tls', 'disabled', '--skip-check'], { env: home.env });
  const target = `${registry.host}/fd/regctl:v1`;
  const layout = JSON.parse(await readFile(join(work, 'layout', 'blobs', ...sourceDigest.split(':')), 'utf8')) as { layers: Array<{ size: number }> };
  const total = layout.layers.reduce((sum, layer) => sum + layer.size, 0);
  const mark = registry.lines.length;
  await timed('regctl', round(total), () => runOk(regctl, ['image', 'copy', source, target], { env: home.env, timeoutMs: 1_200_000 }));

  const served = await imageManifest('fd/regctl', 'v1');
  assert.equal(served.digestHeader, sourceDigest, 'the registry serves the manifest of the layout');
  assert.equal(served.json.layers.length, 3);
  assert.equal(served.json.layers.filter((layer) => layer.size > 5 * MiB).length, 2, 'two layers over 5 MiB');
  await assertPushedThroughFrontDoor(mark, 'fd/regctl', served.json.layers.map((layer) => layer.size));
  for (const layer of served.json.layers) {
    const bytes = Buffer.from(await (await fetch(`${registry.url}/v2/fd/regctl/blobs/${layer.digest}`)).arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, layer.digest, `layer ${layer.digest} served back`);
  }
});

fdTest('BuildKit builds FROM scratch with a 30 MiB COPY and pushes it', 1_800_000, async (watch) => {
  const version = await versionOf(tools.BUILDCTL!, ['--version']);
  console.log(`fd-version: ${version}`);
  const buildkit = await startBuildkit({ buildkitd: tools.BUILDKITD!, buildctl: tools.BUILDCTL, cleanup, readyTimeoutMs: 120_000 });
  watch({ what: 'buildkitd', log: () => buildkit.log(), stop: () => buildkit.stop() });
  const context = await cleanup.tempDir('fd-buildkit');
  await writeRandomFile(join(context, 'random.bin'), 30 * MiB);
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY random.bin /random.bin\n');
  const metadata = join(context, 'metadata.json');
  const name = `${registry.host}/fd/bk:1`;
  const mark = registry.lines.length;
  await timed('buildkit', 30, () =>
    runOk(
      tools.BUILDCTL!,
      [
        '--addr', buildkit.address,
        'build',
        '--frontend', 'dockerfile.v0',
        '--local', `context=${context}`,
        '--local', `dockerfile=${context}`,
        '--output', `type=image,name=${name},push=true,registry.insecure=true`,
        '--metadata-file', metadata,
      ],
      { timeoutMs: 1_200_000 },
    ),
  );
  const built = JSON.parse(await readFile(metadata, 'utf8')) as Record<string, string>;
  const served = await getManifest(registry, 'fd/bk', '1');
  assert.equal(served.status, 200);
  assert.equal(served.digestHeader, built['containerimage.digest'], 'the registry serves the manifest BuildKit pushed');
  const manifest = await imageManifest('fd/bk', '1');
  assert.equal(manifest.json.layers.length, 1);
  assert.ok(manifest.json.layers[0].size > 30 * MiB, `the layer holds the 30 MiB file (${manifest.json.layers[0].size} bytes)`);
  await assertPushedThroughFrontDoor(mark, 'fd/bk', [manifest.json.layers[0].size]);
  const config = await fetch(`${registry.url}/v2/fd/bk/blobs/${manifest.json.config.digest}`);
  assert.equal(config.status, 200);
  assert.equal(((await config.json()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids.length, 1);
});

/** test/clients/install.sh runs `go`; the Go toolchain of this machine is in /usr/local/go/bin. */
function ensureGoOnPath(): void {
  const path = process.env.PATH ?? '';
  if (!path.split(':').includes('/usr/local/go/bin')) process.env.PATH = `${path}:/usr/local/go/bin`;
}
