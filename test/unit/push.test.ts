/**
 * Pure parts of `berth push` (cli/push/): image references, challenges, docker config
 * credential lookup, manifests, progress formatting, block gzip, the tarball reader on
 * synthetic docker-save tarballs (legacy layout with a symlinked layer, OCI layout inside the
 * tar), the semaphore and the blob cache.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { BlobCache } from '../../cli/push/blob-cache.js';
import { parseChallenge } from '../../cli/push/challenge.js';
import { gzipToFile, Semaphore, sniff } from '../../cli/push/compress.js';
import { hostOf, lookupCredentials, type DockerConfig } from '../../cli/push/docker-config.js';
import { imageFromSaveTarball } from '../../cli/push/image.js';
import { buildManifest, MEDIA } from '../../cli/push/manifest.js';
import { bar, humanSize } from '../../cli/push/progress.js';
import { isLoopback, parseImageReference, PushUsageError, registryBaseUrl } from '../../cli/push/reference.js';
import { readTarball } from '../../cli/push/tarball.js';

const sha = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const temps: string[] = [];
const temp = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-push-unit-'));
  temps.push(dir);
  return dir;
};
after(async () => Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true }))));

test('image references: registry host required, tag defaults to latest, digests refused', () => {
  assert.deepEqual(parseImageReference('127.0.0.1:5000/team/app:1.0'), { registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.0' });
  assert.deepEqual(parseImageReference('registry.example.com/app'), { registry: 'registry.example.com', repository: 'app', tag: 'latest' });
  assert.deepEqual(parseImageReference('localhost/a/b/c:x_y'), { registry: 'localhost', repository: 'a/b/c', tag: 'x_y' });
  assert.deepEqual(parseImageReference('[::1]:5000/app:2'), { registry: '[::1]:5000', repository: 'app', tag: '2' });
  for (const bad of ['app:1', 'team/app:1', 'localhost:5000/App:1', 'localhost:5000/app:-x', 'localhost:5000/app@sha256:' + 'a'.repeat(64), '']) {
    assert.throws(() => parseImageReference(bad), PushUsageError, bad);
  }
  assert.equal(isLoopback('127.0.0.1:5000'), true);
  assert.equal(isLoopback('127.8.9.10'), true);
  assert.equal(isLoopback('localhost:5000'), true);
  assert.equal(isLoopback('[::1]:5000'), true);
  assert.equal(isLoopback('registry.example.com:5000'), false);
  assert.equal(isLoopback('127.0.0.1.nip.io'), false);
  assert.equal(registryBaseUrl('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('r.example.com'), 'https://r.example.com');
  assert.equal(registryBaseUrl('r.example.com', true), 'http://r.example.com');
});

test('challenges: quoted parameters with commas and escapes, unquoted tokens, several challenges', () => {
  assert.deepEqual(parseChallenge('Bearer realm="http://127.0.0.1:5000/token",service="127.0.0.1:5000",scope="repository:a/b:pull,push repository:c:pull"'), {
    scheme: 'bearer',
    params: { realm: 'http://127.0.0.1:5000/token', service: '127.0.0.1:5000', scope: 'repository:a/b:pull,push repository:c:pull' },
  });
  assert.deepEqual(parseChallenge('Bearer realm="r",error="insufficient_scope"')?.params.error, 'insufficient_scope');
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.deepEqual(parseChallenge('bearer realm=https://x/token, service=x'), { scheme: 'bearer', params: { realm: 'https://x/token', service: 'x' } });
  assert.deepEqual(parseChallenge('Bearer realm="a\\"b"')?.params.realm, 'a"b');
  assert.deepEqual(parseChallenge('Bearer realm="https://a/token", Basic realm="b"'), { scheme: 'bearer', params: { realm: 'https://a/token' } });
  assert.equal(parseChallenge(''), undefined);
  assert.equal(parseChallenge(undefined), undefined);
});

test('docker config: auths by host (scheme and path ignored), identity tokens, helpers first', async () => {
  const basic = Buffer.from('alice:s3cret:with:colons').toString('base64');
  const config: DockerConfig = {
    auths: {
      'http://127.0.0.1:5000/v1/': { auth: basic },
      'tok.example.com': { auth: Buffer.from('u:').toString('base64'), identitytoken: 'refresh-1' },
      'plain.example.com': { username: 'p', password: 'q' },
    },
  };
  assert.equal(hostOf('https://Index.Docker.io/v1/'), 'index.docker.io');
  assert.deepEqual(await lookupCredentials(config, '127.0.0.1:5000', noHelper), { username: 'alice', password: 's3cret:with:colons' });
  assert.deepEqual(await lookupCredentials(config, 'tok.example.com', noHelper), { identityToken: 'refresh-1', username: undefined });
  assert.deepEqual(await lookupCredentials(config, 'plain.example.com', noHelper), { username: 'p', password: 'q' });
  assert.equal(await lookupCredentials(config, 'other:5000', noHelper), undefined);
  assert.equal(await lookupCredentials({}, '127.0.0.1:5000', noHelper), undefined);

  const asked: string[] = [];
  const helper = async (name: string, server: string) => {
    asked.push(`${name} ${server}`);
    if (server === 'none.example.com') return undefined;
    return name === 'tokens' ? { Username: '<token>', Secret: 'idt' } : { Username: 'h', Secret: 'pw' };
  };
  const withHelpers: DockerConfig = { ...config, credsStore: 'store', credHelpers: { 'tok.example.com': 'tokens' } };
  assert.deepEqual(await lookupCredentials(withHelpers, 'tok.example.com', helper), { identityToken: 'idt' });
  assert.deepEqual(await lookupCredentials(withHelpers, 'x.example.com', helper), { username: 'h', password: 'pw' });
  assert.deepEqual(await lookupCredentials(withHelpers, '127.0.0.1:5000', helper), { username: 'h', password: 'pw' });
  assert.equal(await lookupCredentials({ credsStore: 'store' }, 'none.example.com', helper), undefined, 'nothing in the store, nothing in auths');
  assert.deepEqual(asked, ['tokens tok.example.com', 'store x.example.com', 'store 127.0.0.1:5000', 'store none.example.com']);
});

const noHelper = async () => {
  throw new Error('no helper is configured');
};

test('manifests: docker schema 2 with the docker media types; OCI keeps annotations', () => {
  const config = { mediaType: MEDIA.dockerConfig, digest: sha('{}'), size: 2 };
  const layers = [
    { mediaType: MEDIA.dockerLayerGzip, digest: sha('a'), size: 10 },
    { mediaType: MEDIA.dockerLayerGzip, digest: sha('b'), size: 20, annotations: {} },
  ];
  const docker = buildManifest('docker', config, layers, { ignored: 'x' });
  const parsed = JSON.parse(docker.bytes.toString('utf8'));
  assert.equal(docker.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(docker.digest, sha(docker.bytes));
  assert.deepEqual(parsed, {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha('{}'), size: 2 },
    layers: [
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha('a'), size: 10 },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha('b'), size: 20 },
    ],
  });
  const oci = JSON.parse(buildManifest('oci', { ...config, mediaType: MEDIA.ociConfig }, [], { 'org.opencontainers.image.ref.name': '1' }).bytes.toString('utf8'));
  assert.equal(oci.mediaType, MEDIA.ociManifest);
  assert.deepEqual(oci.annotations, { 'org.opencontainers.image.ref.name': '1' });
});

test('progress: docker-style sizes and bars', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(999), '999B');
  assert.equal(humanSize(12_345_678), '12.3MB');
  assert.equal(humanSize(314_572_800), '315MB');
  assert.equal(humanSize(1_500_000_000), '1.5GB');
  assert.equal(bar(0, 100), `[>${' '.repeat(49)}]  0B/100B`);
  assert.equal(bar(50, 100), `[${'='.repeat(25)}>${' '.repeat(24)}]  50B/100B`);
  assert.equal(bar(100, 100), `[${'='.repeat(50)}]  100B/100B`);
});

test('block gzip: several gzip members that decompress to the input; same input, same bytes', async () => {
  const dir = await temp();
  const input = Buffer.concat([randomBytes(5 * 1024 * 1024), Buffer.alloc(3 * 1024 * 1024, 'a')]);
  const slots = new Semaphore(3);
  const chunks = () => Readable.from(Array.from({ length: 64 }, (_, i) => input.subarray(i * (input.length / 64), (i + 1) * (input.length / 64))));
  let read = 0;
  const one = await gzipToFile(chunks(), join(dir, 'one.gz'), 6, slots, (n) => (read += n));
  const two = await gzipToFile(chunks(), join(dir, 'two.gz'), 6, slots);
  const bytes = await readFile(one.path);
  assert.equal(read, input.length);
  assert.equal(one.size, bytes.length);
  assert.equal(one.digest, sha(bytes));
  assert.equal(two.digest, one.digest);
  assert.ok(gunzipSync(bytes).equals(input));
  assert.equal(sniff(bytes), 'gzip');
  const empty = await gzipToFile(Readable.from([]), join(dir, 'empty.gz'), 6, slots);
  assert.equal(gunzipSync(await readFile(empty.path)).length, 0);
  assert.equal(slots.free, 3, 'every block slot released');
});

test('semaphore: at most n at once, in order', async () => {
  const semaphore = new Semaphore(2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      semaphore.run(async () => {
        active++;
        peak = Math.max(peak, active);
        order.push(i);
        await new Promise((resolve) => setTimeout(resolve, 5));
        active--;
      }),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  const release = semaphore.tryAcquire()!;
  assert.ok(semaphore.tryAcquire());
  assert.equal(semaphore.tryAcquire(), undefined);
  release();
  release();
  assert.equal(semaphore.free, 1, 'a release function works once');
});

/** A tarball of `entries` (files, or symlinks with `link`). */
async function tarball(entries: { name: string; content?: Buffer | string; link?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const entry of entries) {
    if (entry.link) pack.entry({ name: entry.name, type: 'symlink', linkname: entry.link });
    else pack.entry({ name: entry.name, size: Buffer.byteLength(entry.content!) }, entry.content!);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An uncompressed layer: a tar with one file of `size` random bytes. */
const layerTar = (size: number) => tarball([{ name: 'file.bin', content: randomBytes(size) }]);

test('docker save, legacy layout: config and layers by path, a repeated layer as a symlink, big layers spooled', async () => {
  const dir = await temp();
  const [small, big] = [await layerTar(1000), await layerTar(300 * 1024)];
  const config = JSON.stringify({ architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [sha(small), sha(big), sha(small)] } });
  const configName = `${sha(config).slice(7)}.json`;
  const save = await tarball([
    { name: configName, content: config },
    { name: 'aaaa11112222aaaa/layer.tar', content: small },
    { name: 'bbbb33334444bbbb/layer.tar', content: big },
    { name: 'cccc55556666cccc/layer.tar', link: '../aaaa11112222aaaa/layer.tar' },
    { name: 'manifest.json', content: JSON.stringify([{ Config: configName, RepoTags: ['r:5000/a/b:1'], Layers: ['aaaa11112222aaaa/layer.tar', 'bbbb33334444bbbb/layer.tar', 'cccc55556666cccc/layer.tar'] }]) },
    { name: 'repositories', content: '{}' },
  ]);
  const seen: string[] = [];
  const contents = await readTarball(Readable.from([save]), dir, { onFile: (file) => seen.push(file.name) });
  assert.deepEqual(seen, [configName, 'aaaa11112222aaaa/layer.tar', 'bbbb33334444bbbb/layer.tar', 'manifest.json', 'repositories']);
  const image = await imageFromSaveTarball(contents, 'r:5000/a/b:1', '1');
  assert.equal(image.format, 'docker');
  assert.equal(image.config.digest, sha(config));
  assert.equal(image.config.mediaType, MEDIA.dockerConfig);
  assert.deepEqual(image.layers.map((l) => [l.id, l.key, l.digest, l.size, l.asIs]), [
    ['aaaa11112222', 'aaaa11112222aaaa/layer.tar', sha(small), small.length, undefined],
    ['bbbb33334444', 'bbbb33334444bbbb/layer.tar', sha(big), big.length, undefined],
    ['aaaa11112222', 'aaaa11112222aaaa/layer.tar', sha(small), small.length, undefined],
  ]);
  assert.ok('bytes' in image.layers[0].bytes!, 'a small layer stays in memory');
  const spooled = image.layers[1].bytes!;
  assert.ok('path' in spooled && spooled.path.startsWith(dir), 'a big layer is spooled');
  assert.ok((await readFile(spooled.path)).equals(big));
  const other = await readTarball(Readable.from([await tarball([{ name: 'x', content: 'y' }])]), dir);
  await assert.rejects(imageFromSaveTarball(other, 'a/b:1', '1'), /neither manifest.json nor index.json/);
});

test('docker save of newer engines: manifest.json pointing into an OCI layout; gzip blobs pushed as they are', async () => {
  const dir = await temp();
  const raw = await layerTar(100 * 1024);
  const gz = gzipSync(await layerTar(200 * 1024));
  const config = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha(raw), sha(gunzipSync(gz))] } });
  const blob = (bytes: Buffer | string) => ({ name: `blobs/sha256/${sha(bytes).slice(7)}`, content: bytes });
  const save = await tarball([
    blob(raw),
    blob(gz),
    blob(config),
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', content: '{"schemaVersion":2,"manifests":[]}' },
    { name: 'manifest.json', content: JSON.stringify([{ Config: blob(config).name, RepoTags: null, Layers: [blob(raw).name, blob(gz).name] }]) },
  ]);
  const image = await imageFromSaveTarball(await readTarball(Readable.from([save]), dir), 'r:5000/x:1', '1');
  assert.equal(image.config.digest, sha(config));
  assert.deepEqual(image.layers.map((l) => [l.id, l.digest, l.asIs?.mediaType]), [
    [sha(raw).slice(7, 19), sha(raw), undefined],
    [sha(gz).slice(7, 19), sha(gz), MEDIA.dockerLayerGzip],
  ]);
});

