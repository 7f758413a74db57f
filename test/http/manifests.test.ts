/**
 * Manifests (distribution-spec v1.1 end-3 GET/HEAD, end-7 PUT, end-9 DELETE): OCI image
 * manifests and indexes, Docker schema 2 manifests and manifest lists, exact bytes, media
 * types and digests, deletion by digest and by tag, and the rejections the spec names
 * (413, MANIFEST_BLOB_UNKNOWN, MANIFEST_INVALID) with nothing of a rejected push visible.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import {
  absentDigest,
  Api,
  bytesOf,
  expectError,
  expectHeadStatus,
  imageManifest,
  MediaTypes,
  MiB,
  randomBlob,
  sha256,
  sha512,
  uniqueRepo,
} from './helpers.js';

let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
});
after(() => stack.stop());

/** Asserts that `reference` of `repo` serves exactly `bytes` as `mediaType` (GET and HEAD). */
async function expectManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<void> {
  const digest = sha256(bytes);
  const get = await api.get(`/v2/${repo}/manifests/${reference}`, { Accept: Object.values(MediaTypes).join(', ') });
  assert.equal(get.status, 200, `GET ${repo}:${reference}: ${await get.clone().text()}`);
  assert.equal(get.headers.get('content-type'), mediaType, 'Content-Type is the pushed media type');
  assert.equal(get.headers.get('docker-content-digest'), digest);
  assert.equal(get.headers.get('content-length'), String(bytes.length));
  assert.ok((await bytesOf(get)).equals(bytes), 'GET returns the exact bytes that were pushed');

  const head = await api.head(`/v2/${repo}/manifests/${reference}`);
  assert.equal(head.status, 200, `HEAD ${repo}:${reference}`);
  assert.equal(head.headers.get('content-type'), mediaType);
  assert.equal(head.headers.get('docker-content-digest'), digest);
  assert.equal(head.headers.get('content-length'), String(bytes.length));
  assert.equal(await head.text(), '');
}

async function tagsOf(repo: string): Promise<string[]> {
  const response = await api.get(`/v2/${repo}/tags/list`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { tags: string[] }).tags;
}

/** Config and layer blobs in `repo`, as descriptors. */
async function blobsIn(repo: string, configMediaType: string = MediaTypes.ociConfig, layerMediaType: string = MediaTypes.ociLayer) {
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', salt: Math.random() }));
  const layer = randomBlob(2048);
  return {
    config: { mediaType: configMediaType, digest: await api.pushBlob(repo, config), size: config.length },
    layer: { mediaType: layerMediaType, digest: await api.pushBlob(repo, layer), size: layer.length },
  };
}

test('OCI image manifest: PUT by tag → 201 with Location and digest; GET/HEAD by tag and by digest return the exact bytes', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  // Deliberately not canonical JSON: odd whitespace and key order must survive byte for byte.
  const text = `{\n  "schemaVersion": 2,\n    "config": ${JSON.stringify(config)},\n  "mediaType": "${MediaTypes.ociManifest}",\n  "layers": [ ${JSON.stringify(layer)} ],\n  "annotations": {"org.example.x": "y"}\n}\n`;
  const bytes = Buffer.from(text);
  const { response, digest } = await api.pushManifest(repo, 'v1', bytes, MediaTypes.ociManifest);
  assert.equal(new URL(response.headers.get('location')!, stack.url).pathname, `/v2/${repo}/manifests/${digest}`);
  assert.equal(response.headers.get('oci-subject'), null, 'no OCI-Subject without a subject');
  await expectManifest(repo, 'v1', bytes, MediaTypes.ociManifest);
  await expectManifest(repo, digest, bytes, MediaTypes.ociManifest);
  const location = await fetch(api.resolve(response.headers.get('location')!));
  assert.equal(location.status, 200, 'the Location is pullable');
  assert.deepEqual(await tagsOf(repo), ['v1']);
});

