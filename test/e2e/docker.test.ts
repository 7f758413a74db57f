/**
 * docker push / pull against the local server: a small imported image, a 64 MiB random layer,
 * a multi-layer `FROM scratch` build, a pull over another loopback address, re-push, push to a
 * second repository (cross-repository mount) and pull by digest.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildImage, Cleanup, Docker, getManifest, head, importImage, MiB, RegistryProcess, RUN_ID, sha256, withRegistryLog } from './helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;

before(async () => {
  docker = await Docker.create(cleanup);
  // Every interface, so that 127.0.0.2 reaches it too (an open registry listens on 127.0.0.1 alone
  // unless told otherwise); this machine's only network is loopback.
  registry = await RegistryProcess.start(cleanup, { env: { HOST: '0.0.0.0', BERTH_OPEN: '1' } });
});
after(() => cleanup.run());

const withLog = (body: () => Promise<void>) => withRegistryLog(() => registry, body);

/**
 * Pushes `ref`, checks what the registry now serves under it, removes the image locally and
 * pulls it back (as `pullRef`, default `ref`): the image id must be the original one.
 */
async function roundTrip(ref: string, repository: string, options: { pullRef?: string } = {}): Promise<{ digest: string; id: string }> {
  const id = await docker.imageId(ref);
  const layers = await docker.layerCount(ref);
  const { digest, output } = await docker.push(ref);
  assert.equal((output.match(/: Pushed$/gm) ?? []).length, layers, `every layer uploaded:\n${output}`);

  const manifest = await getManifest(registry, repository, ref.split(':').pop()!);
  assert.equal(manifest.status, 200);
  assert.equal(manifest.digestHeader, digest);
  assert.equal(sha256(manifest.bytes), digest, 'the registry serves the manifest bytes docker pushed');
  assert.equal(manifest.json.config.digest, id, 'the config blob is the image id');
  assert.equal(manifest.json.layers.length, layers);

  await docker.forget(ref);
  const pullRef = options.pullRef ?? ref;
  cleanup.images(pullRef);
  await docker.pull(pullRef, layers);
  assert.equal(await docker.imageId(pullRef), id, 'the pulled image has the id of the pushed one');
  return { digest, id };
}

test('docker push/pull: small single-layer image from docker import', { timeout: 300_000 }, withLog(async () => {
  const ref = `${registry.host}/e2e/small:${RUN_ID}`;
  await importImage(docker, cleanup, ref, { 'hello.txt': 'hello from berth\n', 'bin/data': 4096 });
  await roundTrip(ref, 'e2e/small');
}));

test('docker push/pull: image with a 64 MiB random layer', { timeout: 600_000 }, withLog(async () => {
  const ref = `${registry.host}/e2e/big:${RUN_ID}`;
  await importImage(docker, cleanup, ref, { 'random.bin': 64 * MiB });
  const { digest } = await roundTrip(ref, 'e2e/big');
  const manifest = await getManifest(registry, 'e2e/big', digest);
  const layer = manifest.json.layers[0];
  assert.ok(layer.size > 64 * MiB, `random data does not compress: layer of ${layer.size} bytes`);
  const blob = await head(registry, `e2e/big/blobs/${layer.digest}`);
  assert.equal(blob.status, 200);
  assert.equal(Number(blob.headers.get('content-length')), layer.size);
}));

test('docker push/pull: multi-layer image built FROM scratch with COPY steps', { timeout: 600_000 }, withLog(async () => {
  const ref = `${registry.host}/e2e/multi/layers:${RUN_ID}`;
  await buildImage(docker, cleanup, ref, [
    { 'a/one.txt': 'first layer\n', 'a/blob': 100_000 },
    { 'b/two.bin': 2 * MiB },
    { 'c/three.txt': 'third layer\n', 'c/nested/deeper/file': 10_000 },
    { 'd/four.bin': 5 * MiB + 17 },
  ]);
  assert.equal(await docker.layerCount(ref), 4);
  await roundTrip(ref, 'e2e/multi/layers');
}));

test('docker pull through 127.0.0.2 (another loopback address)', { timeout: 300_000 }, withLog(async () => {
  const ref = `${registry.host}/e2e/loopback:${RUN_ID}`;
  await importImage(docker, cleanup, ref, { 'loopback.bin': 300_000 });
  await roundTrip(ref, 'e2e/loopback', { pullRef: `127.0.0.2:${registry.port}/e2e/loopback:${RUN_ID}` });
}));

