/**
 * Tag listing (distribution-spec v1.1 end-8a, end-8b) and the repository catalog
 * (`GET /v2/_catalog`, the reference registry's listing): lexical order, `n`, `last`, `n=0`,
 * `Link: <…>; rel="next"` followed to the end, clamping of huge `n`, unknown repositories.
 * This file owns its registry, so the catalog holds exactly the repositories created here.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import { Api, expectError, nextLink, randomBlob, type PushedImage } from './helpers.js';

let stack: TestRegistry;
let api: Api;

const REPO = 'tags/listing';
/** Pushed in this (non-lexical) order; all lower case, so ASCII and case-insensitive order agree. */
const TAGS = ['v2', 'latest', '1.0', 'v10', 'a-b', 'a.b', 'a_b', 'ab', 'beta', 'v1', '0', 'z'];
const SORTED = [...TAGS].sort();
/** Repositories in this registry: REPO, one with blobs only, and a few more. */
const REPOSITORIES = [REPO, 'blobs-only', 'cat/a', 'cat/b', 'cat/b/c', 'cat.d', 'cat-e', 'cat_f', 'zzz'].sort();

let image: PushedImage;

before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
  image = await api.pushImage(REPO, TAGS[0]);
  for (const tag of TAGS.slice(1)) await api.pushManifest(REPO, tag, image.bytes);
  await api.pushBlob('blobs-only', randomBlob(10));
  for (const repo of REPOSITORIES) if (repo !== REPO && repo !== 'blobs-only') await api.pushImage(repo, 'x');
});
after(() => stack.stop());

interface TagList {
  name: string;
  tags: string[];
}

async function listTags(query = ''): Promise<{ response: Response; body: TagList }> {
  const response = await api.get(`/v2/${REPO}/tags/list${query}`);
  assert.equal(response.status, 200, `tags/list${query}: ${await response.clone().text()}`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await response.json()) as TagList;
  assert.equal(body.name, REPO);
  assert.ok(Array.isArray(body.tags), 'tags is an array');
  return { response, body };
}

/** Follows `Link` from `first` to the end; returns every page's items. */
async function followPages<T>(first: string, items: (body: unknown) => T[], limit: number): Promise<T[][]> {
  const pages: T[][] = [];
  let next: string | undefined = first;
  while (next) {
    assert.ok(pages.length < 50, 'pagination ends');
    const response = await api.get(next);
    assert.equal(response.status, 200, `${next}: ${await response.clone().text()}`);
    const page = items(await response.json());
    assert.ok(page.length <= limit, `a page holds at most n=${limit} items`);
    pages.push(page);
    next = nextLink(response);
    if (next) {
      assert.equal(page.length, limit, 'a page followed by a Link is full');
      const url = new URL(next, stack.url);
      assert.equal(url.searchParams.get('n'), String(limit), 'the Link keeps n');
      assert.equal(url.searchParams.get('last'), page.at(-1), 'the Link continues after the last item');
    }
  }
  return pages;
}

test('GET tags/list returns all tags in lexical order', async () => {
  const { response, body } = await listTags();
  assert.deepEqual(body.tags, SORTED);
  assert.equal(response.headers.get('link'), null, 'no Link when everything fits');
});

test('n limits the page and Link: <…>; rel="next" leads through every page to the end', async () => {
  for (const n of [1, 5, 11]) {
    const { response, body } = await listTags(`?n=${n}`);
    assert.deepEqual(body.tags, SORTED.slice(0, n), `n=${n}`);
    const link = response.headers.get('link');
    assert.ok(link, `n=${n}: a Link header when more tags follow`);
    const pages = await followPages(`/v2/${REPO}/tags/list?n=${n}`, (b) => (b as TagList).tags, n);
    assert.deepEqual(pages.flat(), SORTED, `n=${n}: the pages together are the whole list, in order, without repeats`);
  }
});

test('n equal to the number of tags returns them all, without a Link', async () => {
  const { response, body } = await listTags(`?n=${SORTED.length}`);
  assert.deepEqual(body.tags, SORTED);
  assert.equal(response.headers.get('link'), null);
});

test('n=0 returns an empty list and no Link (spec: MUST)', async () => {
  const { response, body } = await listTags('?n=0');
  assert.deepEqual(body.tags, []);
  assert.equal(response.headers.get('link'), null);
  const withLast = await listTags('?n=0&last=a-b');
  assert.deepEqual(withLast.body.tags, []);
  assert.equal(withLast.response.headers.get('link'), null);
});