test('PUT by digest stores the manifest without creating a tag', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const bytes = Buffer.from(JSON.stringify(imageManifest(config, [layer])));
  const { response } = await api.pushManifest(repo, sha256(bytes), bytes);
  assert.equal(new URL(response.headers.get('location')!, stack.url).pathname, `/v2/${repo}/manifests/${sha256(bytes)}`);
  await expectManifest(repo, sha256(bytes), bytes, MediaTypes.ociManifest);
  assert.deepEqual(await tagsOf(repo), []);
});

test('PUT by a sha512 digest is verified with sha512 and answered with that digest', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const bytes = Buffer.from(JSON.stringify(imageManifest(config, [layer])));
  const { response } = await api.putManifest(repo, sha512(bytes), bytes);
  assert.equal(response.status, 201, await response.clone().text());
  assert.equal(response.headers.get('docker-content-digest'), sha512(bytes));
  const get = await api.get(`/v2/${repo}/manifests/${sha512(bytes)}`);
  assert.equal(get.status, 200);
  assert.ok((await bytesOf(get)).equals(bytes));
});

test('OCI image index whose children exist: 201, exact bytes, index media type', async () => {
  const repo = uniqueRepo('man');
  const amd = await api.pushImage(repo, 'amd64');
  const arm = await api.pushImage(repo, 'arm64');
  const index = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [
      { mediaType: MediaTypes.ociManifest, digest: amd.digest, size: amd.bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: MediaTypes.ociManifest, digest: arm.digest, size: arm.bytes.length, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
    ],
    annotations: { 'org.opencontainers.image.ref.name': 'multi' },
  };
  const { bytes, digest } = await api.pushManifest(repo, 'multi', index);
  await expectManifest(repo, 'multi', bytes, MediaTypes.ociIndex);
  await expectManifest(repo, digest, bytes, MediaTypes.ociIndex);
});

test('Docker schema 2 manifest and manifest list: pushed and served with their Docker media types', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo, MediaTypes.dockerConfig, MediaTypes.dockerLayer);
  const manifest = { schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config, layers: [layer] };
  const pushed = await api.pushManifest(repo, 'docker', manifest, MediaTypes.dockerManifest);
  await expectManifest(repo, 'docker', pushed.bytes, MediaTypes.dockerManifest);

  const list = {
    schemaVersion: 2,
    mediaType: MediaTypes.dockerManifestList,
    manifests: [{ mediaType: MediaTypes.dockerManifest, digest: pushed.digest, size: pushed.bytes.length, platform: { architecture: 'amd64', os: 'linux' } }],
  };
  const listed = await api.pushManifest(repo, 'list', list, MediaTypes.dockerManifestList);
  await expectManifest(repo, 'list', listed.bytes, MediaTypes.dockerManifestList);
  await expectManifest(repo, listed.digest, listed.bytes, MediaTypes.dockerManifestList);
});

test('PUT by digest with ?tag= parameters tags the manifest and answers OCI-Tag (distribution-spec draft)', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const bytes = Buffer.from(JSON.stringify(imageManifest(config, [layer])));
  const response = await api.fetch(`/v2/${repo}/manifests/${sha256(bytes)}?tag=one&tag=two`, { method: 'PUT', body: bytes, headers: { 'Content-Type': MediaTypes.ociManifest } });
  assert.equal(response.status, 201, await response.clone().text());
  assert.deepEqual((response.headers.get('oci-tag') ?? '').split(/,\s*/).sort(), ['one', 'two']);
  assert.deepEqual(await tagsOf(repo), ['one', 'two']);
  await expectManifest(repo, 'two', bytes, MediaTypes.ociManifest);
});

test('parameters on the pushed Content-Type are ignored; the served Content-Type carries none', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const manifest = imageManifest(config, [layer]);
  const { bytes } = await api.pushManifest(repo, 'params', manifest, `${MediaTypes.ociManifest}; charset=utf-8`);
  await expectManifest(repo, 'params', bytes, MediaTypes.ociManifest);
});

