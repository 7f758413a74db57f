/**
 * Referrers (distribution-spec v1.1 "Pushing Manifests with Subject", end-12a, end-12b):
 * `OCI-Subject` on pushes with a subject, the referrers image index with `artifactType` and
 * annotations, the `artifactType` filter and `OCI-Filters-Applied`, and empty answers (never
 * 404) for subjects without referrers.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import { absentDigest, Api, expectError, MediaTypes, sha256, uniqueRepo, type PushedImage } from './helpers.js';

let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
});
after(() => stack.stop());

const SBOM = 'application/vnd.example.sbom.v1';
const SIGNATURE_CONFIG = 'application/vnd.example.signature.config.v1+json';
const ATTESTATION = 'application/vnd.example.attestation.v1';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

interface Index {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

/** The OCI empty descriptor `{}` as config, pushed to `repo`. */
async function emptyConfig(repo: string, mediaType: string = MediaTypes.ociEmpty) {
  const bytes = Buffer.from('{}');
  return { mediaType, digest: await api.pushBlob(repo, bytes), size: bytes.length };
}

/** Pushes an artifact manifest with a subject; asserts 201 and `OCI-Subject`; returns its descriptor as the referrers API must list it. */
async function pushReferrer(
  repo: string,
  subject: { digest: string; size: number; mediaType: string },
  options: { artifactType?: string; configMediaType?: string; annotations?: Record<string, string>; reference?: string },
): Promise<Descriptor> {
  const config = await emptyConfig(repo, options.configMediaType);
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    config,
    layers: [config],
    subject,
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const { response, digest } = await api.putManifest(repo, options.reference ?? sha256(bytes), bytes, MediaTypes.ociManifest);
  assert.equal(response.status, 201, await response.clone().text());
  assert.equal(response.headers.get('oci-subject'), subject.digest, 'OCI-Subject names the subject (spec: MUST)');
  return {
    mediaType: MediaTypes.ociManifest,
    digest,
    size: bytes.length,
    artifactType: options.artifactType ?? options.configMediaType ?? MediaTypes.ociEmpty,
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
}

async function referrers(repo: string, digest: string, query = ''): Promise<{ response: Response; index: Index }> {
  const response = await api.get(`/v2/${repo}/referrers/${digest}${query}`);
  assert.equal(response.status, 200, `referrers ${query}: ${await response.clone().text()}`);
  assert.equal(response.headers.get('content-type'), MediaTypes.ociIndex, 'Content-Type is the OCI index type (spec: MUST)');
  const index = (await response.json()) as Index;
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, MediaTypes.ociIndex);
  assert.ok(Array.isArray(index.manifests), 'manifests is an array');
  return { response, index };
}

function byDigest(descriptors: Descriptor[]): Descriptor[] {
  return [...descriptors].sort((a, b) => a.digest.localeCompare(b.digest));
}

function subjectOf(image: PushedImage) {
  return { mediaType: MediaTypes.ociManifest, digest: image.digest, size: image.bytes.length };
}