test('last returns the tags after it (non-inclusive), with or without n', async () => {
  const after = (tag: string) => SORTED.filter((t) => t > tag);
  assert.deepEqual((await listTags('?last=beta')).body.tags, after('beta'));
  assert.deepEqual((await listTags('?n=3&last=beta')).body.tags, after('beta').slice(0, 3));
  // A `last` that is not itself a tag still positions the listing lexically.
  assert.deepEqual((await listTags('?last=b')).body.tags, after('b'));
  assert.deepEqual((await listTags('?n=2&last=v100')).body.tags, after('v100').slice(0, 2));
  // After the last tag, nothing, and no Link.
  const end = await listTags(`?n=5&last=${SORTED.at(-1)}`);
  assert.deepEqual(end.body.tags, []);
  assert.equal(end.response.headers.get('link'), null);
});

test('a huge n is clamped, still 200 with every tag', async () => {
  for (const n of ['100000', '2147483648', '9007199254740993', '100000000000000000000000']) {
    const { response, body } = await listTags(`?n=${n}`);
    assert.deepEqual(body.tags, SORTED, `n=${n}`);
    assert.equal(response.headers.get('link'), null, `n=${n}`);
  }
});

test('a repository with blobs but no tags lists an empty tag list', async () => {
  const response = await api.get('/v2/blobs-only/tags/list');
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { name: 'blobs-only', tags: [] });
});

test('tags of an unknown repository → 404 NAME_UNKNOWN', async () => {
  await expectError(await api.get('/v2/no/such/repo/tags/list'), 404, 'NAME_UNKNOWN', 'unknown repository');
  await expectError(await api.get('/v2/cat/tags/list'), 404, 'NAME_UNKNOWN', 'a prefix of repositories is no repository');
});

test('deleted tags disappear from the list', async () => {
  await api.pushManifest(REPO, 'temporary', image.bytes);
  assert.ok((await listTags()).body.tags.includes('temporary'));
  assert.equal((await api.delete(`/v2/${REPO}/manifests/temporary`)).status, 202);
  assert.deepEqual((await listTags()).body.tags, SORTED);
});

// ---- catalog ----

async function catalog(query = ''): Promise<{ response: Response; repositories: string[] }> {
  const response = await api.get(`/v2/_catalog${query}`);
  assert.equal(response.status, 200, `_catalog${query}: ${await response.clone().text()}`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await response.json()) as { repositories: string[] };
  assert.ok(Array.isArray(body.repositories));
  return { response, repositories: body.repositories };
}

test('catalog lists every repository in lexical order', async () => {
  const { response, repositories } = await catalog();
  assert.deepEqual(repositories, REPOSITORIES);
  assert.equal(response.headers.get('link'), null);
});

test('catalog: n, Link followed to the end, last and n=0', async () => {
  for (const n of [1, 2, 4]) {
    const { response, repositories } = await catalog(`?n=${n}`);
    assert.deepEqual(repositories, REPOSITORIES.slice(0, n));
    assert.ok(response.headers.get('link'), `n=${n}: Link`);
    const pages = await followPages(`/v2/_catalog?n=${n}`, (b) => (b as { repositories: string[] }).repositories, n);
    assert.deepEqual(pages.flat(), REPOSITORIES, `n=${n}: all pages together`);
  }
  assert.deepEqual((await catalog('?last=cat/b')).repositories, REPOSITORIES.filter((r) => r > 'cat/b'));
  assert.deepEqual((await catalog('?n=2&last=cat/b')).repositories, REPOSITORIES.filter((r) => r > 'cat/b').slice(0, 2));
  const zero = await catalog('?n=0');
  assert.deepEqual(zero.repositories, []);
  assert.equal(zero.response.headers.get('link'), null);
});

test('catalog: a huge n is clamped, still 200 with every repository', async () => {
  for (const n of ['100000', '9007199254740993', '100000000000000000000000']) {
    const { response, repositories } = await catalog(`?n=${n}`);
    assert.deepEqual(repositories, REPOSITORIES, `n=${n}`);
    assert.equal(response.headers.get('link'), null, `n=${n}`);
  }
});

test('a failed push creates no repository in the catalog', async () => {
  const bytes = randomBlob(100);
  const wrong = await api.fetch(`/v2/failed/push/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, { method: 'POST', body: bytes });
  await expectError(wrong, 400, 'DIGEST_INVALID');
  const { location } = await api.startUpload('abandoned/upload');
  assert.equal((await api.delete(location)).status, 204);
  const manifest = await api.putManifest('failed/manifest', 'x', { ...image.manifest });
  await expectError(manifest.response, 400, 'MANIFEST_BLOB_UNKNOWN');
  assert.deepEqual((await catalog()).repositories, REPOSITORIES);
  for (const repo of ['failed/push', 'abandoned/upload', 'failed/manifest']) {
    await expectError(await api.get(`/v2/${repo}/tags/list`), 404, 'NAME_UNKNOWN', repo);
  }
});
