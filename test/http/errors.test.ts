/**
 * Bad inputs: each answered with the exact status and an OCI error body
 * `{"errors":[{"code","message","detail"}]}` whose code is one of the spec's table, never a
 * 5xx or a stack trace; and after each, a follow-up request shows that nothing half-written
 * became visible (or that the upload session it hit is unchanged).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import {
  absentDigest,
  ANY_SPEC_CODE,
  Api,
  bytesOf,
  errorEntries,
  expectError,
  expectHeadStatus,
  expectSession,
  imageManifest,
  MediaTypes,
  MiB,
  randomBlob,
  raw,
  sha256,
  uniqueRepo,
  type PushedImage,
} from './helpers.js';

let stack: TestRegistry;
let api: Api;
/** A repository with one tagged image, for requests that need existing content. */
const REPO = 'errors/base';
let image: PushedImage;

before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
  image = await api.pushImage(REPO, 'v1');
});
after(() => stack.stop());

async function catalog(): Promise<string[]> {
  const response = await api.get('/v2/_catalog');
  assert.equal(response.status, 200);
  return ((await response.json()) as { repositories: string[] }).repositories;
}

async function tags(repo = REPO): Promise<string[]> {
  const response = await api.get(`/v2/${repo}/tags/list`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { tags: string[] }).tags;
}

/** A session of `repo` with `bytes` already received (Content-Range chunk); returns its location. */
async function sessionWith(repo: string, bytes: Buffer): Promise<string> {
  const { location } = await api.startUpload(repo);
  if (bytes.length === 0) return location;
  const response = await api.patch(location, bytes, [0, bytes.length - 1]);
  assert.equal(response.status, 202, await response.clone().text());
  return expectSession(response, repo, bytes.length).location;
}

/** Asserts that the session at `location` of `repo` is alive with `offset` bytes. */
async function expectOffset(repo: string, location: string, offset: number): Promise<void> {
  const status = await api.get(location);
  assert.equal(status.status, 204, `the session survives (${status.status})`);
  expectSession(status, repo, offset);
}

// ---- repository names ----

test('traversal in names: a/../b, %2e%2e and a/%2e%2e/b → 400 NAME_INVALID; nothing created', async () => {
  const before = await catalog();
  const paths = [
    '/v2/a/../b/tags/list',
    '/v2/%2e%2e/tags/list',
    '/v2/a/%2e%2e/b/tags/list',
    '/v2/a/%2E%2E/b/manifests/latest',
    '/v2/a%2f..%2fb/tags/list',
    '/v2/../errors/base/tags/list',
    `/v2/errors/base/../../x/manifests/${image.digest}`,
  ];
  for (const path of paths) await expectError(await raw(stack.url, 'GET', path), 400, 'NAME_INVALID', path);
  for (const path of ['/v2/a/../b/blobs/uploads/', '/v2/a/%2e%2e/b/blobs/uploads/', '/v2/%2e%2e/blobs/uploads/']) {
    await expectError(await raw(stack.url, 'POST', path, {}, Buffer.alloc(0)), 400, 'NAME_INVALID', `POST ${path}`);
  }
  await expectError(await raw(stack.url, 'PUT', '/v2/a/%2e%2e/b/manifests/latest', { 'Content-Type': MediaTypes.ociManifest }, image.bytes), 400, 'NAME_INVALID', 'PUT manifest');
  assert.deepEqual(await catalog(), before, 'no repository appeared');
});

test('upper-case names → 400 NAME_INVALID; nothing created', async () => {
  const before = await catalog();
  await expectError(await api.get('/v2/Errors/Base/tags/list'), 400, 'NAME_INVALID', 'GET tags');
  await expectError(await api.fetch('/v2/UPPER/blobs/uploads/', { method: 'POST' }), 400, 'NAME_INVALID', 'POST upload');
  await expectError((await api.putManifest('Upper/case', 'v1', image.bytes, MediaTypes.ociManifest)).response, 400, 'NAME_INVALID', 'PUT manifest');
  assert.deepEqual(await catalog(), before);
});

test('empty path components and bad separators → 400 NAME_INVALID', async () => {
  for (const name of ['a//b', 'a/', 'a/b/', 'a..b', 'a.-b', '-a', 'a_', 'a___b', '.a', 'a/.b', 'a%20b', 'a:b', 'a@b']) {
    await expectError(await raw(stack.url, 'GET', `/v2/${name}/tags/list`), 400, 'NAME_INVALID', name);
  }
  await expectError(await raw(stack.url, 'POST', '/v2/a//b/blobs/uploads/', {}, Buffer.alloc(0)), 400, 'NAME_INVALID', 'POST a//b');
});

