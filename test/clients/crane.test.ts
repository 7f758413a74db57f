/**
 * crane (go-containerregistry) against `npm start`: push of an image tarball built with
 * `crane append` from a random tar layer, pull in OCI layout, copy (a cross-repository mount),
 * and a multi-platform index made with `crane index append`. Digests and bytes are compared with
 * what was built locally.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { bin, makeTar, manifestBytes, randomFiles, requests, run, scratch, sha256, startBerth, type Berth } from './helpers.js';

let berth: Berth;
let home: Awaited<ReturnType<typeof scratch>>;
let crane: (...args: string[]) => Promise<string>;

before(async () => {
  const file = bin('crane');
  [berth, home] = await Promise.all([startBerth(), scratch()]);
  crane = async (...args) => (await run(berth, file, ['--insecure', ...args], home.env, home.dir)).stdout.trim();
});
after(async () => {
  await berth?.stop();
  await home?.cleanup();
});

/** Builds `<name>.image.tar` (docker tarball) with one random layer; returns paths and digests. */
async function buildImage(name: string, tag: string) {
  const layerTar = await makeTar(home.dir, `${name}-layer`, randomFiles(name, 3, 150_000));
  const image = join(home.dir, `${name}.image.tar`);
  await run(berth, bin('crane'), ['append', '-f', layerTar, '-t', tag, '-o', image], home.env, home.dir);
  const digest = await crane('digest', '--tarball', image);
  const manifest = JSON.parse(execFileSync('tar', ['-xOf', image, 'manifest.json'], { encoding: 'utf8' }))[0] as { Config: string; Layers: string[] };
  const layerGz = execFileSync('tar', ['-xOf', image, manifest.Layers[0]], { maxBuffer: 64 << 20 });
  return { layerTar, image, digest, layerGz, config: manifest.Config };
}

test('crane push of an appended image, pull in OCI layout: same digests, same bytes', async () => {
  const ref = `${berth.host}/crane/app:v1`;
  const built = await buildImage('app', ref);
  const pushed = await crane('push', built.image, ref);
  assert.equal(pushed, `${berth.host}/crane/app@${built.digest}`);
  assert.equal(await crane('digest', ref), built.digest);

  // The manifest bytes served are exactly the ones crane computed its digest from.
  const manifest = await manifestBytes(berth, 'crane/app', 'v1', 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(sha256(manifest), built.digest);
  const parsed = JSON.parse(manifest.toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  assert.equal(parsed.config.digest, built.config);
  assert.equal(parsed.layers[0].digest, sha256(built.layerGz));

  const layout = join(home.dir, 'pulled');
  await crane('pull', '--format', 'oci', ref, layout);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  assert.equal(index.manifests[0].digest, built.digest);
  const blob = (digest: string) => readFile(join(layout, 'blobs', ...digest.split(':')));
  assert.deepEqual(await blob(built.digest), manifest);
  const layer = await blob(parsed.layers[0].digest);
  assert.deepEqual(layer, built.layerGz, 'the pulled layer is byte for byte the pushed one');
  assert.deepEqual(gunzipSync(layer), await readFile(built.layerTar), 'and unpacks to the original tar');
  assert.equal(sha256(await blob(built.config)), built.config);

  // A plain `crane blob` fetch goes through the blob GET (a 307 to S3 on real back ends).
  const viaBlob = execFileSync(bin('crane'), ['--insecure', 'blob', `${berth.host}/crane/app@${parsed.layers[0].digest}`], { env: home.env, maxBuffer: 64 << 20 });
  assert.equal(sha256(viaBlob), parsed.layers[0].digest);
});

test('crane copy to another repository mounts the blobs and keeps the digest', async () => {
  const ref = `${berth.host}/crane/source:v1`;
  const built = await buildImage('source', ref);
  await crane('push', built.image, ref);
  await crane('copy', ref, `${berth.host}/crane/copied:v1`);
  assert.equal(await crane('digest', `${berth.host}/crane/copied:v1`), built.digest);
  const mounts = requests(berth, 'POST', '/v2/crane/copied/blobs/uploads/');
  assert.ok(mounts.some((line) => line.split(' ')[2] === '201'), `the layer was mounted from crane/source (POST …?mount= → 201):\n${mounts.join('\n')}`);
  assert.ok(requests(berth, 'PATCH', '/v2/crane/copied/').length === 0, `no blob bytes were uploaded again:\n${berth.log().join('\n')}`);
  const copied = await manifestBytes(berth, 'crane/copied', 'v1', 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(sha256(copied), built.digest);
});

test('crane index append: a multi-platform index pushed, resolved per platform, pulled and copied', async () => {
  const base = `${berth.host}/crane/multi`;
  const built = await buildImage('multi', `${base}:base`);
  await crane('push', built.image, `${base}:base`);
  const platforms = ['linux/amd64', 'linux/arm64'];
  const digests: Record<string, string> = {};
  for (const platform of platforms) {
    const tag = `${base}:${platform.replace('/', '-')}`;
    await crane('mutate', '--set-platform', platform, '-t', tag, `${base}:base`);
    digests[platform] = await crane('digest', tag);
  }
  const pushed = await crane('index', 'append', ...platforms.flatMap((p) => ['-m', `${base}:${p.replace('/', '-')}`]), '-t', `${base}:multi`);
  const indexDigest = pushed.split('@')[1];

  const bytes = await manifestBytes(berth, 'crane/multi', 'multi', 'application/vnd.oci.image.index.v1+json');
  assert.equal(sha256(bytes), indexDigest);
  assert.equal(await crane('digest', `${base}:multi`), indexDigest);
  const index = JSON.parse(bytes.toString()) as { mediaType: string; manifests: { digest: string; platform?: { os: string; architecture: string } }[] };
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(
    index.manifests.map((m) => [`${m.platform?.os}/${m.platform?.architecture}`, m.digest]),
    platforms.map((p) => [p, digests[p]]),
  );
  for (const platform of platforms) {
    assert.equal(await crane('digest', '--platform', platform, `${base}:multi`), digests[platform], `${platform} resolves through the index`);
  }

  // Pull the whole index into an OCI layout: every manifest and blob arrives with its digest.
  const layout = join(home.dir, 'multi-layout');
  await crane('pull', '--format', 'oci', `${base}:multi`, layout);
  const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  assert.equal(top.manifests[0].digest, indexDigest);
  for (const digest of [indexDigest, ...Object.values(digests), sha256(built.layerGz)]) {
    assert.equal(sha256(await readFile(join(layout, 'blobs', ...digest.split(':')))), digest);
  }

  // And the platform-specific pull into a tarball is the image crane made for that platform.
  const arm = join(home.dir, 'arm64.tar');
  await crane('pull', '--platform', 'linux/arm64', `${base}:multi`, arm);
  assert.equal(await crane('digest', '--tarball', arm), digests['linux/arm64']);

  await crane('copy', `${base}:multi`, `${berth.host}/crane/multi-copy:v1`);
  assert.equal(await crane('digest', `${berth.host}/crane/multi-copy:v1`), indexDigest);
  for (const platform of platforms) {
    assert.equal(await crane('digest', '--platform', platform, `${berth.host}/crane/multi-copy:v1`), digests[platform]);
  }
});
