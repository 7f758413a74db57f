import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RegistryError } from '../../functions/core/errors.js';
import { duplicateKey, MAX_MANIFEST_BYTES, MediaTypes, parseManifest } from '../../functions/core/manifest.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const desc = (mediaType: string, c: string, extra = {}) => ({ mediaType, digest: d(c), size: 10, ...extra });
const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
const invalid = (e: RegistryError) => e.code === 'MANIFEST_INVALID' && e.status === 400;

const image = {
  schemaVersion: 2,
  mediaType: MediaTypes.ociManifest,
  config: desc('application/vnd.oci.image.config.v1+json', 'c'),
  layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip', 'a')],
};

test('an OCI image manifest references its config and layers', () => {
  const parsed = parseManifest(bytes(image), MediaTypes.ociManifest);
  assert.equal(parsed.mediaType, MediaTypes.ociManifest);
  assert.deepEqual(parsed.blobs, [d('c'), d('a')]);
  assert.equal(parsed.artifactType, 'application/vnd.oci.image.config.v1+json');
});

test('an OCI index references child manifests; subject and artifactType are kept', () => {
  const index = { schemaVersion: 2, artifactType: 'application/x-sig', manifests: [desc(MediaTypes.ociManifest, 'b')], subject: desc(MediaTypes.ociManifest, 'e') };
  const parsed = parseManifest(bytes(index), MediaTypes.ociIndex);
  assert.deepEqual(parsed.manifests, [d('b')]);
  assert.equal(parsed.subject, d('e'));
  assert.equal(parsed.artifactType, 'application/x-sig');
});

test('Docker schema 2 manifests and manifest lists are accepted', () => {
  const docker = { ...image, mediaType: MediaTypes.dockerManifest };
  assert.equal(parseManifest(bytes(docker), MediaTypes.dockerManifest).mediaType, MediaTypes.dockerManifest);
  const list = { schemaVersion: 2, mediaType: MediaTypes.dockerManifestList, manifests: [desc(MediaTypes.dockerManifest, 'b')] };
  assert.equal(parseManifest(bytes(list), MediaTypes.dockerManifestList).manifests.length, 1);
});

test('foreign layers with urls need not be in the registry', () => {
  const foreign = desc('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'f', { urls: ['https://example.com/l'] });
  const parsed = parseManifest(bytes({ ...image, mediaType: MediaTypes.dockerManifest, layers: [foreign] }), MediaTypes.dockerManifest);
  assert.deepEqual(parsed.blobs, [d('c')]);
});

test('without Content-Type or mediaType the shape decides', () => {
  const { mediaType: _omit, ...bare } = image;
  assert.equal(parseManifest(bytes(bare), undefined).mediaType, MediaTypes.ociManifest);
});

test('refused: schema 1, ambiguous, contradicting mediaType, bad JSON, bad shapes, unknown types', () => {
  const cases: [unknown, string | undefined][] = [
    [{ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [] }, MediaTypes.dockerSchema1Signed],
    [{ schemaVersion: 1 }, undefined],
    [{ ...image, manifests: [] }, MediaTypes.ociManifest],
    [{ ...image, manifests: [] }, MediaTypes.ociIndex],
    [image, MediaTypes.ociIndex],
    [image, MediaTypes.dockerManifest],
    [{ ...image, schemaVersion: 3 }, MediaTypes.ociManifest],
    [{ ...image, layers: [{ ...desc('a/b', 'a'), size: -1 }] }, MediaTypes.ociManifest],
    [{ ...image, config: { ...image.config, digest: 'sha256:nothex' } }, MediaTypes.ociManifest],
    [{ ...image, layers: 'x' }, MediaTypes.ociManifest],
    [[image], MediaTypes.ociManifest],
    [42, MediaTypes.ociManifest],
    [image, 'application/json'],
  ];
  for (const [value, type] of cases) assert.throws(() => parseManifest(bytes(value), type), invalid, JSON.stringify(value).slice(0, 80));
  assert.throws(() => parseManifest(Buffer.from('{nope'), MediaTypes.ociManifest), invalid);
});

test('property: arbitrary bytes never escape as anything but MANIFEST_INVALID', () => {
  fc.assert(
    fc.property(fc.oneof(fc.json(), fc.string()), fc.constantFrom(...Object.values(MediaTypes), undefined), (text, type) => {
      try {
        parseManifest(Buffer.from(text), type);
      } catch (error) {
        assert.ok(invalid(error as RegistryError), String(error));
      }
    }),
    { numRuns: 1000 },
  );
});

test('duplicate keys at any depth, escaped spellings included, are refused with MANIFEST_INVALID', () => {
  const text = JSON.stringify(image);
  const duplicates = [
    text.replace('{', '{"schemaVersion":2,'),
    text.replace('"layers":[{', '"layers":[{"size":1,'),
    text.replace('"config":{', '"config":{"annotations":{"a":"1","a":"2"},'),
    text.replace('"config":{', '"config":{"\\u006dediaType":"x",'),
    `{"annotations":{"k":"v"},"x":[{"k":1},{"k":2}],"annotations":{}}`,
  ];
  for (const duplicate of duplicates) {
    assert.throws(() => parseManifest(Buffer.from(duplicate), MediaTypes.ociManifest), (e: RegistryError) => invalid(e) && /duplicate key/.test(e.message), duplicate.slice(0, 80));
  }
  assert.equal(duplicateKey('{"a":{"b":1},"c":{"b":1},"d":[{"b":1},{"b":2}],"e":"{\\"a\\":1,\\"a\\":2}"}'), undefined, 'same key in sibling objects, and keys inside strings, are no duplicates');
  assert.equal(duplicateKey('{"a":1,"b":{"x":[1,{"y":2,"y":3}]}}'), 'y');
});

test('property: JSON text a serializer produced has no duplicate key', () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => assert.equal(duplicateKey(JSON.stringify(value)), undefined)), { numRuns: 1000 });
});

test('the duplicate-key check of a 4 MiB manifest takes well under a second', () => {
  const annotations: Record<string, string> = {};
  const entry = (i: number) => [`org.example.key.${i}`, `value \\"${i}\\" ${'x'.repeat(40)}`];
  for (let i = 0, size = 0; size < MAX_MANIFEST_BYTES - 4096; i++) {
    const [key, value] = entry(i);
    annotations[key] = value;
    size += key.length + value.length + 8;
  }
  const manifest = Buffer.from(JSON.stringify({ ...image, annotations }));
  const started = performance.now();
  parseManifest(manifest, MediaTypes.ociManifest);
  assert.ok(performance.now() - started < 1000, `${(performance.now() - started).toFixed(0)} ms`);
  const duplicated = Buffer.from(manifest.toString().replace(/}}$/, ',"org.example.key.0":"again"}}'));
  assert.throws(() => parseManifest(duplicated, MediaTypes.ociManifest), invalid);
});