test('an overlong name (256 characters) → 400 NAME_INVALID; 255 characters are accepted', async () => {
  const long = (n: number) => `${'a'.repeat(100)}/${'b'.repeat(100)}/${'c'.repeat(n - 202)}`;
  assert.equal(long(256).length, 256);
  await expectError(await api.fetch(`/v2/${long(256)}/blobs/uploads/`, { method: 'POST' }), 400, 'NAME_INVALID', 'POST 256');
  await expectError(await api.get(`/v2/${long(256)}/tags/list`), 400, 'NAME_INVALID', 'tags 256');
  await expectError(await api.get(`/v2/${'x'.repeat(5000)}/tags/list`), 400, 'NAME_INVALID', 'tags 5000');
  const ok = long(255);
  const digest = await api.pushBlob(ok, randomBlob(10));
  assert.equal((await api.head(`/v2/${ok}/blobs/${digest}`)).status, 200, 'a 255-character name works');
});

test('a path that is not valid percent-encoding → 400 NAME_INVALID', async () => {
  await expectError(await raw(stack.url, 'GET', '/v2/a%zz/tags/list'), 400, 'NAME_INVALID', '%zz');
  await expectError(await raw(stack.url, 'GET', '/v2/a%/tags/list'), 400, 'NAME_INVALID', 'lone %');
});

// ---- digests ----

test('malformed digests → 400 DIGEST_INVALID (blob HEAD/GET/DELETE, POST ?digest=, manifest reference)', async () => {
  const malformed = ['sha256:xyz', 'sha256', 'sha256:', ':abc', 'notadigest', `SHA256:${'a'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(64)}:x`];
  for (const digest of malformed) {
    const path = `/v2/${REPO}/blobs/${encodeURIComponent(digest)}`;
    await expectError(await api.get(path), 400, 'DIGEST_INVALID', `GET blob ${digest}`);
    await expectHeadStatus(await api.head(path), 400, `HEAD blob ${digest}`);
    await expectError(await api.delete(path), 400, 'DIGEST_INVALID', `DELETE blob ${digest}`);
  }
  await expectError(await api.fetch(`/v2/${REPO}/blobs/uploads/?digest=sha256:xyz`, { method: 'POST', body: randomBlob(5) }), 400, 'DIGEST_INVALID', 'POST ?digest=');
  await expectError(await api.fetch(`/v2/${REPO}/blobs/uploads/?digest=`, { method: 'POST', body: randomBlob(5) }), 400, 'DIGEST_INVALID', 'POST ?digest= (empty)');
  await expectError(await api.get(`/v2/${REPO}/manifests/sha256:xyz`), 400, 'DIGEST_INVALID', 'GET manifest');
  await expectError((await api.putManifest(REPO, 'sha256:xyz', image.bytes, MediaTypes.ociManifest)).response, 400, 'DIGEST_INVALID', 'PUT manifest');
  await expectError(await api.delete(`/v2/${REPO}/manifests/sha256:xyz`), 400, 'DIGEST_INVALID', 'DELETE manifest');
});

test('digests of an unknown algorithm (md5:…) → 400 DIGEST_INVALID; nothing stored', async () => {
  const bytes = randomBlob(16);
  const md5 = `md5:${'0123456789abcdef'.repeat(2)}`;
  await expectError(await api.get(`/v2/${REPO}/blobs/${md5}`), 400, 'DIGEST_INVALID', 'GET blob');
  await expectHeadStatus(await api.head(`/v2/${REPO}/blobs/${md5}`), 400, 'HEAD blob');
  await expectError(await api.fetch(`/v2/${REPO}/blobs/uploads/?digest=${md5}`, { method: 'POST', body: bytes }), 400, 'DIGEST_INVALID', 'POST ?digest=md5');
  const { location } = await api.startUpload(REPO);
  await expectError(await api.put(location, md5, bytes), 400, 'DIGEST_INVALID', 'PUT ?digest=md5');
  await expectOffset(REPO, location, 0);
  await expectError(await api.get(`/v2/${REPO}/manifests/${md5}`), 400, 'DIGEST_INVALID', 'GET manifest');
  await expectError((await api.putManifest(REPO, md5, image.bytes, MediaTypes.ociManifest)).response, 400, 'DIGEST_INVALID', 'PUT manifest');
  await expectHeadStatus(await api.head(`/v2/${REPO}/blobs/${sha256(bytes)}`), 404, 'the bytes are not stored');
});