test('an OCI layout inside a tarball (no manifest.json): the manifest tagged as asked, pushed unchanged', async () => {
  const dir = await temp();
  const gz = gzipSync(await layerTar(1000));
  const config = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha(gunzipSync(gz))] } });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha(config), size: config.length },
    layers: [{ mediaType: MEDIA.ociLayerGzip, digest: sha(gz), size: gz.length }],
  });
  const index = { schemaVersion: 2, manifests: [{ mediaType: MEDIA.ociManifest, digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v2' } }] };
  const blob = (bytes: Buffer | string) => ({ name: `blobs/sha256/${sha(bytes).slice(7)}`, content: bytes });
  const save = await tarball([blob(gz), blob(config), blob(manifest), { name: 'oci-layout', content: '{}' }, { name: 'index.json', content: JSON.stringify(index) }]);
  const image = await imageFromSaveTarball(await readTarball(Readable.from([save]), dir), 'r/x:v2', 'v2');
  assert.equal(image.format, 'oci');
  assert.equal(image.original?.bytes.toString('utf8'), manifest);
  assert.deepEqual(image.layers.map((l) => [l.digest, l.asIs?.mediaType]), [[sha(gz), MEDIA.ociLayerGzip]]);
});

test('blob cache: remembers repositories and gzip digests across loads, merging with concurrent writers', async () => {
  const path = join(await temp(), 'sub', 'blob-sources.json');
  const first = await BlobCache.load(path);
  first.remember(sha('gz'), 10, 'r:5000', 'team/a', sha('raw'));
  const second = await BlobCache.load(path);
  second.remember(sha('gz'), 10, 'r:5000', 'team/b');
  await first.save();
  await second.save();
  const cache = await BlobCache.load(path);
  assert.deepEqual(cache.compressedOf(sha('raw')), { digest: sha('gz'), size: 10 });
  assert.deepEqual(cache.sources(sha('gz'), 'r:5000', 'team/c'), ['team/b', 'team/a']);
  assert.deepEqual(cache.sources(sha('gz'), 'r:5000', 'team/a'), ['team/b']);
  assert.deepEqual(cache.sources(sha('gz'), 'other:5000', 'x'), []);
  assert.equal(cache.compressedOf(sha('unknown')), undefined);
});
