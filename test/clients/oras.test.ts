/**
 * oras against `npm start`: push of an artifact (two files, one of them a random blob), pull
 * back byte for byte, `oras attach` of a signature-like artifact, and `oras discover` of it
 * through the referrers API (not the tag-schema fallback).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bin, manifestBytes, requests, run, scratch, sha256, startBerth, type Berth } from './helpers.js';

let berth: Berth;
let home: Awaited<ReturnType<typeof scratch>>;
/** Runs oras in `cwd` (file arguments are relative to it) and parses its `--format json` output. */
let oras: (cwd: string, ...args: string[]) => Promise<Record<string, unknown>>;

before(async () => {
  const file = bin('oras');
  [berth, home] = await Promise.all([startBerth(), scratch()]);
  oras = async (cwd, ...args) => JSON.parse((await run(berth, file, [...args, '--plain-http', '--format', 'json'], home.env, cwd)).stdout);
});
after(async () => {
  await berth?.stop();
  await home?.cleanup();
});

const ARTIFACT = 'application/vnd.berth.test.bundle.v1';
const SIGNATURE = 'application/vnd.berth.test.signature.v1';

test('oras push, pull, attach and discover through the referrers API', async () => {
  const src = join(home.dir, 'src');
  await mkdir(src);
  const files = { 'readme.txt': Buffer.from('an artifact pushed by oras\n'), 'payload.bin': randomBytes(300_000) };
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(src, name), bytes);
  const ref = `${berth.host}/oras/bundle:v1`;

  const pushed = await oras(src, 'push', ref, '--artifact-type', ARTIFACT, 'readme.txt:text/plain', 'payload.bin:application/octet-stream');
  const subject = pushed.digest as string;
  assert.equal(pushed.artifactType, ARTIFACT);

  // The manifest the registry serves is the one oras pushed, and lists both files by digest.
  const manifest = JSON.parse((await manifestBytes(berth, 'oras/bundle', 'v1', 'application/vnd.oci.image.manifest.v1+json')).toString()) as {
    artifactType: string;
    layers: { digest: string; annotations: Record<string, string> }[];
  };
  assert.equal(sha256(await manifestBytes(berth, 'oras/bundle', subject, 'application/vnd.oci.image.manifest.v1+json')), subject);
  assert.equal(manifest.artifactType, ARTIFACT);
  assert.deepEqual(
    Object.fromEntries(manifest.layers.map((l) => [l.annotations['org.opencontainers.image.title'], l.digest])),
    Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, sha256(bytes)])),
  );

  const out = join(home.dir, 'out');
  await mkdir(out);
  await oras(out, 'pull', ref);
  for (const [name, bytes] of Object.entries(files)) assert.deepEqual(await readFile(join(out, name)), bytes, `${name} pulled byte for byte`);

  // Attach a signature-like artifact to the pushed one.
  await writeFile(join(src, 'signature.json'), JSON.stringify({ critical: { image: { 'docker-manifest-digest': subject } } }));
  const attached = await oras(src, 'attach', ref, '--artifact-type', SIGNATURE, '--annotation', 'org.example.signed-by=berth-tests', 'signature.json:application/json');
  const signature = attached.digest as string;
  assert.equal(attached.artifactType, SIGNATURE);
  const fallback = berth.log().filter((line) => line.includes(`/manifests/sha256-`));
  assert.deepEqual(fallback, [], 'oras used the referrers API, not the tag schema fallback');

  const discovered = await oras(home.dir, 'discover', ref);
  assert.equal(discovered.digest, subject);
  const referrers = discovered.referrers as { digest: string; artifactType: string; annotations: Record<string, string> }[];
  assert.deepEqual(referrers.map((r) => [r.digest, r.artifactType]), [[signature, SIGNATURE]]);
  assert.equal(referrers[0].annotations['org.example.signed-by'], 'berth-tests');
  assert.ok(requests(berth, 'GET', `/v2/oras/bundle/referrers/${subject}`).some((line) => line.split(' ')[2] === '200'), 'discover read GET /v2/<name>/referrers/<digest>');

  // The referrers response itself: an OCI index naming the signature, filterable by artifactType.
  const response = await fetch(`${berth.url}/v2/oras/bundle/referrers/${subject}?artifactType=${encodeURIComponent(SIGNATURE)}`);
  assert.equal(response.status, 200);
  const index = (await response.json()) as { mediaType: string; manifests: { digest: string }[] };
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(index.manifests.map((m) => m.digest), [signature]);

  // The signature pulls back byte for byte through its digest.
  const sigOut = join(home.dir, 'sig');
  await mkdir(sigOut);
  await oras(sigOut, 'pull', `${berth.host}/oras/bundle@${signature}`);
  assert.deepEqual(await readFile(join(sigOut, 'signature.json')), await readFile(join(src, 'signature.json')));
});

test('garbage collection keeps a signature oras attached to a kept artifact and removes the one of a deleted artifact', async () => {
  const src = join(home.dir, 'gc');
  await mkdir(src);
  await writeFile(join(src, 'signature.json'), '{"signed":true}');
  const signatures: Record<string, string> = {};
  const subjects: Record<string, string> = {};
  for (const tag of ['kept', 'dropped']) {
    // A payload of its own: two pushes within one second would otherwise make the same manifest
    // (oras's created annotation has a one-second resolution), one subject for both signatures.
    await writeFile(join(src, 'payload.bin'), randomBytes(1000));
    const ref = `${berth.host}/oras/gc:${tag}`;
    subjects[tag] = (await oras(src, 'push', ref, '--artifact-type', ARTIFACT, 'payload.bin:application/octet-stream')).digest as string;
    signatures[tag] = (await oras(src, 'attach', ref, '--artifact-type', SIGNATURE, 'signature.json:application/json')).digest as string;
  }
  assert.equal((await fetch(`${berth.url}/v2/oras/gc/manifests/dropped`, { method: 'DELETE' })).status, 202);
  const gc = await fetch(`${berth.url}/v2/_berth/gc?grace=0s`, { method: 'POST' });
  assert.equal(gc.status, 200);
  assert.equal(((await gc.json()) as { finished: boolean }).finished, true);
  const discovered = await oras(home.dir, 'discover', `${berth.host}/oras/gc:kept`);
  assert.deepEqual((discovered.referrers as { digest: string }[]).map((r) => r.digest), [signatures.kept], 'the kept artifact keeps its signature');
  const sigOut = join(home.dir, 'gc-sig');
  await mkdir(sigOut);
  await oras(sigOut, 'pull', `${berth.host}/oras/gc@${signatures.kept}`);
  assert.equal(await readFile(join(sigOut, 'signature.json'), 'utf8'), '{"signed":true}');
  for (const digest of [subjects.dropped, signatures.dropped]) {
    assert.equal((await fetch(`${berth.url}/v2/oras/gc/manifests/${digest}`)).status, 404, `${digest} collected`);
  }
  const orphans = (await (await fetch(`${berth.url}/v2/oras/gc/referrers/${subjects.dropped}`)).json()) as { manifests: unknown[] };
  assert.deepEqual(orphans.manifests, []);
});