test('sha256 digests of the wrong length → 400 DIGEST_INVALID', async () => {
  for (const hex of ['a'.repeat(63), 'a'.repeat(65), 'a'.repeat(128), 'a'.repeat(10_000)]) {
    await expectError(await api.get(`/v2/${REPO}/blobs/sha256:${hex}`), 400, 'DIGEST_INVALID', `${hex.length} hex`);
    await expectError(await api.get(`/v2/${REPO}/manifests/sha256:${hex}`), 400, 'DIGEST_INVALID', `manifest, ${hex.length} hex`);
  }
  await expectError(await api.get(`/v2/${REPO}/blobs/sha512:${'a'.repeat(64)}`), 400, 'DIGEST_INVALID', 'sha512 with 64 hex');
});

// ---- Content-Range of chunks ----

test('a chunk that starts beyond the offset (gap) → 416 with Range and Location; the session is unchanged and still usable', async () => {
  const repo = uniqueRepo('err');
  const first = randomBlob(1000);
  const second = randomBlob(500);
  const location = await sessionWith(repo, first);
  const response = await api.patch(location, second, [1001, 1500]);
  assert.equal(response.headers.get('range'), '0-999', '416 reports the current Range');
  assert.ok(response.headers.get('location'), '416 carries the Location');
  await expectError(response, 416, 'BLOB_UPLOAD_INVALID', 'gap');
  await expectOffset(repo, location, 1000);
  const good = await api.patch(location, second, [1000, 1499]);
  assert.equal(good.status, 202);
  const whole = Buffer.concat([first, second]);
  assert.equal((await api.put(expectSession(good, repo, 1500).location, sha256(whole))).status, 201);
  const { content } = await api.getBlob(repo, sha256(whole));
  assert.deepEqual(await bytesOf(content), whole, 'the refused chunk left no trace in the blob');
});

test('a chunk that starts before the offset (overlap) → 416; the session is unchanged', async () => {
  const repo = uniqueRepo('err');
  const first = randomBlob(1000);
  const location = await sessionWith(repo, first);
  await expectError(await api.patch(location, randomBlob(500), [500, 999]), 416, 'BLOB_UPLOAD_INVALID', 'overlap');
  await expectError(await api.patch(location, randomBlob(1000), [0, 999]), 416, 'BLOB_UPLOAD_INVALID', 'resend of the first chunk');
  await expectOffset(repo, location, 1000);
  // The same rule holds for the closing PUT.
  const last = randomBlob(10);
  await expectError(await api.put(location, sha256(Buffer.concat([first, last])), last, [990, 999]), 416, 'BLOB_UPLOAD_INVALID', 'PUT overlap');
  await expectOffset(repo, location, 1000);
});

