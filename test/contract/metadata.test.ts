/**
 * The MetadataStore contract, run against the configured back end (the embedded DynamoDB emulator,
 * or DynamoDB Local / AWS), the native store of `npm start`, and the native store as `npx berth`
 * reaches it (over its loopback endpoint, infra/local/store-rpc.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDynamoClient, DynamoMetadataStore } from '../../functions/storage/dynamodb.js';
import { UploadConflict, type AccountStore, type MetadataStore, type UploadSession } from '../../functions/storage/ports.js';
import { remoteStore } from '../../infra/local/store-rpc.js';
import { startBackends, type Backends } from '../support/stack.js';

type Store = MetadataStore & AccountStore;

/** The back ends, each with how the test reaches its store. */
const variants: { name: string; native: boolean; open(backends: Backends): Promise<Store> }[] = [
  { name: 'DynamoDB', native: false, open: async ({ config }) => new DynamoMetadataStore(createDynamoClient(config.dynamo), config.dynamo.table) },
  { name: 'native', native: true, open: async ({ metadata }) => metadata! },
  {
    name: 'native over its endpoint',
    native: true,
    open: async ({ dataDir }) => {
      const { readFile } = await import('node:fs/promises');
      const { join } = await import('node:path');
      const endpoints = JSON.parse(await readFile(join(dataDir, 'endpoints.json'), 'utf8')) as { BERTH_METADATA_URL: string };
      return remoteStore(endpoints.BERTH_METADATA_URL, dataDir);
    },
  },
];

for (const variant of variants) {
  describe(`MetadataStore contract (${variant.name})`, () => {
    let backends: Backends;
    let store: Store;
    before(async () => {
      backends = await startBackends({}, variant.native ? { metadata: 'native' } : {});
      store = await variant.open(backends);
    });
    after(() => backends.stop());
    contract(() => store);
  });
}

const digest = (c: string) => `sha256:${c.repeat(64)}` as const;

/** Every item of a paged scan. */
async function scanAll<T>(page: (last?: string) => Promise<{ items: T[]; last?: string }>): Promise<T[]> {
  const items: T[] = [];
  let last: string | undefined;
  do {
    const next = await page(last);
    items.push(...next.items);
    last = next.last;
  } while (last);
  return items;
}