test('a manifest pushed without Content-Type is typed by its mediaType field', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const bytes = Buffer.from(JSON.stringify(imageManifest(config, [layer])));
  const response = await api.fetch(`/v2/${repo}/manifests/untyped`, { method: 'PUT', body: bytes });
  assert.equal(response.status, 201, await response.clone().text());
  await expectManifest(repo, 'untyped', bytes, MediaTypes.ociManifest);
});

test('a layer with foreign URLs (non-distributable) need not be in the registry', async () => {
  const repo = uniqueRepo('man');
  const { config } = await blobsIn(repo);
  const foreign = {
    mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
    digest: absentDigest(),
    size: 1234,
    urls: ['https://example.com/layer.tar.gz'],
  };
  const manifest = { ...imageManifest(config, []), layers: [foreign] };
  await api.pushManifest(repo, 'foreign', manifest);
});

test('re-tagging moves the tag; the old manifest stays reachable by digest', async () => {
  const repo = uniqueRepo('man');
  const first = await api.pushImage(repo, 'latest');
  const second = await api.pushImage(repo, 'latest');
  await expectManifest(repo, 'latest', second.bytes, MediaTypes.ociManifest);
  await expectManifest(repo, first.digest, first.bytes, MediaTypes.ociManifest);
});

test('a manifest of ~1 MiB and one of exactly 4 MiB are accepted and returned byte for byte', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  for (const size of [MiB, 4 * MiB]) {
    const bytes = padManifest(imageManifest(config, [layer]), size);
    assert.equal(bytes.length, size);
    const { digest } = await api.pushManifest(repo, `size-${size}`, bytes);
    await expectManifest(repo, `size-${size}`, bytes, MediaTypes.ociManifest);
    await expectManifest(repo, digest, bytes, MediaTypes.ociManifest);
  }
});

/** `manifest` with an annotation that makes its JSON exactly `size` bytes. */
function padManifest(manifest: Record<string, unknown>, size: number): Buffer {
  const base = Buffer.from(JSON.stringify({ ...manifest, annotations: { pad: '' } })).length;
  const bytes = Buffer.from(JSON.stringify({ ...manifest, annotations: { pad: 'x'.repeat(size - base) } }));
  assert.equal(bytes.length, size);
  return bytes;
}