test('a chunk after a gap in the closing PUT → 416; the session stays and no blob appears', async () => {
  const repo = uniqueRepo('err');
  const first = randomBlob(100);
  const last = randomBlob(100);
  const location = await sessionWith(repo, first);
  const digest = sha256(Buffer.concat([first, last]));
  await expectError(await api.put(location, digest, last, [150, 249]), 416, 'BLOB_UPLOAD_INVALID', 'PUT gap');
  await expectOffset(repo, location, 100);
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${digest}`), 404, 'no blob');
});

test('a garbage Content-Range → 416; the session is unchanged', async () => {
  const repo = uniqueRepo('err');
  const location = await sessionWith(repo, randomBlob(10));
  for (const value of ['garbage', '10-', '-10', '10', 'bytes=a-b', '10-20-30', '0x0a-0x10', '1e1-2e1', ' ', '10 - 19']) {
    const response = await api.fetch(location, { method: 'PATCH', headers: { 'Content-Range': value, 'Content-Type': 'application/octet-stream' }, body: randomBlob(10) });
    await expectError(response, 416, 'BLOB_UPLOAD_INVALID', `Content-Range ${JSON.stringify(value)}`);
  }
  await expectOffset(repo, location, 10);
});

test('a Content-Range whose end is before its start → 416; the session is unchanged', async () => {
  const repo = uniqueRepo('err');
  const location = await sessionWith(repo, randomBlob(10));
  await expectError(await api.patch(location, randomBlob(1), [20, 10]), 416, 'BLOB_UPLOAD_INVALID', '20-10');
  await expectError(await api.patch(location, randomBlob(1), [10, 9]), 416, 'BLOB_UPLOAD_INVALID', '10-9');
  await expectOffset(repo, location, 10);
});

test('a Content-Range that disagrees with the body length → 400 SIZE_INVALID; the session is unchanged', async () => {
  const repo = uniqueRepo('err');
  const location = await sessionWith(repo, randomBlob(10));
  await expectError(await api.patch(location, randomBlob(50), [10, 109]), 400, 'SIZE_INVALID', 'announced 100, sent 50');
  await expectError(await api.patch(location, randomBlob(50), [10, 19]), 400, 'SIZE_INVALID', 'announced 10, sent 50');
  await expectOffset(repo, location, 10);
});

// ---- digest verification ----

test('a wrong digest on the closing PUT → 400 DIGEST_INVALID; neither digest is visible and the session is gone', async () => {
  const repo = uniqueRepo('err');
  const bytes = randomBlob(9 * MiB); // with a full S3 part, so a multipart upload exists
  const location = await sessionWith(repo, bytes.subarray(0, 8 * MiB + 1));
  const claimed = absentDigest();
  await expectError(await api.put(location, claimed, bytes.subarray(8 * MiB + 1), [8 * MiB + 1, bytes.length - 1]), 400, 'DIGEST_INVALID', 'wrong digest');
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${claimed}`), 404, 'claimed digest');
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${sha256(bytes)}`), 404, 'real digest');
  await expectError(await api.get(`/v2/${repo}/blobs/${sha256(bytes)}`), 404, 'BLOB_UNKNOWN', 'GET real digest');
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'the session is gone');
  await expectError(await api.put(location, sha256(bytes)), 404, 'BLOB_UPLOAD_UNKNOWN', 'a retry with the right digest finds no session');
});

test('a wrong digest on a monolithic POST or POST+PUT → 400 DIGEST_INVALID; nothing visible, no repository created', async () => {
  const repo = uniqueRepo('err');
  const bytes = randomBlob(3000);
  const claimed = absentDigest();
  await expectError(await api.fetch(`/v2/${repo}/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: bytes }), 400, 'DIGEST_INVALID', 'POST');
  const { location } = await api.startUpload(repo);
  await expectError(await api.put(location, claimed, bytes), 400, 'DIGEST_INVALID', 'PUT');
  for (const digest of [claimed, sha256(bytes)]) await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${digest}`), 404, digest);
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'session gone');
  await expectError(await api.get(`/v2/${repo}/tags/list`), 404, 'NAME_UNKNOWN', 'repository not created');
  assert.ok(!(await catalog()).includes(repo));
});

test('a wrong digest on a manifest PUT by digest → 400 DIGEST_INVALID; neither digest is visible', async () => {
  const repo = uniqueRepo('err');
  const { config, layer } = image;
  await api.pushBlob(repo, Buffer.from('{}'));
  const mounted = await api.fetch(`/v2/${repo}/blobs/uploads/?mount=${layer.digest}&from=${REPO}`, { method: 'POST' });
  assert.equal(mounted.status, 201);
  assert.equal((await api.fetch(`/v2/${repo}/blobs/uploads/?mount=${config.digest}&from=${REPO}`, { method: 'POST' })).status, 201);
  const bytes = Buffer.from(JSON.stringify(imageManifest(config, [layer])));
  const claimed = absentDigest();
  await expectError((await api.putManifest(repo, claimed, bytes, MediaTypes.ociManifest)).response, 400, 'DIGEST_INVALID', 'manifest digest');
  for (const digest of [claimed, sha256(bytes)]) await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${digest}`), 404, digest);
});

// ---- manifest bodies ----

test('invalid JSON, JSON arrays, numbers, strings and null as manifests → 400 MANIFEST_INVALID; nothing tagged', async () => {
  const bodies = ['{', '{"schemaVersion": 2,', 'not json', '', '[]', `[${image.bytes.toString()}]`, '42', '"manifest"', 'null', 'true', '\u0000\u0001'];
  for (const body of bodies) {
    for (const contentType of [MediaTypes.ociManifest, undefined]) {
      const { response } = await api.putManifest(REPO, 'bad-json', Buffer.from(body), contentType);
      await expectError(response, 400, 'MANIFEST_INVALID', `${JSON.stringify(body.slice(0, 20))} as ${contentType}`);
    }
  }
  await expectHeadStatus(await api.head(`/v2/${REPO}/manifests/bad-json`), 404, 'nothing tagged');
  assert.deepEqual(await tags(), ['v1']);
});