/** The tests of the contract, on the store `current()` answers once the back ends run. */
function contract(current: () => Store): void {
  let store: Store;
  before(() => {
    store = current();
  });

  test('blobs: first writer wins, links are per repository', async () => {
    const first = await store.putBlobIfAbsent({ digest: digest('a'), size: 3, key: 'k1' });
    const second = await store.putBlobIfAbsent({ digest: digest('a'), size: 3, key: 'k2' });
    assert.equal(first.created, true);
    assert.deepEqual(second, { blob: { digest: digest('a'), size: 3, key: 'k1' }, created: false });
    await store.putBlobLink('r1', first.blob);
    assert.deepEqual(await store.getBlobLink('r1', digest('a')), first.blob);
    assert.equal(await store.getBlobLink('r2', digest('a')), undefined);
    assert.equal(await store.deleteBlobLink('r1', digest('a')), true);
    assert.equal(await store.deleteBlobLink('r1', digest('a')), false);
  });

  test('upload sessions: one lease at a time, commits are conditional', async () => {
    const session: UploadSession = { id: 'u1', repository: 'r', dataKey: 'blobs/u1', offset: 0, parts: [], tailSize: 0, version: 0, createdAt: 1, expiresAt: 2 };
    await store.createUpload(session);
    const now = Date.now();
    const leased = await store.leaseUpload('u1', 'alice', now, now + 60_000);
    assert.equal(leased.offset, 0);
    await assert.rejects(store.leaseUpload('u1', 'bob', now, now + 60_000), UploadConflict);
    const next = { ...leased, offset: 5, parts: [{ number: 1, etag: '"e"', size: 5 }], hashState: 'c3RhdGU=', digest: digest('a'), version: 1 };
    await assert.rejects(store.commitUpload(next, 'bob'), UploadConflict);
    await store.commitUpload(next, 'alice');
    assert.deepEqual(await store.getUpload('u1'), next);
    await assert.rejects(store.commitUpload(next, 'alice'), UploadConflict, 'the lease ended with the commit');
    const again = await store.leaseUpload('u1', 'bob', now, now + 60_000);
    await store.releaseUpload('u1', 'bob');
    assert.equal(again.version, 1);
    await store.leaseUpload('u1', 'carol', now, now + 1);
    assert.ok(await store.leaseUpload('u1', 'dave', now + 10, now + 60_000), 'an expired lease can be taken over');
    await store.deleteUpload('u1');
    assert.equal(await store.getUpload('u1'), undefined);
    await assert.rejects(store.leaseUpload('u1', 'erin', now, now + 1), UploadConflict);
  });

  test('manifests keep their bytes exactly', async () => {
    const bytes = new Uint8Array([0, 1, 2, 255]);
    await store.putManifest({ repository: 'm', digest: digest('b'), mediaType: 'x/y', size: 4, bytes, createdAt: 7 });
    const manifest = await store.getManifest('m', digest('b'));
    assert.deepEqual(Buffer.from(manifest!.bytes!), Buffer.from(bytes));
    assert.equal(manifest!.mediaType, 'x/y');
    assert.equal(await store.deleteManifest('m', digest('b')), true);
    assert.equal(await store.getManifest('m', digest('b')), undefined);
  });

  test('tags list in lexical order, page by page, from any position', async () => {
    const names = ['b', 'a', 'c10', 'c2', 'C', 'z', 'a1'];
    for (const tag of names) await store.putTag({ repository: 't', tag, digest: digest('c'), mediaType: 'x/y', size: 1, updatedAt: 1 });
    const sorted = [...names].sort();
    const all = [];
    let last: string | undefined;
    do {
      const page = await store.listTags('t', 3, last);
      assert.ok(page.items.length <= 3);
      all.push(...page.items.map((t) => t.tag));
      last = page.last;
    } while (last);
    assert.deepEqual(all, sorted);
    assert.deepEqual((await store.listTags('t', 100, 'b0')).items.map((t) => t.tag), ['c10', 'c2', 'z'], 'a position that is not a tag');
    assert.equal((await store.listTags('t', 7)).last, undefined, 'an exactly full page has no successor');
    await store.putTag({ repository: 't', tag: 'small', digest: digest('c'), mediaType: 'x/y', size: 3, bytes: new Uint8Array([1, 2, 3]), updatedAt: 1 });
    assert.deepEqual(Buffer.from((await store.getTag('t', 'small'))!.bytes!), Buffer.from([1, 2, 3]), 'a small manifest travels with its tag');
    assert.equal(await store.deleteTag('t', 'z'), true);
    assert.equal(await store.getTag('t', 'z'), undefined);
  });

  test('referrers are listed per subject', async () => {
    await store.putReferrer('rr', digest('d'), { mediaType: 'x/y', digest: digest('e'), size: 1, artifactType: 'a/b', annotations: { k: 'v' } });
    await store.putReferrer('rr', digest('d'), { mediaType: 'x/y', digest: digest('f'), size: 2 });
    await store.putReferrer('rr', digest('0'), { mediaType: 'x/y', digest: digest('1'), size: 3 });
    const referrers = await store.listReferrers('rr', digest('d'));
    assert.deepEqual(referrers.map((r) => r.digest), [digest('e'), digest('f')]);
    assert.deepEqual(referrers[0].annotations, { k: 'v' });
    await store.deleteReferrer('rr', digest('d'), digest('e'));
    assert.equal((await store.listReferrers('rr', digest('d'))).length, 1);
  });

  test('repositories: catalog in lexical order', async () => {
    for (const name of ['zeta', 'alpha/one', 'alpha', 'mid']) await store.touchRepository(name, 1);
    assert.deepEqual(await store.getRepository('mid'), { name: 'mid', visibility: 'private', pushedAt: 1, description: undefined });
    assert.equal(await store.getRepository('nope'), undefined);
    const first = await store.listRepositories(2);
    const rest = await store.listRepositories(100, first.last);
    const names = [...first.items, ...rest.items].map((r) => r.name);
    assert.deepEqual(names.filter((n) => ['zeta', 'alpha/one', 'alpha', 'mid'].includes(n)), ['alpha', 'alpha/one', 'mid', 'zeta']);
  });

  test('repositories: visibility is private until set, and settable before the first push', async () => {
    await store.setVisibility('mid', 'public');
    assert.equal((await store.getRepository('mid'))!.visibility, 'public');
    await store.touchRepository('mid', 2, 'the middle one');
    assert.deepEqual(await store.getRepository('mid'), { name: 'mid', visibility: 'public', pushedAt: 2, description: 'the middle one' });
    await store.touchRepository('mid', 3);
    assert.equal((await store.getRepository('mid'))!.description, 'the middle one', 'a push without a description keeps it');
    await store.setVisibility('future', 'public');
    await store.setDescription('future', 'set by an admin');
    assert.deepEqual(await store.getRepository('future'), { name: 'future', visibility: 'public', pushedAt: undefined, description: 'set by an admin' });
  });

  test('claims: a conditional collect loses against any claim or rewrite after the read', async () => {
    const blob = { digest: digest('9'), size: 5, key: 'k9' };
    await store.putBlobIfAbsent(blob);
    const [seen] = (await scanAll((last) => store.scanBlobs(2, last))).filter((b) => b.digest === blob.digest);
    assert.ok(seen.claim && seen.linkedAt > 0, 'a new blob item carries a claim and its time');
    assert.deepEqual(await store.claimBlob(blob.digest, 1234), blob, 'claiming answers the blob');
    assert.equal(await store.collect({ kind: 'blob', digest: blob.digest, claim: seen.claim }), false, 'a claim after the read wins');
    const [again] = (await scanAll((last) => store.scanBlobs(2, last))).filter((b) => b.digest === blob.digest);
    assert.equal(again.linkedAt, 1234);
    assert.equal(await store.collect({ kind: 'blob', digest: blob.digest, claim: again.claim }), true);
    assert.equal(await store.getBlob(blob.digest), undefined);
    assert.equal(await store.claimBlob(blob.digest, 1), undefined, 'a collected blob cannot be claimed');
    assert.equal(await store.collect({ kind: 'blob', digest: blob.digest, claim: again.claim }), false, 'nothing to collect twice');

    await store.putBlobLink('claims', blob);
    await store.putManifest({ repository: 'claims', digest: digest('8'), mediaType: 'x/y', size: 1, bytes: new Uint8Array([1]), createdAt: 5 });
    await store.putTag({ repository: 'claims', tag: 'v1', digest: digest('8'), mediaType: 'x/y', size: 1, updatedAt: 5 });
    await store.putReferrer('claims', digest('8'), { mediaType: 'x/y', digest: digest('7'), size: 1 });
    const contents = await store.readRepository('claims');
    assert.deepEqual(contents.tags.map((t) => t.tag), ['v1']);
    assert.deepEqual(contents.referrers, [{ subject: digest('8'), digest: digest('7') }]);
    const [link] = contents.links;
    assert.equal(link.usedAt, undefined, 'a fresh link is unused (a push in flight)');
    assert.ok(await store.claimBlobLink('claims', blob.digest, 99));
    assert.equal((await store.readRepository('claims')).links[0].usedAt, 99);
    assert.equal(await store.collect({ kind: 'link', repository: 'claims', digest: blob.digest, claim: link.claim }), false);
    const [manifest] = contents.manifests;
    await store.putManifest({ repository: 'claims', digest: digest('8'), mediaType: 'x/y', size: 1, bytes: new Uint8Array([1]), createdAt: 6 });
    assert.equal(await store.collect({ kind: 'manifest', repository: 'claims', digest: digest('8'), claim: manifest.claim }), false, 'a rewrite is a new claim');
    assert.equal(await store.claimManifest('claims', digest('8'), 100), true);
    const current = (await store.readRepository('claims')).manifests[0];
    assert.equal(current.usedAt, 100);
    assert.equal(await store.collect({ kind: 'manifest', repository: 'claims', digest: digest('8'), claim: current.claim }), true);
    assert.equal(await store.claimManifest('claims', digest('8'), 101), false);
    assert.equal(await store.claimBlobLink('claims', digest('6'), 1), undefined);
  });

  test('upload sessions and blob items can be scanned page by page', async () => {
    for (const id of ['s1', 's2', 's3']) {
      await store.createUpload({ id, repository: 'scan', dataKey: `blobs/${id}`, offset: 0, parts: [], tailSize: 0, version: 0, createdAt: 1, expiresAt: 2 });
    }
    const sessions = await scanAll((last) => store.scanUploads(1, last));
    assert.deepEqual(sessions.filter((s) => s.repository === 'scan').map((s) => s.id).sort(), ['s1', 's2', 's3']);
    assert.ok(sessions.every((s) => typeof s.id === 'string' && !('pk' in s)));
  });

  test('repositories: deleting a catalog entry, unless a push touched it since', async () => {
    await store.touchRepository('gone', 10);
    assert.equal(await store.deleteRepository('gone', 9), false, 'pushed since');
    assert.equal(await store.deleteRepository('gone', 10), true);
    assert.equal(await store.getRepository('gone'), undefined);
    assert.equal(await store.deleteRepository('gone'), false);
  });

  test('immutable rules and conditional tag writes', async () => {
    await store.putImmutableRule({ pattern: 'team/*', except: ['latest'] });
    await store.putImmutableRule({ pattern: 'ops', except: [] });
    await store.putImmutableRule({ pattern: 'team/*', except: ['latest', 'dev-*'] });
    assert.deepEqual(await store.listImmutableRules(), [{ pattern: 'ops', except: [] }, { pattern: 'team/*', except: ['latest', 'dev-*'] }]);
    assert.equal(await store.deleteImmutableRule('ops'), true);
    assert.equal(await store.deleteImmutableRule('ops'), false);
    const tag = { repository: 'imm', tag: 'v1', digest: digest('5'), mediaType: 'x/y', size: 1, updatedAt: 1 };
    assert.equal(await store.putTagIfUnmoved(tag), true, 'a new tag');
    assert.equal(await store.putTagIfUnmoved({ ...tag, updatedAt: 2 }), true, 'the same digest again');
    assert.equal(await store.putTagIfUnmoved({ ...tag, digest: digest('4') }), false, 'another digest');
    assert.equal((await store.getTag('imm', 'v1'))!.digest, digest('5'));
  });

  test('tags replaced only while unchanged since read: no write moves one back or brings one back', async () => {
    const first = { repository: 'refresh', tag: 'v1', digest: digest('6'), mediaType: 'x/y', size: 1, updatedAt: 1 };
    assert.equal(await store.replaceTag(first, undefined), true, 'a new tag');
    assert.equal(await store.replaceTag({ ...first, digest: digest('7') }, undefined), false, 'another first write');
    const moved = { ...first, digest: digest('7'), updatedAt: 2 };
    assert.equal(await store.replaceTag(moved, first), true, 'moved from the tag as read');
    assert.equal(await store.replaceTag({ ...first, updatedAt: 3 }, first), false, 'a write based on the old read loses');
    assert.deepEqual(await store.getTag('refresh', 'v1'), { ...moved, bytes: undefined });
    assert.equal(await store.replaceTag({ ...moved, updatedAt: 4 }, { digest: digest('7'), updatedAt: 1 }), false, 'same digest, another updatedAt');
    assert.equal(await store.collect({ kind: 'tag', repository: 'refresh', tag: 'v1', digest: moved.digest, updatedAt: moved.updatedAt }), true);
    assert.equal(await store.replaceTag({ ...moved, updatedAt: 5 }, moved), false, 'a deleted tag stays deleted');
    assert.equal(await store.getTag('refresh', 'v1'), undefined);
  });

  test('retention rules, and tags collected only while unchanged', async () => {
    await store.putRetentionRule({ id: 'r1', pattern: 'team/*', tags: 'v*', keepLast: 3 });
    await store.putRetentionRule({ id: 'r2', pattern: '*', tags: '*', untaggedDays: 7 });
    assert.deepEqual(await store.listRetentionRules(), [
      { id: 'r1', pattern: 'team/*', tags: 'v*', keepLast: 3 },
      { id: 'r2', pattern: '*', tags: '*', untaggedDays: 7 },
    ]);
    assert.equal(await store.deleteRetentionRule('r2'), true);
    assert.equal(await store.deleteRetentionRule('r2'), false);
    const tag = { repository: 'ret', tag: 'v1', digest: digest('3'), mediaType: 'x/y', size: 1, updatedAt: 10 };
    await store.putTag(tag);
    assert.equal(await store.collect({ kind: 'tag', repository: 'ret', tag: 'v1', digest: digest('3'), updatedAt: 9 }), false, 're-pushed since');
    assert.equal(await store.collect({ kind: 'tag', repository: 'ret', tag: 'v1', digest: digest('2'), updatedAt: 10 }), false, 'moved since');
    assert.equal(await store.collect({ kind: 'tag', repository: 'ret', tag: 'v1', digest: digest('3'), updatedAt: 10 }), true);
    assert.equal(await store.getTag('ret', 'v1'), undefined);
  });

  test('cache rules, and upstream fetch claims: one holder at a time, however many ask at once', async () => {
    await store.putCacheRule({ prefix: 'hub', upstream: 'https://registry-1.docker.io', ttlSeconds: 300, createdAt: 1 });
    await store.putCacheRule({ prefix: 'ghcr', upstream: 'https://ghcr.io', secret: 'sealed:abc', username: 'me', ttlSeconds: 60, createdAt: 2 });
    assert.deepEqual(await store.listCacheRules(), [
      { prefix: 'ghcr', upstream: 'https://ghcr.io', secret: 'sealed:abc', username: 'me', ttlSeconds: 60, createdAt: 2 },
      { prefix: 'hub', upstream: 'https://registry-1.docker.io', ttlSeconds: 300, createdAt: 1 },
    ]);
    assert.equal(await store.deleteCacheRule('ghcr'), true);
    assert.equal(await store.deleteCacheRule('ghcr'), false);

    const now = Date.now();
    const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => store.claimFetch(digest('f'), `owner-${i}`, now, now + 60_000)));
    assert.equal(claims.filter(Boolean).length, 1);
    const holder = `owner-${claims.indexOf(true)}`;
    assert.equal(await store.claimFetch(digest('f'), holder, now, now + 60_000), true, 'the holder may renew');
    await store.releaseFetch(digest('f'), 'someone-else');
    assert.equal(await store.claimFetch(digest('f'), 'late', now, now + 60_000), false, 'only the holder releases');
    await store.releaseFetch(digest('f'), holder);
    assert.equal(await store.claimFetch(digest('f'), 'late', now, now + 1), true);
    assert.equal(await store.claimFetch(digest('f'), 'later', now + 2, now + 60_000), true, 'an expired claim is taken over');
  });

  test('login attempts: claimed atomically, at most max per window and source, however many arrive at once', async () => {
    const now = Date.now();
    const claims = await Promise.all(Array.from({ length: 20 }, () => store.claimLoginAttempt('carol', '192.0.2.1', now, 60_000, 5)));
    assert.equal(claims.filter((c) => c.claimed).length, 5, 'exactly max of 20 parallel claims are counted');
    assert.deepEqual(claims.find((c) => !c.claimed), { claimed: false, failures: 0, resetAt: now + 60_000 });
    // A right password gives its claim back; a wrong one keeps it, as a failure.
    await store.releaseLoginAttempt('carol', '192.0.2.1', now + 60_000);
    assert.equal((await store.claimLoginAttempt('carol', '192.0.2.1', now, 60_000, 5)).claimed, true);
    for (let i = 0; i < 5; i++) await store.recordLoginFailure('carol', '192.0.2.1', now + 60_000);
    assert.deepEqual(await store.claimLoginAttempt('carol', '192.0.2.1', now, 60_000, 5), { claimed: false, failures: 5, resetAt: now + 60_000 });
    // Another source, and the next window, count on their own.
    assert.equal((await store.claimLoginAttempt('carol', '192.0.2.2', now, 60_000, 5)).claimed, true);
    assert.deepEqual(await store.claimLoginAttempt('carol', '192.0.2.1', now + 60_000, 60_000, 5), { claimed: true, resetAt: now + 120_000 });
    // A claim of an ended window changes nothing in the new one.
    await store.recordLoginFailure('carol', '192.0.2.1', now + 60_000);
    assert.equal(await store.clearLoginFailures('carol'), 2, 'unlock forgets every source');
    assert.deepEqual(await store.claimLoginAttempt('carol', '192.0.2.1', now, 60_000, 5), { claimed: true, resetAt: now + 60_000 });
  });
}
