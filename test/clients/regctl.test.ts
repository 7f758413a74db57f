/**
 * regctl (regclient) against `npm start`: an image copy from one Berth to another with a 1 MiB
 * chunk size, so that the 9 MiB layer arrives as ten PATCHes with `Content-Range` (crossing
 * Berth's 8 MiB S3 part size, so chunks are buffered and become a multipart part; checked in
 * regctl's own trace of requests and responses and in the server's log), then `regctl artifact put`
 * and `regctl artifact list` of the referrers of the copied image.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bin, makeTar, manifestBytes, randomFiles, requests, run, scratch, sha256, startBerth, type Berth } from './helpers.js';

const MiB = 1024 * 1024;
const CHUNK = MiB;

let source: Berth;
let target: Berth;
let home: Awaited<ReturnType<typeof scratch>>;
let regctl: (...args: string[]) => Promise<{ stdout: string; stderr: string }>;

before(async () => {
  const file = bin('regctl');
  bin('crane');
  [source, target, home] = await Promise.all([startBerth(), startBerth(), scratch()]);
  regctl = (...args) => run(target, file, args, home.env, home.dir);
  await regctl('registry', 'set', source.host, '--tls', 'disabled', '--skip-check');
  // Chunked push above 512 KiB, 1 MiB per chunk.
  await regctl('registry', 'set', target.host, '--tls', 'disabled', '--skip-check', '--blob-chunk', String(CHUNK), '--blob-max', String(CHUNK / 2));
});
after(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
  await home?.cleanup();
});

interface Traced {
  method: string;
  url: string;
  contentRange?: string;
  status: string;
  range?: string;
}

/** regctl's `-v trace` lines of requests: method, URL, request Content-Range, status, response Range. */
function traced(stderr: string): Traced[] {
  return stderr
    .split('\n')
    .filter((line) => line.includes('msg="reg http request"'))
    .map((line) => ({
      method: /req-method=(\S+)/.exec(line)![1],
      url: /req-url="?([^"\s]+)/.exec(line)![1],
      contentRange: /req-headers="[^"]*Content-Range:\[([^\]]*)\]/.exec(line)?.[1],
      status: /resp-status="(\d+)/.exec(line)?.[1] ?? '',
      range: /resp-headers="[^"]*Range:\[([^\]]*)\]/.exec(line)?.[1],
    }));
}