test('DELETE by digest: 202; the manifest and every tag pointing to it are gone, other tags stay', async () => {
  const repo = uniqueRepo('man');
  const image = await api.pushImage(repo, 'one');
  await api.pushManifest(repo, 'two', image.bytes);
  const other = await api.pushImage(repo, 'other');
  const response = await api.delete(`/v2/${repo}/manifests/${image.digest}`);
  assert.equal(response.status, 202, await response.clone().text());
  await expectError(await api.get(`/v2/${repo}/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN', 'GET by digest after delete');
  await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${image.digest}`), 404, 'HEAD by digest after delete');
  for (const tag of ['one', 'two']) {
    await expectError(await api.get(`/v2/${repo}/manifests/${tag}`), 404, 'MANIFEST_UNKNOWN', `GET tag ${tag} after delete`);
    await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${tag}`), 404, `HEAD tag ${tag} after delete`);
  }
  assert.deepEqual(await tagsOf(repo), ['other']);
  await expectManifest(repo, 'other', other.bytes, MediaTypes.ociManifest);
  await expectError(await api.delete(`/v2/${repo}/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN', 'DELETE again');
  // The blobs stay: a manifest delete is not a blob delete.
  assert.equal((await api.head(`/v2/${repo}/blobs/${image.layer.digest}`)).status, 200);
});

test('DELETE by tag: 202; the tag is gone, the manifest and its other tags stay', async () => {
  const repo = uniqueRepo('man');
  const image = await api.pushImage(repo, 'a');
  await api.pushManifest(repo, 'b', image.bytes);
  const response = await api.delete(`/v2/${repo}/manifests/a`);
  assert.equal(response.status, 202, await response.clone().text());
  await expectError(await api.get(`/v2/${repo}/manifests/a`), 404, 'MANIFEST_UNKNOWN', 'GET deleted tag');
  await expectManifest(repo, image.digest, image.bytes, MediaTypes.ociManifest);
  await expectManifest(repo, 'b', image.bytes, MediaTypes.ociManifest);
  assert.deepEqual(await tagsOf(repo), ['b']);
  await expectError(await api.delete(`/v2/${repo}/manifests/a`), 404, 'MANIFEST_UNKNOWN', 'DELETE deleted tag');
});

test('GET/HEAD of an unknown tag or digest answer 404 MANIFEST_UNKNOWN; an unknown repository 404', async () => {
  const repo = uniqueRepo('man');
  await api.pushImage(repo, 'exists');
  await expectError(await api.get(`/v2/${repo}/manifests/nope`), 404, 'MANIFEST_UNKNOWN', 'unknown tag');
  await expectError(await api.get(`/v2/${repo}/manifests/${absentDigest()}`), 404, 'MANIFEST_UNKNOWN', 'unknown digest');
  await expectHeadStatus(await api.head(`/v2/${repo}/manifests/nope`), 404, 'HEAD unknown tag');
  await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${absentDigest()}`), 404, 'HEAD unknown digest');
  await expectError(await api.get(`/v2/${uniqueRepo('nowhere')}/manifests/latest`), 404, ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'], 'unknown repository');
  await expectError(await api.delete(`/v2/${repo}/manifests/nope`), 404, 'MANIFEST_UNKNOWN', 'DELETE unknown tag');
});

// ---- rejections named by the spec; after each, nothing of the push is visible ----

/** Asserts that neither the tag nor the digest of a rejected push is visible. */
async function expectNothing(repo: string, tag: string, digest: string): Promise<void> {
  await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${tag}`), 404, `tag ${tag} of a rejected push`);
  await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${digest}`), 404, `digest of a rejected push`);
}

test('a manifest over 4 MiB → 413 (SIZE_INVALID), nothing stored', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const bytes = padManifest(imageManifest(config, [layer]), 4 * MiB + 1);
  const { response } = await api.putManifest(repo, 'huge', bytes);
  await expectError(response, 413, 'SIZE_INVALID', '4 MiB + 1');
  await expectNothing(repo, 'huge', sha256(bytes));
  const bigger = padManifest(imageManifest(config, [layer]), 6 * MiB);
  await expectError((await api.putManifest(repo, 'huger', bigger)).response, 413, 'SIZE_INVALID', '6 MiB');
  await expectNothing(repo, 'huger', sha256(bigger));
});

test('a manifest referencing a blob the repository lacks → 400 MANIFEST_BLOB_UNKNOWN (also when another repository has it)', async () => {
  const repo = uniqueRepo('man');
  const { config } = await blobsIn(repo);
  const missingLayer = imageManifest(config, [{ digest: absentDigest(), size: 10 }]);
  const first = await api.putManifest(repo, 'missing-layer', missingLayer);
  await expectError(first.response, 400, 'MANIFEST_BLOB_UNKNOWN', 'unknown layer');
  await expectNothing(repo, 'missing-layer', first.digest);

  const missingConfig = imageManifest({ digest: absentDigest(), size: 2 }, []);
  const second = await api.putManifest(repo, 'missing-config', missingConfig);
  await expectError(second.response, 400, 'MANIFEST_BLOB_UNKNOWN', 'unknown config');
  await expectNothing(repo, 'missing-config', second.digest);

  const elsewhere = uniqueRepo('man');
  const foreign = await blobsIn(elsewhere);
  const third = await api.putManifest(repo, 'other-repo-layer', imageManifest(config, [foreign.layer]));
  await expectError(third.response, 400, 'MANIFEST_BLOB_UNKNOWN', 'layer of another repository');
  await expectNothing(repo, 'other-repo-layer', third.digest);
});

test('an index with a child manifest the repository lacks → 400 MANIFEST_BLOB_UNKNOWN', async () => {
  const repo = uniqueRepo('man');
  const known = await api.pushImage(repo, 'known');
  const elsewhere = await api.pushImage(uniqueRepo('man'), 'x');
  for (const child of [absentDigest(), elsewhere.digest]) {
    const index = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: known.digest, size: known.bytes.length },
        { mediaType: MediaTypes.ociManifest, digest: child, size: 500 },
      ],
    };
    const { response, digest } = await api.putManifest(repo, 'idx', index);
    await expectError(response, 400, 'MANIFEST_BLOB_UNKNOWN', `index child ${child}`);
    await expectNothing(repo, 'idx', digest);
  }
});

test('a document with both `manifests` and `layers` → 400 MANIFEST_INVALID, whichever type it claims', async () => {
  const repo = uniqueRepo('man');
  const image = await api.pushImage(repo, 'base');
  for (const mediaType of [MediaTypes.ociManifest, MediaTypes.ociIndex]) {
    const both = {
      schemaVersion: 2,
      mediaType,
      config: image.manifest.config,
      layers: image.manifest.layers,
      manifests: [{ mediaType: MediaTypes.ociManifest, digest: image.digest, size: image.bytes.length }],
    };
    const { response, digest } = await api.putManifest(repo, 'both', both);
    await expectError(response, 400, 'MANIFEST_INVALID', `both, as ${mediaType}`);
    await expectNothing(repo, 'both', digest);
  }
});

test('a mediaType field contradicting Content-Type → 400 MANIFEST_INVALID', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo);
  const manifest = imageManifest(config, [layer]);
  for (const contentType of [MediaTypes.ociIndex, MediaTypes.dockerManifest]) {
    const { response, digest } = await api.putManifest(repo, 'contradiction', manifest, contentType);
    await expectError(response, 400, 'MANIFEST_INVALID', `OCI manifest sent as ${contentType}`);
    await expectNothing(repo, 'contradiction', digest);
  }
});

test('Docker schema 1 manifests → 400 MANIFEST_INVALID (by Content-Type and by schemaVersion)', async () => {
  const repo = uniqueRepo('man');
  const schema1 = {
    schemaVersion: 1,
    name: repo,
    tag: 'old',
    architecture: 'amd64',
    fsLayers: [{ blobSum: absentDigest() }],
    history: [{ v1Compatibility: '{}' }],
    signatures: [],
  };
  for (const contentType of [MediaTypes.dockerSchema1Signed, 'application/vnd.docker.distribution.manifest.v1+json', undefined]) {
    const bytes = Buffer.from(JSON.stringify(schema1));
    const response = await api.fetch(`/v2/${repo}/manifests/old`, { method: 'PUT', body: bytes, headers: contentType ? { 'Content-Type': contentType } : {} });
    await expectError(response, 400, 'MANIFEST_INVALID', `schema 1 as ${contentType}`);
    await expectNothing(repo, 'old', sha256(bytes));
  }
});

test('a Docker schema 2 manifest without its mediaType field → 400 MANIFEST_INVALID', async () => {
  const repo = uniqueRepo('man');
  const { config, layer } = await blobsIn(repo, MediaTypes.dockerConfig, MediaTypes.dockerLayer);
  const manifest = { schemaVersion: 2, config, layers: [layer] };
  const { response, digest } = await api.putManifest(repo, 'nomediatype', manifest, MediaTypes.dockerManifest);
  await expectError(response, 400, 'MANIFEST_INVALID', 'docker manifest without mediaType');
  await expectNothing(repo, 'nomediatype', digest);
});
