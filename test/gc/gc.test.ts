/**
 * Online garbage collection (core/gc.ts) through the HTTP API on real back ends: what is kept
 * (tags, index children, referrers, pushes in flight, shared blobs), what goes and when, the S3
 * bytes freed, dry runs, resumption, and the report.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { BlobStore } from '../../functions/storage/ports.js';
import { startRegistry, type TestRegistry, type Metadata } from '../support/stack.js';
import { Api, MediaTypes, expectError, imageManifest, sha256, uniqueRepo } from '../http/helpers.js';
import { assertConsistent, linked, storedBlobBytes, storesOf } from './helpers.js';

let stack: TestRegistry;
let api: Api;
let metadata: Metadata;
let blobs: BlobStore;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
  ({ metadata, blobs } = storesOf(stack));
});
after(() => stack.stop());

const DAY = 24 * 3600 * 1000;
const gc = (options: Partial<Parameters<TestRegistry['registry']['gc']['run']>[0]> = {}) => stack.registry.gc.run({ graceMs: 0, ...options });

describe('garbage collection', () => {
  test('a blob pushed for a manifest not yet PUT survives a run with grace 0; the manifest PUT then succeeds', async () => {
    const repo = uniqueRepo('gc');
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const layer = randomBytes(3000);
    const configDigest = await api.pushBlob(repo, config);
    const layerDigest = await api.pushBlob(repo, layer);
    const report = await gc();
    assert.equal(report.finished, true);
    assert.ok(await linked(metadata, repo, layerDigest), 'the push in flight keeps its link');
    await api.pushManifest(repo, 'v1', imageManifest({ digest: configDigest, size: config.length }, [{ digest: layerDigest, size: layer.length }]));
    const pulled = await api.getBlob(repo, layerDigest);
    assert.deepEqual(Buffer.from(await pulled.content.arrayBuffer()), layer);
  });

  test('an abandoned push (never referenced) goes after the upload window, its bytes with it', async () => {
    const repo = uniqueRepo('gc');
    const layer = randomBytes(5000);
    const digest = await api.pushBlob(repo, layer);
    const blob = await metadata.getBlob(digest);
    await gc({ now: () => Date.now() + 6 * DAY });
    assert.ok(await linked(metadata, repo, digest), 'kept within the 7-day upload window');
    const report = await gc({ now: () => Date.now() + 8 * DAY });
    assert.equal(await linked(metadata, repo, digest), false);
    assert.equal(await metadata.getBlob(digest), undefined);
    assert.equal(await blobs.size(blob!.key), undefined, 'the S3 object is deleted');
    assert.ok(report.bytesReclaimed >= layer.length);
    await assertConsistent(metadata, blobs, 'after collecting an abandoned push');
  });

  test('a tagged image index keeps its untagged platform manifests and their layers; untagged, all of it goes', async () => {
    const repo = uniqueRepo('gc');
    const amd = await api.pushImage(repo, 'amd64-tmp');
    const arm = await api.pushImage(repo, 'arm64-tmp');
    // The platform manifests lose their tags: only the index reaches them.
    for (const tag of ['amd64-tmp', 'arm64-tmp']) assert.equal((await api.delete(`/v2/${repo}/manifests/${tag}`)).status, 202);
    const index = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: amd.digest, size: amd.bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: MediaTypes.ociManifest, digest: arm.digest, size: arm.bytes.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    };
    const { digest: indexDigest } = await api.pushManifest(repo, 'multi', index);
    const later = () => Date.now() + 2 * DAY;
    await gc({ now: later });
    for (const image of [amd, arm]) {
      assert.equal((await api.get(`/v2/${repo}/manifests/${image.digest}`)).status, 200, 'platform manifest kept');
      const layer = await api.getBlob(repo, image.layer.digest);
      assert.deepEqual(Buffer.from(await layer.content.arrayBuffer()), image.layer.bytes, 'its layer kept');
    }
    assert.equal((await api.delete(`/v2/${repo}/manifests/multi`)).status, 202);
    const report = await gc({ now: later });
    for (const digest of [indexDigest, amd.digest, arm.digest]) assert.equal((await api.get(`/v2/${repo}/manifests/${digest}`)).status, 404);
    for (const image of [amd, arm]) assert.equal(await linked(metadata, repo, image.layer.digest), false);
    assert.ok(report.deleted.manifests >= 3 && report.deleted.blobs >= 4, JSON.stringify(report.deleted));
    assert.equal((await api.get('/v2/_catalog?n=1000').then((r) => r.json()) as { repositories: string[] }).repositories.includes(repo), false, 'the emptied repository leaves the catalog');
    await assertConsistent(metadata, blobs, 'after collecting an index');
  });

  test('a referrer of a kept manifest survives; the referrer of a collected manifest goes with it', async () => {
    const repo = uniqueRepo('gc');
    const kept = await api.pushImage(repo, 'kept');
    const dropped = await api.pushImage(repo, 'dropped');
    const signature = async (subject: { digest: string; bytes: Buffer }) => {
      const config = Buffer.from('{}');
      const configDigest = await api.pushBlob(repo, config);
      const payload = randomBytes(200);
      const payloadDigest = await api.pushBlob(repo, payload);
      const manifest = imageManifest({ digest: configDigest, size: 2, mediaType: MediaTypes.ociEmpty }, [{ digest: payloadDigest, size: payload.length, mediaType: 'application/vnd.example.signature' }], {
        artifactType: 'application/vnd.example.signature',
        subject: { mediaType: MediaTypes.ociManifest, digest: subject.digest, size: subject.bytes.length },
      });
      return { ...(await api.pushManifest(repo, sha256(JSON.stringify(manifest)), manifest)), payloadDigest };
    };
    const keptSignature = await signature(kept);
    const droppedSignature = await signature(dropped);
    assert.equal((await api.delete(`/v2/${repo}/manifests/dropped`)).status, 202);
    await gc({ now: () => Date.now() + 2 * DAY });
    assert.equal((await api.get(`/v2/${repo}/manifests/${keptSignature.digest}`)).status, 200, 'the signature of a kept image stays');
    assert.ok(await linked(metadata, repo, keptSignature.payloadDigest));
    const referrers = (await (await api.get(`/v2/${repo}/referrers/${kept.digest}`)).json()) as { manifests: { digest: string }[] };
    assert.deepEqual(referrers.manifests.map((m) => m.digest), [keptSignature.digest]);
    assert.equal((await api.get(`/v2/${repo}/manifests/${dropped.digest}`)).status, 404);
    assert.equal((await api.get(`/v2/${repo}/manifests/${droppedSignature.digest}`)).status, 404, 'the signature goes with its subject');
    assert.equal(await linked(metadata, repo, droppedSignature.payloadDigest), false);
    const orphans = (await (await api.get(`/v2/${repo}/referrers/${dropped.digest}`)).json()) as { manifests: unknown[] };
    assert.deepEqual(orphans.manifests, [], 'no referrer entry is left');
    await assertConsistent(metadata, blobs, 'after collecting referrers');
  });

  test('an untagged manifest younger than the grace period is kept, older ones go', async () => {
    const repo = uniqueRepo('gc');
    const image = await api.pushImage(repo, 'tmp');
    await api.delete(`/v2/${repo}/manifests/tmp`);
    await gc({ graceMs: DAY });
    assert.equal((await api.get(`/v2/${repo}/manifests/${image.digest}`)).status, 200);
    await gc({ graceMs: DAY, now: () => Date.now() + DAY + 60_000 });
    assert.equal((await api.get(`/v2/${repo}/manifests/${image.digest}`)).status, 404);
  });

  test('two repositories share a blob: emptying one keeps it for the other, emptying both frees the S3 bytes', async () => {
    const [one, two] = [uniqueRepo('gc'), uniqueRepo('gc')];
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(4).toString('hex') }));
    const layer = randomBytes(256 * 1024);
    const manifest = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]);
    for (const repo of [one, two]) {
      await api.pushBlob(repo, config);
      await api.pushBlob(repo, layer);
      await api.pushManifest(repo, 'v1', manifest);
    }
    const blob = await metadata.getBlob(sha256(layer));
    const before = await storedBlobBytes(blobs);
    await api.delete(`/v2/${one}/manifests/${sha256(JSON.stringify(manifest))}`);
    await gc();
    const pulled = await api.getBlob(two, sha256(layer));
    assert.deepEqual(Buffer.from(await pulled.content.arrayBuffer()), layer, 'the other repository still serves it');
    assert.notEqual(await blobs.size(blob!.key), undefined);
    await api.delete(`/v2/${two}/manifests/${sha256(JSON.stringify(manifest))}`);
    const report = await gc();
    assert.equal(await blobs.size(blob!.key), undefined, 'the S3 object is gone');
    const afterBoth = await storedBlobBytes(blobs);
    assert.ok(before.bytes - afterBoth.bytes >= layer.length + config.length, `bytes under blobs/: ${before.bytes} → ${afterBoth.bytes}`);
    assert.ok(report.bytesReclaimed >= layer.length + config.length);
    await assertConsistent(metadata, blobs, 'after emptying two repositories');
  });

  test('expired upload sessions go with their data; open ones stay', async () => {
    const repo = uniqueRepo('gc');
    const { location, uuid } = await api.startUpload(repo);
    assert.equal((await api.patch(location, randomBytes(1000))).status, 202);
    const session = await metadata.getUpload(uuid);
    assert.ok(session?.tailKey, 'the chunk waits in a tail object');
    await gc();
    assert.ok(await metadata.getUpload(uuid), 'an open session is kept');
    const report = await gc({ now: () => Date.now() + 8 * DAY });
    assert.equal(await metadata.getUpload(uuid), undefined);
    assert.equal(await blobs.size(session.tailKey), undefined, 'its tail object is deleted');
    assert.ok(report.deleted.uploads >= 1);
    await expectError(await api.patch(location, randomBytes(10)), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('a whole blob published by a PUT that died before removing its session: the expired session goes, the bytes stay', async () => {
    const repo = uniqueRepo('gc');
    const layer = randomBytes(3000);
    const config = Buffer.from('{}');
    const { location, uuid } = await api.startUpload(repo);
    const next = (await api.patch(location, layer)).headers.get('location')!;
    const session = await metadata.getUpload(uuid);
    assert.ok(session?.tailKey?.startsWith('blobs/'), `the streamed blob is kept whole under blobs/: ${session?.tailKey}`);
    assert.equal((await api.put(next, sha256(layer))).status, 201);
    const configDigest = await api.pushBlob(repo, config);
    await api.pushManifest(repo, 'v1', imageManifest({ digest: configDigest, size: config.length }, [{ digest: sha256(layer), size: layer.length }]));
    // What a crash between publishing the blob and deleting the session item leaves.
    await metadata.createUpload(session!);
    await gc({ now: () => Date.now() + 8 * DAY });
    assert.equal(await metadata.getUpload(uuid), undefined, 'the expired session is gone');
    const response = await api.get(`/v2/${repo}/blobs/${sha256(layer)}`);
    assert.equal(response.status, 200);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), layer);
    await assertConsistent(metadata, blobs, 'after the expired session of a published blob');
  });

  test('front-door objects under incoming/ without a session are deleted', async () => {
    await blobs.put(`incoming/sha256-${'a'.repeat(64)}/00000000-0000-4000-8000-000000000000`, randomBytes(100));
    const report = await gc();
    assert.deepEqual(await blobs.list('incoming/', 10), []);
    assert.ok(report.deleted.objects >= 1);
  });

  test('objects under blobs/ that no blob item or session points at go once older than the grace period', async () => {
    const repo = uniqueRepo('gc');
    const kept = await api.pushImage(repo, 'v1');
    const orphan = `blobs/${randomUUID()}`;
    await blobs.put(orphan, randomBytes(4096));
    await gc({ graceMs: DAY });
    assert.equal(await blobs.size(orphan), 4096, 'younger than the grace period: kept');
    const report = await gc({ now: () => Date.now() + 2 * DAY, graceMs: DAY });
    assert.equal(await blobs.size(orphan), undefined, 'deleted');
    assert.ok(report.deleted.objects >= 1 && report.bytesReclaimed >= 4096);
    const layer = await api.getBlob(repo, kept.layer.digest);
    assert.deepEqual(Buffer.from(await layer.content.arrayBuffer()), kept.layer.bytes, 'a linked blob keeps its object');
    await assertConsistent(metadata, blobs, 'after collecting orphan objects');
  });

  test('a large manifest (> 256 KiB, an S3 object per push) keeps its object while a manifest item names it', async () => {
    const [first, second] = [uniqueRepo('gc'), uniqueRepo('gc')];
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const manifest = (repo: string) => api.pushBlob(repo, config).then((digest) => imageManifest({ digest, size: config.length }, [], { annotations: { big: 'x'.repeat(300 * 1024) } }));
    const { digest } = await api.pushManifest(first, 'big', await manifest(first));
    await api.pushManifest(second, 'big', await manifest(second));
    const keyOf = async (repo: string) => (await metadata.getManifest(repo, digest))!.key!;
    const [firstKey, secondKey] = [await keyOf(first), await keyOf(second)];
    assert.notEqual(firstKey, secondKey, 'one object per push, never shared');
    for (const key of [firstKey, secondKey]) assert.ok(((await blobs.size(key)) ?? 0) > 300 * 1024, 'stored in S3');
    assert.equal((await api.delete(`/v2/${first}/manifests/${digest}`)).status, 202);
    await gc({ now: () => Date.now() + 2 * DAY });
    assert.equal(await blobs.size(firstKey), undefined, 'no item names it: deleted');
    assert.ok(await blobs.size(secondKey), 'the other repository\'s is kept');
    assert.equal((await api.get(`/v2/${second}/manifests/big`)).status, 200);
    assert.equal((await api.delete(`/v2/${second}/manifests/${digest}`)).status, 202);
    await gc({ now: () => Date.now() + 2 * DAY });
    assert.equal(await blobs.size(secondKey), undefined, 'no repository holds it: deleted');
  });

  test('a dry run lists exactly what the next run deletes, and deletes nothing', async () => {
    const repo = uniqueRepo('gc');
    const image = await api.pushImage(repo, 'tmp');
    await api.delete(`/v2/${repo}/manifests/tmp`);
    const later = Date.now() + 2 * DAY;
    const dry = await gc({ dryRun: true, now: () => later });
    assert.ok(dry.planned.includes(`manifest ${repo}@${image.digest}`), dry.planned.join('\n'));
    assert.ok(dry.planned.includes(`link ${repo}@${image.layer.digest}`));
    assert.ok(dry.planned.some((line) => line.startsWith(`blob ${image.layer.digest} `)));
    assert.equal((await api.get(`/v2/${repo}/manifests/${image.digest}`)).status, 200, 'nothing deleted');
    const real = await gc({ now: () => later });
    const mine = (lines: string[]) => lines.filter((l) => l.includes(repo) || l.includes(image.layer.digest) || l.includes(image.config.digest)).sort();
    assert.deepEqual(mine(dry.planned), mine([
      `manifest ${repo}@${image.digest}`,
      `link ${repo}@${image.layer.digest}`,
      `link ${repo}@${image.config.digest}`,
      `repository ${repo}`,
      `blob ${image.layer.digest} (${image.layer.size} bytes)`,
      `blob ${image.config.digest} (${image.config.size} bytes)`,
    ]));
    assert.ok(real.deleted.manifests >= 1 && real.deleted.links >= 2 && real.deleted.blobs >= 2);
  });

  test('a run cut short saves its state and the next invocation finishes it; the report counts requests', async () => {
    const repo = uniqueRepo('gc');
    await api.pushImage(repo, 'tmp');
    await api.delete(`/v2/${repo}/manifests/tmp`);
    const first = await gc({ deadline: 0 });
    assert.equal(first.finished, false);
    assert.ok(await stack.registry.gc.pending(), 'state saved');
    const second = await gc({ graceMs: DAY });
    assert.equal(second.runId, first.runId, 'the same run continues, with its own grace');
    assert.equal(second.graceMs, 0);
    assert.equal(second.finished, true);
    assert.equal(await stack.registry.gc.pending(), undefined);
    // The native store sends no requests to DynamoDB, and blobs as files (npm start) none to S3: the counts say so.
    const dynamodb = stack.backends.metadata ? second.requests!.dynamodb === 0 : second.requests!.dynamodb > 0;
    const s3 = stack.backends.config.blobDir ? second.requests!.s3 === 0 : second.requests!.s3 > 0;
    assert.ok(dynamodb && s3, JSON.stringify(second.requests));
    assert.ok(second.scanned.repositories >= 1 && second.scanned.blobs >= 1);
  });
});