test('manifests with a subject: 201 with OCI-Subject; the referrers index lists them with artifactType and annotations', async () => {
  const repo = uniqueRepo('ref');
  const image = await api.pushImage(repo, 'v1');
  const sbom = await pushReferrer(repo, subjectOf(image), { artifactType: SBOM, annotations: { 'org.example.format': 'spdx', 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' } });
  const signature = await pushReferrer(repo, subjectOf(image), { configMediaType: SIGNATURE_CONFIG });
  const tagged = await pushReferrer(repo, subjectOf(image), { artifactType: ATTESTATION, reference: 'attestation' });

  const { response, index } = await referrers(repo, image.digest);
  assert.equal(response.headers.get('oci-filters-applied'), null, 'no filter applied without a filter');
  assert.deepEqual(byDigest(index.manifests), byDigest([sbom, signature, tagged]));

  // A manifest without subject is no referrer and gets no OCI-Subject.
  const plain = await api.pushImage(repo, 'v2');
  assert.ok(!(await referrers(repo, image.digest)).index.manifests.some((d) => d.digest === plain.digest));
});

test('an index with a subject is a referrer; without artifactType its descriptor has none', async () => {
  const repo = uniqueRepo('ref');
  const image = await api.pushImage(repo, 'v1');
  const child = await api.pushImage(repo, 'child');
  const make = (artifactType?: string) => ({
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    ...(artifactType ? { artifactType } : {}),
    manifests: [{ mediaType: MediaTypes.ociManifest, digest: child.digest, size: child.bytes.length }],
    subject: subjectOf(image),
    annotations: { 'org.example.kind': artifactType ?? 'none' },
  });
  const withType = await api.putManifest(repo, 'with-type', make(ATTESTATION));
  assert.equal(withType.response.status, 201, await withType.response.clone().text());
  assert.equal(withType.response.headers.get('oci-subject'), image.digest);
  const without = await api.putManifest(repo, 'without-type', make());
  assert.equal(without.response.status, 201);
  assert.equal(without.response.headers.get('oci-subject'), image.digest);

  const { index } = await referrers(repo, image.digest);
  assert.deepEqual(
    byDigest(index.manifests),
    byDigest([
      { mediaType: MediaTypes.ociIndex, digest: withType.digest, size: withType.bytes.length, artifactType: ATTESTATION, annotations: { 'org.example.kind': ATTESTATION } },
      { mediaType: MediaTypes.ociIndex, digest: without.digest, size: without.bytes.length, annotations: { 'org.example.kind': 'none' } },
    ]),
  );
  const listed = index.manifests.find((d) => d.digest === without.digest)!;
  assert.ok(!('artifactType' in listed), 'spec: if the artifactType is missing in an index, it MUST be omitted');
});

test('?artifactType= filters and sets OCI-Filters-Applied: artifactType', async () => {
  const repo = uniqueRepo('ref');
  const image = await api.pushImage(repo, 'v1');
  const sbom = await pushReferrer(repo, subjectOf(image), { artifactType: SBOM });
  const sbom2 = await pushReferrer(repo, subjectOf(image), { artifactType: SBOM, annotations: { n: '2' } });
  await pushReferrer(repo, subjectOf(image), { configMediaType: SIGNATURE_CONFIG });

  const filtered = await referrers(repo, image.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
  assert.equal(filtered.response.headers.get('oci-filters-applied'), 'artifactType');
  assert.deepEqual(byDigest(filtered.index.manifests), byDigest([sbom, sbom2]));

  const byConfig = await referrers(repo, image.digest, `?artifactType=${encodeURIComponent(SIGNATURE_CONFIG)}`);
  assert.equal(byConfig.index.manifests.length, 1, 'the config media type stands in for a missing artifactType');

  const none = await referrers(repo, image.digest, `?artifactType=${encodeURIComponent('application/vnd.example.none')}`);
  assert.equal(none.response.headers.get('oci-filters-applied'), 'artifactType');
  assert.deepEqual(none.index.manifests, []);
});

test('a subject without referrers, or unknown altogether, answers 200 with an empty index (never 404)', async () => {
  const repo = uniqueRepo('ref');
  const image = await api.pushImage(repo, 'v1');
  assert.deepEqual((await referrers(repo, image.digest)).index.manifests, []);
  assert.deepEqual((await referrers(repo, absentDigest())).index.manifests, []);
  assert.deepEqual((await referrers(uniqueRepo('nowhere'), absentDigest())).index.manifests, []);
});

test('a referrer may be pushed before its subject exists (spec: MUST accept) and is listed', async () => {
  const repo = uniqueRepo('ref');
  const future = { mediaType: MediaTypes.ociManifest, digest: absentDigest(), size: 1234 };
  const sbom = await pushReferrer(repo, future, { artifactType: SBOM });
  assert.deepEqual((await referrers(repo, future.digest)).index.manifests, [sbom]);
});

test('deleting a referrer removes it from the list; referrers are per repository', async () => {
  const repo = uniqueRepo('ref');
  const other = uniqueRepo('ref');
  const image = await api.pushImage(repo, 'v1');
  const keep = await pushReferrer(repo, subjectOf(image), { artifactType: SBOM });
  const drop = await pushReferrer(repo, subjectOf(image), { artifactType: ATTESTATION });
  // Same subject digest named from another repository: not a referrer in `repo`.
  await api.pushImage(other, 'x');
  const foreign = await pushReferrer(other, subjectOf(image), { artifactType: SBOM });

  assert.equal((await api.delete(`/v2/${repo}/manifests/${drop.digest}`)).status, 202);
  assert.deepEqual((await referrers(repo, image.digest)).index.manifests, [keep]);
  assert.deepEqual((await referrers(other, image.digest)).index.manifests, [foreign]);
});

test('referrers of a malformed digest → 400 DIGEST_INVALID', async () => {
  const repo = uniqueRepo('ref');
  await api.pushImage(repo, 'v1');
  for (const digest of ['sha256:abc', 'latest', `md5:${'a'.repeat(32)}`]) {
    await expectError(await api.get(`/v2/${repo}/referrers/${digest}`), 400, 'DIGEST_INVALID', digest);
  }
});