test('manifests of the wrong shape → 400 MANIFEST_INVALID', async () => {
  const { config, layer } = image;
  const good = imageManifest(config, [layer]);
  const shapes: Record<string, unknown>[] = [
    { ...good, schemaVersion: 3 },
    { ...good, schemaVersion: '2' },
    { ...good, config: undefined },
    { ...good, layers: 'none' },
    { ...good, layers: [{ ...layer, digest: 'sha256:xyz' }] },
    { ...good, layers: [{ ...layer, size: -1 }] },
    { ...good, layers: [{ ...layer, size: 1.5 }] },
    { ...good, config: { ...good.config as object, mediaType: 'not a media type' } },
    { ...good, annotations: { key: 42 } },
  ];
  for (const shape of shapes) {
    const { response } = await api.putManifest(REPO, 'bad-shape', Buffer.from(JSON.stringify(shape)), MediaTypes.ociManifest);
    await expectError(response, 400, 'MANIFEST_INVALID', JSON.stringify(shape).slice(0, 120));
  }
  const { response } = await api.putManifest(REPO, 'bad-type', good, 'text/plain');
  await expectError(response, 400, 'MANIFEST_INVALID', 'Content-Type text/plain');
  assert.deepEqual(await tags(), ['v1']);
});

// ---- pagination ----

test('a manifest with a duplicate JSON key (top level, in a descriptor, in annotations) → 400 MANIFEST_INVALID; nothing stored', async () => {
  const text = image.bytes.toString('utf8');
  assert.ok(text.startsWith('{"schemaVersion":2,'), text.slice(0, 40));
  const duplicates = [
    text.replace('{"schemaVersion":2,', '{"schemaVersion":2,"schemaVersion":2,'),
    // Last key wins in JSON.parse: this one would name a layer nothing has checked.
    text.replace(`"digest":"${image.layer.digest}"`, `"digest":"${absentDigest()}","digest":"${image.layer.digest}"`),
    text.replace(/}$/, ',"annotations":{"a":"1","\\u0061":"2"}}'),
  ];
  for (const duplicate of duplicates) {
    const { response, digest } = await api.putManifest(REPO, 'duplicate', Buffer.from(duplicate), MediaTypes.ociManifest);
    const [entry] = await expectError(response, 400, 'MANIFEST_INVALID', duplicate.slice(0, 120));
    assert.match(entry.message, /duplicate key/);
    await expectHeadStatus(await api.head(`/v2/${REPO}/manifests/${digest}`), 404, 'not stored by digest');
  }
  assert.deepEqual(await tags(), ['v1']);
});

test('negative n → 400; nothing else changes', async () => {
  for (const path of [`/v2/${REPO}/tags/list?n=-1`, '/v2/_catalog?n=-1', `/v2/${REPO}/tags/list?n=-0`]) {
    await expectError(await api.get(path), 400, ANY_SPEC_CODE, path);
  }
  assert.deepEqual(await tags(), ['v1']);
});

test('non-numeric n → 400', async () => {
  for (const n of ['abc', '1.5', '1e3', '0x10', '', ' 5', '5 ', '+5', 'NaN', 'Infinity']) {
    await expectError(await api.get(`/v2/${REPO}/tags/list?n=${encodeURIComponent(n)}`), 400, ANY_SPEC_CODE, `tags n=${JSON.stringify(n)}`);
    await expectError(await api.get(`/v2/_catalog?n=${encodeURIComponent(n)}`), 400, ANY_SPEC_CODE, `catalog n=${JSON.stringify(n)}`);
  }
});

test('a huge n is clamped: 200, not an error', async () => {
  for (const n of ['1000000', '99999999999999999999', `1${'0'.repeat(40)}`]) {
    const response = await api.get(`/v2/${REPO}/tags/list?n=${n}`);
    assert.equal(response.status, 200, `tags n=${n}: ${await response.clone().text()}`);
    assert.deepEqual(((await response.json()) as { tags: string[] }).tags, ['v1']);
    const listing = await api.get(`/v2/_catalog?n=${n}`);
    assert.equal(listing.status, 200, `catalog n=${n}: ${await listing.clone().text()}`);
  }
});

test('a `last` that is not a tag (tags) or not a repository name (catalog) → 400', async () => {
  for (const last of ['-bad', 'a'.repeat(129), 'has space', 'a/b', '']) {
    await expectError(await api.get(`/v2/${REPO}/tags/list?last=${encodeURIComponent(last)}`), 400, ANY_SPEC_CODE, `tags last=${JSON.stringify(last)}`);
  }
  for (const last of ['UPPER', 'a//b', '../x', '']) {
    await expectError(await api.get(`/v2/_catalog?last=${encodeURIComponent(last)}`), 400, ANY_SPEC_CODE, `catalog last=${JSON.stringify(last)}`);
  }
});

// ---- upload locations ----