test('docker re-push of an image prints "Layer already exists"', { timeout: 300_000 }, withLog(async () => {
  const ref = `${registry.host}/e2e/again:${RUN_ID}`;
  await buildImage(docker, cleanup, ref, [{ 'x.bin': 200_000 }, { 'y.bin': 300_000 }]);
  const first = await docker.push(ref);
  assert.equal((first.output.match(/: Pushed$/gm) ?? []).length, 2, first.output);
  const uploadsBefore = registry.requests('POST', /^\/v2\/e2e\/again\/blobs\/uploads\/$/).length;

  const second = await docker.push(ref);
  assert.equal((second.output.match(/: Layer already exists$/gm) ?? []).length, 2, second.output);
  assert.doesNotMatch(second.output, /: Pushed$/m);
  assert.equal(second.digest, first.digest);
  assert.equal(registry.requests('POST', /^\/v2\/e2e\/again\/blobs\/uploads\/$/).length, uploadsBefore, 'no new upload session for a re-push');
}));

test('docker push of the same image to another repository (cross-repository mount)', { timeout: 300_000 }, withLog(async () => {
  const source = `${registry.host}/e2e/mount/source:${RUN_ID}`;
  const target = `${registry.host}/e2e/mount/target:${RUN_ID}`;
  const id = await buildImage(docker, cleanup, source, [{ 'm1.bin': 150_000 }, { 'm2.bin': 250_000 }]);
  const pushed = await docker.push(source);

  cleanup.images(target);
  await docker.ok(['tag', source, target]);
  const again = await docker.push(target);
  assert.equal(again.digest, pushed.digest, 'same manifest in both repositories');
  assert.equal((again.output.match(/: Mounted from e2e\/mount\/source$/gm) ?? []).length, 2, again.output);
  assert.equal(registry.requests('POST', /^\/v2\/e2e\/mount\/target\/blobs\/uploads\/$/, 201).length, 2, 'two mounts answered 201');

  // The target repository serves everything on its own, also once the image is gone locally.
  await docker.forget(source);
  await docker.pull(target, 2);
  assert.equal(await docker.imageId(target), id);
}));

test('docker pull by digest (name@sha256:…)', { timeout: 300_000 }, withLog(async () => {
  const ref = `${registry.host}/e2e/bydigest:${RUN_ID}`;
  const id = await importImage(docker, cleanup, ref, { 'digest.bin': 500_000 });
  const { digest } = await docker.push(ref);

  await docker.forget(ref);
  const byDigest = `${registry.host}/e2e/bydigest@${digest}`;
  cleanup.images(byDigest);
  const output = await docker.pull(byDigest, 1);
  assert.match(output, new RegExp(`Digest: ${digest}`));
  assert.equal(await docker.imageId(byDigest), id);
  const repoDigests = (await docker.ok(['image', 'inspect', '--format', '{{json .RepoDigests}}', byDigest])).stdout;
  assert.ok(JSON.parse(repoDigests).includes(byDigest), repoDigests);
}));

test('immutable tags: docker push cannot move a tag the rule covers, nor can a DELETE; the exception still moves', { timeout: 300_000 }, withLog(async () => {
  const repository = 'e2e/immutable';
  await registry.berthOk(['repo', 'immutable', 'e2e/immutable', 'on', '--except', 'latest']);
  const push = async (tag: string, content: string) => {
    const ref = `${registry.host}/${repository}:${tag}`;
    await importImage(docker, cleanup, ref, { 'version.txt': `${content} ${RUN_ID}` });
    return docker.run(['push', ref], { timeoutMs: 240_000 });
  };
  assert.equal((await push('1.0', 'first')).code, 0, 'a new tag is pushed');
  const first = (await getManifest(registry, repository, '1.0')).digestHeader;
  const moved = await push('1.0', 'second');
  assert.notEqual(moved.code, 0, `docker push must fail:\n${moved.output}`);
  assert.match(moved.output, /immutable/, 'docker prints the registry\'s reason');
  assert.equal((await getManifest(registry, repository, '1.0')).digestHeader, first, 'the tag still names the first image');
  const deleted = await fetch(`http://${registry.host}/v2/${repository}/manifests/1.0`, { method: 'DELETE' });
  assert.equal(deleted.status, 403);
  assert.equal(((await deleted.json()) as { errors: { code: string }[] }).errors[0].code, 'DENIED');
  for (const content of ['a', 'b']) assert.equal((await push('latest', content)).code, 0, 'latest is an exception');
}));