test('regctl image copy between registries in 1 MiB chunks with Content-Range', async () => {
  const src = `${source.host}/regctl/app:v1`;
  const layerTar = await makeTar(home.dir, 'layer', randomFiles('big', 1, 9 * MiB));
  const image = join(home.dir, 'image.tar');
  await run(source, bin('crane'), ['append', '-f', layerTar, '-t', src, '-o', image], home.env, home.dir);
  await run(source, bin('crane'), ['--insecure', 'push', image, src], home.env, home.dir);
  const digest = (await run(source, bin('crane'), ['--insecure', 'digest', src], home.env, home.dir)).stdout.trim();
  const manifest = JSON.parse((await manifestBytes(source, 'regctl/app', 'v1', 'application/vnd.docker.distribution.manifest.v2+json')).toString()) as {
    layers: { digest: string; size: number }[];
  };
  const layer = manifest.layers[0];
  assert.ok(layer.size > 8 * MiB, `the layer (${layer.size} bytes) needs several chunks and more than one S3 part`);

  const dst = `${target.host}/regctl/copy:v1`;
  const { stderr } = await regctl('-v', 'trace', 'image', 'copy', src, dst);

  // Every chunk of the layer was a PATCH with Content-Range, answered 202 with the Range so far.
  const sessionPatches = traced(stderr).filter((r) => r.method === 'PATCH');
  const expected = [];
  for (let start = 0; start < layer.size; start += CHUNK) expected.push(`${start}-${Math.min(start + CHUNK, layer.size) - 1}`);
  assert.deepEqual(sessionPatches.map((r) => r.contentRange), expected, `Content-Range of the PATCHes:\n${stderr.slice(-4000)}`);
  assert.deepEqual(sessionPatches.map((r) => r.status), expected.map(() => '202'));
  assert.deepEqual(sessionPatches.map((r) => r.range), expected.map((r) => `0-${r.split('-')[1]}`));
  const finish = traced(stderr).find((r) => r.method === 'PUT' && r.url.includes(encodeURIComponent(layer.digest)));
  assert.equal(finish?.status, '201', 'the closing PUT with ?digest= created the blob');

  // The target's own log shows the same PATCHes, all into one upload session.
  const patches = requests(target, 'PATCH', '/v2/regctl/copy/blobs/uploads/');
  assert.equal(patches.length, expected.length, `server log:\n${target.log().join('\n')}`);
  assert.equal(new Set(patches.map((line) => line.split(' ')[1])).size, 1, 'one upload session');
  assert.ok(patches.every((line) => line.split(' ')[2] === '202'));

  // Same digest, same bytes.
  assert.equal((await regctl('image', 'digest', dst)).stdout.trim(), digest);
  const copied = await manifestBytes(target, 'regctl/copy', 'v1', 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(sha256(copied), digest);
  const blob = await fetch(`${target.url}/v2/regctl/copy/blobs/${layer.digest}`);
  assert.equal(blob.status, 200);
  const bytes = Buffer.from(await blob.arrayBuffer());
  assert.equal(bytes.length, layer.size);
  assert.equal(sha256(bytes), layer.digest);
  const original = Buffer.from(await (await fetch(`${source.url}/v2/regctl/app/blobs/${layer.digest}`)).arrayBuffer());
  assert.ok(bytes.equals(original), 'the copied layer is byte for byte the source layer');
});

test('regctl artifact put with a subject, artifact list of referrers, artifact get', async () => {
  const subject = `${target.host}/regctl/artifacts:v1`;
  await regctl('image', 'copy', `${source.host}/regctl/app:v1`, subject);
  const subjectDigest = (await regctl('image', 'digest', subject)).stdout.trim();

  const files = { sbom: '{"spdxVersion":"SPDX-2.3","name":"berth-test"}\n', sig: '{"signature":"not really"}\n' };
  const put: Record<string, string> = {};
  for (const [kind, content] of Object.entries(files)) {
    const file = join(home.dir, `${kind}.json`);
    await writeFile(file, content);
    await regctl(
      'artifact', 'put', '--subject', subject,
      '--artifact-type', `application/vnd.berth.test.${kind}.v1`,
      '--file', file, '--file-media-type', 'application/json',
      '--annotation', `org.example.kind=${kind}`,
    );
    const listed = JSON.parse((await regctl('artifact', 'list', subject, '--filter-artifact-type', `application/vnd.berth.test.${kind}.v1`, '--format', '{{json .Manifest}}')).stdout) as {
      manifests: { digest: string }[];
    };
    assert.equal(listed.manifests.length, 1, `one ${kind} referrer`);
    put[kind] = listed.manifests[0].digest;
  }

  const all = JSON.parse((await regctl('artifact', 'list', subject, '--format', '{{json .Manifest}}')).stdout) as {
    mediaType: string;
    manifests: { digest: string; artifactType: string; annotations: Record<string, string> }[];
  };
  assert.equal(all.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(
    all.manifests.map((m) => [m.artifactType, m.annotations['org.example.kind'], m.digest]).sort(),
    Object.keys(files).map((kind) => [`application/vnd.berth.test.${kind}.v1`, kind, put[kind]]).sort(),
  );
  assert.ok(requests(target, 'GET', `/v2/regctl/artifacts/referrers/${subjectDigest}`).length > 0, 'listed through the referrers API');
  assert.equal(target.log().filter((line) => line.includes('/manifests/sha256-')).length, 0, 'no tag-schema fallback');

  // Each referrer is a manifest whose digest, subject and file bytes are what was put.
  for (const [kind, content] of Object.entries(files)) {
    const bytes = await manifestBytes(target, 'regctl/artifacts', put[kind], 'application/vnd.oci.image.manifest.v1+json');
    const manifest = JSON.parse(bytes.toString()) as { subject: { digest: string } };
    assert.equal(manifest.subject.digest, subjectDigest);
    const got = await regctl('artifact', 'get', `${target.host}/regctl/artifacts@${put[kind]}`);
    assert.equal(got.stdout, content);
  }
});