test('a stale upload location (finished session) → 404 BLOB_UPLOAD_UNKNOWN to GET, PATCH, PUT and DELETE', async () => {
  const repo = uniqueRepo('err');
  const bytes = randomBlob(100);
  const { location } = await api.startUpload(repo);
  assert.equal((await api.put(location, sha256(bytes), bytes)).status, 201);
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET');
  await expectError(await api.patch(location, randomBlob(10), [100, 109]), 404, 'BLOB_UPLOAD_UNKNOWN', 'PATCH');
  await expectError(await api.put(location, sha256(bytes), bytes), 404, 'BLOB_UPLOAD_UNKNOWN', 'PUT');
  await expectError(await api.delete(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'DELETE');
  const { content } = await api.getBlob(repo, sha256(bytes));
  assert.deepEqual(await bytesOf(content), bytes, 'the finished blob is untouched');
});

test('an unknown (well-formed) upload UUID → 404 BLOB_UPLOAD_UNKNOWN', async () => {
  const location = `/v2/${REPO}/blobs/uploads/${randomUUID()}`;
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET');
  await expectError(await api.patch(location, randomBlob(10)), 404, 'BLOB_UPLOAD_UNKNOWN', 'PATCH');
  await expectError(await api.put(location, absentDigest(), randomBlob(10)), 404, 'BLOB_UPLOAD_UNKNOWN', 'PUT');
  await expectError(await api.delete(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'DELETE');
});

test('a non-UUID upload location → 404 BLOB_UPLOAD_UNKNOWN', async () => {
  for (const id of ['abc', '123', 'x'.repeat(1000), '..', `${randomUUID()}x`, randomUUID().toUpperCase(), '%2e%2e']) {
    const location = `/v2/${REPO}/blobs/uploads/${id}`;
    await expectError(await raw(stack.url, 'GET', location), 404, 'BLOB_UPLOAD_UNKNOWN', `GET ${id.slice(0, 40)}`);
    await expectError(await raw(stack.url, 'PATCH', location, {}, randomBlob(5)), 404, 'BLOB_UPLOAD_UNKNOWN', `PATCH ${id.slice(0, 40)}`);
  }
});

test('the upload URL without an id (/blobs/uploads, no trailing slash) → 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT, DELETE', async () => {
  const path = `/v2/${REPO}/blobs/uploads`;
  const failures: string[] = [];
  const check = (what: string, response: Promise<Response>) =>
    response.then((r) => expectError(r, 404, 'BLOB_UPLOAD_UNKNOWN', what)).catch((error: Error) => failures.push(error.message));
  await check('GET', api.get(path));
  await check('PATCH', api.patch(path, randomBlob(5)));
  await check('PUT ?digest=', api.put(path, absentDigest(), randomBlob(5)));
  await check('DELETE', api.delete(path));
  const head = await api.head(path);
  if (head.status !== 404) failures.push(`HEAD: ${head.status}`);
  assert.deepEqual(failures, []);
  // The same with the trailing slash (an empty id).
  await expectError(await api.get(`${path}/`), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET with slash');
  await expectError(await api.patch(`${path}/`, randomBlob(5)), 404, 'BLOB_UPLOAD_UNKNOWN', 'PATCH with slash');
});

test('the upload location of another repository → 404 BLOB_UPLOAD_UNKNOWN; the session stays usable in its own', async () => {
  const own = uniqueRepo('err');
  const other = uniqueRepo('err');
  const first = randomBlob(100);
  const location = await sessionWith(own, first);
  const foreign = location.replace(`/v2/${own}/`, `/v2/${other}/`);
  assert.notEqual(foreign, location);
  await expectError(await api.get(foreign), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET');
  await expectError(await api.patch(foreign, randomBlob(10), [100, 109]), 404, 'BLOB_UPLOAD_UNKNOWN', 'PATCH');
  await expectError(await api.put(foreign, sha256(first)), 404, 'BLOB_UPLOAD_UNKNOWN', 'PUT');
  await expectError(await api.delete(foreign), 404, 'BLOB_UPLOAD_UNKNOWN', 'DELETE');
  await expectHeadStatus(await api.head(`/v2/${other}/blobs/${sha256(first)}`), 404, 'nothing in the other repository');
  await expectOffset(own, location, 100);
  assert.equal((await api.put(location, sha256(first))).status, 201, 'the session still completes in its own repository');
});

test('PUT without ?digest= → 400 DIGEST_INVALID; the session and its offset are unchanged and the body was not appended', async () => {
  const repo = uniqueRepo('err');
  const first = randomBlob(100);
  const location = await sessionWith(repo, first);
  await expectError(await api.put(location, undefined, randomBlob(50)), 400, 'DIGEST_INVALID', 'no digest, with body');
  await expectError(await api.put(location, undefined), 400, 'DIGEST_INVALID', 'no digest, no body');
  await expectOffset(repo, location, 100);
  assert.equal((await api.put(location, sha256(first))).status, 201);
  const { content } = await api.getBlob(repo, sha256(first));
  assert.deepEqual(await bytesOf(content), first);
});

// ---- routes and methods ----

test('unknown endpoints → 404 with an OCI error body; paths outside /v2, /v1 and /token are the web interface', async () => {
  for (const [path, status] of [['/', 200], ['/v3/', 404], ['/nothing', 404]] as const) {
    const page = await raw(stack.url, 'GET', path);
    assert.equal(page.status, status, path);
    assert.match(String(page.headers['content-type']), /^text\/html/, path);
  }
  for (const path of ['/v1/', '/v2/errors/base', '/v2/errors/base/', '/v2/errors/base/unknown', '/v2/errors/base/blobs/', '/v2/errors/base/manifests/', '/v2/errors/base/tags', '/v2/errors/base/tags/list/extra', '/v2//tags/list', '/v2/_catalog/x']) {
    await expectError(await raw(stack.url, 'GET', path), 404, ANY_SPEC_CODE, path);
  }
});

test('wrong methods → 405 UNSUPPORTED with an Allow header (RFC 9110 §15.5.6)', async () => {
  const cases: [string, string][] = [
    ['POST', '/v2/'],
    ['DELETE', '/v2/'],
    ['PUT', '/v2/_catalog'],
    ['DELETE', '/v2/_catalog'],
    ['POST', `/v2/${REPO}/tags/list`],
    ['DELETE', `/v2/${REPO}/tags/list`],
    ['POST', `/v2/${REPO}/manifests/v1`],
    ['PATCH', `/v2/${REPO}/manifests/v1`],
    ['PUT', `/v2/${REPO}/blobs/${image.layer.digest}`],
    ['POST', `/v2/${REPO}/blobs/${image.layer.digest}`],
    ['PATCH', `/v2/${REPO}/blobs/${image.layer.digest}`],
    ['PUT', `/v2/${REPO}/referrers/${image.digest}`],
    ['DELETE', `/v2/${REPO}/referrers/${image.digest}`],
  ];
  for (const [method, path] of cases) {
    const response = await raw(stack.url, method, path, {}, method === 'DELETE' ? undefined : Buffer.from('x'));
    await expectError(response, 405, 'UNSUPPORTED', `${method} ${path}`);
    const allow = response.headers.allow;
    assert.ok(typeof allow === 'string' && allow.length > 0, `${method} ${path}: 405 carries Allow (RFC 9110 §15.5.6: MUST), got ${JSON.stringify(allow)}`);
    assert.ok(!allow.split(/,\s*/).includes(method), `${method} ${path}: Allow does not list ${method}`);
  }
  // Nothing changed: the blob and the manifest are still there.
  assert.equal((await api.head(`/v2/${REPO}/blobs/${image.layer.digest}`)).status, 200);
  assert.equal((await api.head(`/v2/${REPO}/manifests/v1`)).status, 200);
});

// ---- tags ----

test('PUT with a bad tag → 400; nothing tagged, nothing stored', async () => {
  const repo = uniqueRepo('err');
  await api.pushBlob(repo, Buffer.from('x')); // the repository exists
  const { config, layer } = image;
  for (const blob of [config, layer]) assert.equal((await api.fetch(`/v2/${repo}/blobs/uploads/?mount=${blob.digest}&from=${REPO}`, { method: 'POST' })).status, 201);
  const manifest = Buffer.from(JSON.stringify(imageManifest(config, [layer])));
  for (const tag of ['-bad', '.bad', 'a'.repeat(129), 'with%20space', 'caf%C3%A9', 'a%2Bb', 'a~b']) {
    const response = await raw(stack.url, 'PUT', `/v2/${repo}/manifests/${tag}`, { 'Content-Type': MediaTypes.ociManifest }, manifest);
    await expectError(response, 400, ANY_SPEC_CODE, `tag ${tag.slice(0, 30)}`);
  }
  // The same for the ?tag= parameters of a push by digest (distribution-spec draft).
  const byDigest = await raw(stack.url, 'PUT', `/v2/${repo}/manifests/${sha256(manifest)}?tag=good&tag=-bad`, { 'Content-Type': MediaTypes.ociManifest }, manifest);
  await expectError(byDigest, 400, ANY_SPEC_CODE, '?tag=-bad');
  assert.deepEqual(await tags(repo), []);
  await expectHeadStatus(await api.head(`/v2/${repo}/manifests/${sha256(manifest)}`), 404, 'the manifest of a refused tag is not stored');
});

test('GET, HEAD, DELETE with a bad tag → 404 MANIFEST_UNKNOWN; the repository is unchanged', async () => {
  for (const tag of ['-bad', 'a'.repeat(129), 'a~b']) {
    await expectError(await api.get(`/v2/${REPO}/manifests/${tag}`), 404, 'MANIFEST_UNKNOWN', `GET ${tag.slice(0, 20)}`);
    await expectHeadStatus(await api.head(`/v2/${REPO}/manifests/${tag}`), 404, `HEAD ${tag.slice(0, 20)}`);
    await expectError(await api.delete(`/v2/${REPO}/manifests/${tag}`), 404, 'MANIFEST_UNKNOWN', `DELETE ${tag.slice(0, 20)}`);
  }
  assert.deepEqual(await tags(), ['v1']);
});

test('a 128-character tag is valid', async () => {
  const tag = `T${'a'.repeat(127)}`;
  await api.pushManifest(REPO, tag, image.bytes);
  assert.equal((await api.head(`/v2/${REPO}/manifests/${tag}`)).status, 200);
  assert.equal((await api.delete(`/v2/${REPO}/manifests/${tag}`)).status, 202);
});

// ---- mounts ----

test('a mount with a malformed `mount` or `from` falls back to a new upload session (202), as the spec says a registry SHOULD', async () => {
  const repo = uniqueRepo('err');
  const queries = [
    `mount=sha256:xyz&from=${REPO}`,
    `mount=${image.layer.digest}&from=Bad/Name`,
    `mount=${image.layer.digest}&from=a/../errors/base`,
    'mount=&from=',
  ];
  for (const query of queries) {
    const response = await api.fetch(`/v2/${repo}/blobs/uploads/?${query}`, { method: 'POST', headers: { 'Content-Length': '0' } });
    assert.equal(response.status, 202, `${query}: ${await response.clone().text()}`);
    expectSession(response, repo, 0);
  }
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${image.layer.digest}`), 404, 'nothing mounted');
  // The session is an ordinary one: the blob can be uploaded through it.
  const response = await api.fetch(`/v2/${repo}/blobs/uploads/?mount=sha256:xyz&from=Bad/Name`, { method: 'POST', headers: { 'Content-Length': '0' } });
  const { location } = expectSession(response, repo, 0);
  assert.equal((await api.put(location, image.layer.digest, image.layer.bytes)).status, 201);
});

test('no error answer is a 5xx or a stack trace: a sweep of odd requests', async () => {
  const requests: [string, string, Record<string, string>?, Buffer?][] = [
    ['POST', `/v2/errors/base/blobs/uploads/?mount=&from=`],
    ['POST', `/v2/errors/base/blobs/uploads/?digest=${image.layer.digest}&digest=${image.config.digest}`],
    ['GET', `/v2/errors/base/blobs/${image.layer.digest}`, { Range: 'bytes=5-1' }],
    ['GET', `/v2/errors/base/blobs/${image.layer.digest}`, { Range: 'bytes=0-1,5-6' }],
    ['GET', `/v2/errors/base/blobs/${image.layer.digest}`, { Range: 'bytes=99999999999999999999-' }],
    ['GET', '/v2/errors/base/referrers/sha256:xyz?artifactType='],
    ['PUT', '/v2/errors/base/manifests/x', { 'Content-Type': ';;;' }, Buffer.from('{}')],
    ['PUT', '/v2/errors/base/manifests/x', { 'Content-Type': MediaTypes.ociManifest }, Buffer.from('{"schemaVersion":2,"config":{},"layers":[],"mediaType":{}}')],
    ['PUT', '/v2/errors/base/manifests/x', { 'Content-Type': MediaTypes.ociManifest }, Buffer.from('{"__proto__":{"x":1},"schemaVersion":2}')],
    ['GET', `/v2/errors/base/manifests/${'a'.repeat(10_000)}`],
    ['GET', '/v2/%00/tags/list'],
    ['GET', '/v2/errors/base/tags/list?n=1&n=2&last=a&last=b'],
  ];
  const failures: string[] = [];
  for (const [method, path, headers, body] of requests) {
    const response = await raw(stack.url, method, path, headers ?? {}, body);
    if (response.status >= 500) failures.push(`${method} ${path} ${JSON.stringify(headers ?? {})}: ${response.status} ${response.body.toString().slice(0, 200)}`);
    else if (response.status >= 400 && method !== 'HEAD') {
      await errorEntries(response, `${method} ${path}`).catch((error: Error) => failures.push(error.message));
    }
  }
  assert.deepEqual(failures, [], 'every odd request gets a clean 4xx (or success)');
  assert.deepEqual(await tags(), ['v1']);
});
