/**
 * Blobs and blob uploads (distribution-spec v1.1 end-2, end-4a, end-4b, end-5, end-6, end-10,
 * end-11, end-13): every way of pushing a blob, reading it back whole and in ranges, deleting
 * it, cancelling sessions, cross-repository mounts and per-repository isolation.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
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
  MiB,
  randomBlob,
  sha256,
  sha512,
  streamOf,
  uniqueRepo,
} from './helpers.js';

let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
});
after(() => stack.stop());

/** Asserts that the session at `location` of `repo` is alive with `offset` bytes. */
async function expectOffset(repo: string, location: string, offset: number): Promise<void> {
  const status = await api.get(location);
  assert.equal(status.status, 204, `the session is alive (${status.status})`);
  expectSession(status, repo, offset);
}

/** Asserts that `repo` serves exactly `bytes` under their digest (HEAD and GET). */
async function expectBlob(repo: string, bytes: Buffer): Promise<void> {
  const digest = sha256(bytes);
  const head = await api.head(`/v2/${repo}/blobs/${digest}`);
  assert.equal(head.status, 200, `HEAD ${repo}@${digest}`);
  assert.equal(head.headers.get('content-length'), String(bytes.length), 'HEAD Content-Length is the blob size');
  assert.equal(head.headers.get('docker-content-digest'), digest);
  assert.equal(await head.text(), '', 'HEAD has no body');
  const { registry, content } = await api.getBlob(repo, digest);
  assert.ok(registry.status === 200 || registry.status === 307, `GET blob answers 200 (or 307), got ${registry.status}`);
  assert.equal(registry.headers.get('docker-content-digest'), digest);
  assert.equal(content.status, 200);
  const body = await bytesOf(content);
  assert.equal(body.length, bytes.length, 'GET returns the whole blob');
  assert.equal(sha256(body), digest, 'GET returns the bytes that were pushed');
  if (!api.redirects) assert.equal(content.headers.get('content-length'), String(bytes.length));
}

test('GET /v2/ answers 200 with a JSON body and the API version header', async () => {
  for (const path of ['/v2/', '/v2']) {
    const response = await api.get(path);
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const body: unknown = await response.json();
    assert.ok(typeof body === 'object' && body !== null && !Array.isArray(body), 'the body is a JSON object');
  }
  const head = await api.head('/v2/');
  assert.equal(head.status, 200);
});

test('POST opens a session: 202 with Location, Range 0-0 and Docker-Upload-UUID; GET <location> answers 204 with the same', async () => {
  const repo = uniqueRepo('blobs');
  const { response, location } = await api.startUpload(repo);
  const { uuid } = expectSession(response, repo, 0);
  assert.equal(response.headers.get('content-length'), '0');
  assert.equal(await response.text(), '');

  const status = await api.get(location);
  assert.equal(status.status, 204);
  assert.equal(expectSession(status, repo, 0).uuid, uuid);
  assert.equal(await status.text(), '');

  // Two POSTs open two different sessions.
  const other = await api.startUpload(repo);
  assert.notEqual(expectSession(other.response, repo, 0).uuid, uuid);
});

test('monolithic single POST ?digest= answers 201 with a pullable Location and the digest', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(100_000);
  const digest = sha256(bytes);
  const response = await api.fetch(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: bytes,
  });
  assert.equal(response.status, 201, await response.clone().text());
  assert.equal(response.headers.get('docker-content-digest'), digest);
  const location = response.headers.get('location');
  assert.ok(location);
  assert.equal(new URL(location, stack.url).pathname, `/v2/${repo}/blobs/${digest}`);
  const pulled = await fetch(api.resolve(location));
  assert.equal(pulled.status, 200);
  assert.equal(sha256(await bytesOf(pulled)), digest);
  await expectBlob(repo, bytes);
});

test('POST then PUT ?digest= with the whole blob (monolithic) answers 201', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(300_000);
  const { location } = await api.startUpload(repo);
  const put = await api.put(location, sha256(bytes), bytes);
  assert.equal(put.status, 201, await put.clone().text());
  assert.equal(put.headers.get('docker-content-digest'), sha256(bytes));
  assert.equal(new URL(put.headers.get('location')!, stack.url).pathname, `/v2/${repo}/blobs/${sha256(bytes)}`);
  await expectBlob(repo, bytes);
  // The session is closed.
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET of a finished session');
});

test('a single PUT ?digest= carrying a whole 20 MiB blob (containerd style) is stored in S3 parts and verified', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(20 * MiB + 12345);
  const { location } = await api.startUpload(repo);
  const put = await api.put(location, sha256(bytes), bytes);
  assert.equal(put.status, 201, await put.clone().text());
  await expectBlob(repo, bytes);
});

test('streamed PATCHes without Content-Range (chunked transfer encoding) then PUT ?digest= without a body', async () => {
  const repo = uniqueRepo('blobs');
  // 9 MiB in uneven pieces: the first request alone fills one 8 MiB S3 part and leaves a tail.
  const first = [randomBlob(3 * MiB + 7), randomBlob(MiB), randomBlob(5 * MiB - 7)];
  const second = [randomBlob(1000), randomBlob(24)];
  const whole = Buffer.concat([...first, ...second]);
  const { location } = await api.startUpload(repo);

  const p1 = await api.patch(location, streamOf(first));
  assert.equal(p1.status, 202, await p1.clone().text());
  const s1 = expectSession(p1, repo, 9 * MiB);
  const p2 = await api.patch(s1.location, streamOf(second));
  assert.equal(p2.status, 202, await p2.clone().text());
  const s2 = expectSession(p2, repo, whole.length);

  const status = await api.get(s2.location);
  assert.equal(status.status, 204);
  expectSession(status, repo, whole.length);

  const put = await api.put(s2.location, sha256(whole));
  assert.equal(put.status, 201, await put.clone().text());
  assert.equal(put.headers.get('docker-content-digest'), sha256(whole));
  await expectBlob(repo, whole);
});

test('a streamed PATCH of exactly one 8 MiB part, then an empty PUT', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(8 * MiB);
  const { location } = await api.startUpload(repo);
  const patch = await api.patch(location, streamOf([bytes.subarray(0, MiB), bytes.subarray(MiB)]));
  assert.equal(patch.status, 202, await patch.clone().text());
  const { location: next } = expectSession(patch, repo, bytes.length);
  const put = await api.put(next, sha256(bytes));
  assert.equal(put.status, 201, await put.clone().text());
  await expectBlob(repo, bytes);
});

test('chunked upload with Content-Range: big and small chunks, Range and Location on every 202, final chunk in the PUT', async () => {
  const repo = uniqueRepo('blobs');
  // Sizes chosen around the 8 MiB part size: small, bigger than a part, tiny, two parts' worth, one byte.
  const chunks = [3 * MiB, 9 * MiB, 100, 17 * MiB, 1].map((size) => randomBlob(size));
  const last = randomBlob(2 * MiB + 5);
  const whole = Buffer.concat([...chunks, last]);
  let { location } = await api.startUpload(repo);
  let offset = 0;
  for (const chunk of chunks) {
    const response = await api.patch(location, chunk, [offset, offset + chunk.length - 1]);
    assert.equal(response.status, 202, `PATCH ${offset}-${offset + chunk.length - 1}: ${await response.clone().text()}`);
    offset += chunk.length;
    ({ location } = expectSession(response, repo, offset));
    assert.equal(await response.text(), '');

    const status = await api.get(location);
    assert.equal(status.status, 204, 'GET <location> reports the session');
    expectSession(status, repo, offset);
  }
  const put = await api.put(location, sha256(whole), last, [offset, offset + last.length - 1]);
  assert.equal(put.status, 201, await put.clone().text());
  assert.equal(put.headers.get('docker-content-digest'), sha256(whole));
  assert.equal(new URL(put.headers.get('location')!, stack.url).pathname, `/v2/${repo}/blobs/${sha256(whole)}`);
  await expectBlob(repo, whole);

  // A range that spans the boundary between S3 parts 1 and 2 reads back exactly.
  if (!api.redirects) {
    const start = 8 * MiB - 10;
    const end = 8 * MiB + 9;
    const { content } = await api.getBlob(repo, sha256(whole), { Range: `bytes=${start}-${end}` });
    assert.equal(content.status, 206);
    assert.equal(content.headers.get('content-range'), `bytes ${start}-${end}/${whole.length}`);
    assert.deepEqual(await bytesOf(content), whole.subarray(start, end + 1));
  }
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'the session is closed after the PUT');
});

test('two concurrent PATCHes of the same chunk: exactly one is accepted, the other answered 416; the blob is right', async () => {
  const repo = uniqueRepo('blobs');
  const chunk = randomBlob(4 * MiB);
  const { location } = await api.startUpload(repo);
  const responses = await Promise.all([api.patch(location, chunk, [0, chunk.length - 1]), api.patch(location, chunk, [0, chunk.length - 1])]);
  const statuses = responses.map((r) => r.status).sort();
  assert.deepEqual(statuses, [202, 416], `one 202 and one 416, got ${statuses}`);
  const refused = responses.find((r) => r.status === 416)!;
  await errorEntries(refused, 'the refused PATCH');
  await expectOffset(repo, location, chunk.length);
  const put = await api.put(location, sha256(chunk));
  assert.equal(put.status, 201, await put.clone().text());
  await expectBlob(repo, chunk);
});

test('a PATCH cut off mid-body leaves the session at its previous offset, and a retry succeeds', async () => {
  const repo = uniqueRepo('blobs');
  const first = randomBlob(1000);
  const { location } = await api.startUpload(repo);
  assert.equal((await api.patch(location, first, [0, 999])).status, 202);
  const { port } = new URL(stack.url);
  await new Promise<void>((resolve) => {
    const request = httpRequest({ host: '127.0.0.1', port, method: 'PATCH', path: new URL(location, stack.url).pathname, headers: { 'Content-Length': String(10 * MiB), 'Content-Range': `1000-${1000 + 10 * MiB - 1}` }, agent: false });
    request.on('error', () => resolve());
    request.write(randomBlob(3 * MiB));
    setTimeout(() => {
      request.destroy();
      resolve();
    }, 300);
  });
  // The cut request may still be unwinding on the server; the session must come back at 1000 bytes.
  let retry: Response | undefined;
  const rest = randomBlob(9 * MiB);
  for (let attempt = 0; attempt < 20; attempt++) {
    await expectOffset(repo, location, 1000);
    retry = await api.patch(location, rest, [1000, 1000 + rest.length - 1]);
    if (retry.status !== 416) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(retry!.status, 202, await retry!.clone().text());
  const whole = Buffer.concat([first, rest]);
  const put = await api.put(expectSession(retry!, repo, whole.length).location, sha256(whole));
  assert.equal(put.status, 201, await put.clone().text());
  await expectBlob(repo, whole);
});

test('a zero-length blob can be pushed and read', async () => {
  const repo = uniqueRepo('blobs');
  const empty = Buffer.alloc(0);
  await api.pushBlob(repo, empty);
  const head = await api.head(`/v2/${repo}/blobs/${sha256(empty)}`);
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), '0');
  const { content } = await api.getBlob(repo, sha256(empty));
  assert.equal(content.status, 200);
  assert.equal((await bytesOf(content)).length, 0);
});

test('DELETE of an upload session answers 204; the session is then unknown (404) to GET, PATCH, PUT and DELETE', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(1000);
  const { location } = await api.startUpload(repo);
  const patch = await api.patch(location, bytes, [0, 999]);
  assert.equal(patch.status, 202);
  const cancel = await api.delete(location);
  assert.equal(cancel.status, 204, await cancel.clone().text());
  await expectError(await api.get(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET after DELETE');
  await expectError(await api.patch(location, bytes, [1000, 1999]), 404, 'BLOB_UPLOAD_UNKNOWN', 'PATCH after DELETE');
  await expectError(await api.put(location, sha256(bytes)), 404, 'BLOB_UPLOAD_UNKNOWN', 'PUT after DELETE');
  await expectError(await api.delete(location), 404, 'BLOB_UPLOAD_UNKNOWN', 'DELETE after DELETE');
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${sha256(bytes)}`), 404, 'nothing of the cancelled upload is visible');
});

test('HEAD and GET of an unknown blob answer 404 BLOB_UNKNOWN', async () => {
  const repo = uniqueRepo('blobs');
  await api.pushBlob(repo, randomBlob(10));
  const digest = absentDigest();
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${digest}`), 404, 'HEAD unknown blob');
  await expectError(await api.get(`/v2/${repo}/blobs/${digest}`), 404, 'BLOB_UNKNOWN', 'GET unknown blob');
  await expectError(await api.get(`/v2/${uniqueRepo('nowhere')}/blobs/${digest}`), 404, ['BLOB_UNKNOWN', 'NAME_UNKNOWN'], 'GET in an unknown repository');
});

test('Range requests: 206 with Content-Range for first, middle, open-ended and suffix ranges; 416 when unsatisfiable', async (t) => {
  if (api.redirects) return t.skip('blob bytes come from the S3 back end, not from Berth');
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(1000);
  const digest = await api.pushBlob(repo, bytes);
  const cases: [string, number, number][] = [
    ['bytes=0-9', 0, 9],
    ['bytes=100-199', 100, 199],
    ['bytes=990-', 990, 999],
    ['bytes=-5', 995, 999],
    ['bytes=900-5000', 900, 999],
    ['bytes=999-999', 999, 999],
  ];
  for (const [range, start, end] of cases) {
    const { content } = await api.getBlob(repo, digest, { Range: range });
    assert.equal(content.status, 206, range);
    assert.equal(content.headers.get('content-range'), `bytes ${start}-${end}/1000`, range);
    assert.equal(content.headers.get('content-length'), String(end - start + 1), range);
    assert.equal(content.headers.get('docker-content-digest'), digest, range);
    assert.deepEqual(await bytesOf(content), bytes.subarray(start, end + 1), range);
  }
  const unsatisfiable = await api.get(`/v2/${repo}/blobs/${digest}`, { Range: 'bytes=1000-' });
  assert.equal(unsatisfiable.headers.get('content-range'), 'bytes */1000', '416 names the size (RFC 9110 §15.5.17)');
  // The spec names no code for this; any code of its table will do.
  await expectError(unsatisfiable, 416, ANY_SPEC_CODE, 'Range beyond the end');
});

test('a Range header in a unit the registry does not know is ignored (200 with the whole blob, RFC 9110 §14.2)', async (t) => {
  if (api.redirects) return t.skip('blob bytes come from the S3 back end, not from Berth');
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(100);
  const digest = await api.pushBlob(repo, bytes);
  const response = await api.get(`/v2/${repo}/blobs/${digest}`, { Range: 'items=0-9' });
  assert.equal(response.status, 200, `RFC 9110 §14.2: "An origin server MUST ignore a Range header field that contains a range unit it does not understand" (got ${response.status})`);
  assert.deepEqual(await bytesOf(response), bytes);
});

test('a multi-range request is served whole (200) or as multipart/byteranges (206), not refused (RFC 9110 §14.2, §15.5.17)', async (t) => {
  if (api.redirects) return t.skip('blob bytes come from the S3 back end, not from Berth');
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(100);
  const digest = await api.pushBlob(repo, bytes);
  const response = await api.get(`/v2/${repo}/blobs/${digest}`, { Range: 'bytes=0-1,5-6' });
  assert.ok(
    response.status === 200 || (response.status === 206 && /^multipart\/byteranges/.test(response.headers.get('content-type') ?? '')),
    `two satisfiable ranges: a server MAY ignore Range (200) or serve multipart/byteranges (206); 416 is for unsatisfiable ranges only (got ${response.status} ${await response.clone().text()})`,
  );
  if (response.status === 200) assert.deepEqual(await bytesOf(response), bytes);
});

test('sha512 blobs: monolithic POST, and a chunked session closed with a sha512 digest (verified by read-back)', async () => {
  const repo = uniqueRepo('blobs');
  const small = randomBlob(5000);
  const response = await api.fetch(`/v2/${repo}/blobs/uploads/?digest=${sha512(small)}`, { method: 'POST', body: small });
  assert.equal(response.status, 201, await response.clone().text());
  assert.equal(response.headers.get('docker-content-digest'), sha512(small));
  const head = await api.head(`/v2/${repo}/blobs/${sha512(small)}`);
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), '5000');
  const { content } = await api.getBlob(repo, sha512(small));
  assert.deepEqual(await bytesOf(content), small);

  const big = randomBlob(9 * MiB + 3);
  const { location } = await api.startUpload(repo);
  const patch = await api.patch(location, big.subarray(0, 6 * MiB), [0, 6 * MiB - 1]);
  assert.equal(patch.status, 202);
  const { location: next } = expectSession(patch, repo, 6 * MiB);
  const put = await api.put(next, sha512(big), big.subarray(6 * MiB), [6 * MiB, big.length - 1]);
  assert.equal(put.status, 201, await put.clone().text());
  assert.equal(put.headers.get('docker-content-digest'), sha512(big));
  const pulled = await api.getBlob(repo, sha512(big));
  assert.equal(sha512(await bytesOf(pulled.content)), sha512(big));
});

test('a chunked session closed with a wrong sha512 digest → 400 DIGEST_INVALID; nothing visible, session gone', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(9 * MiB);
  const { location } = await api.startUpload(repo);
  const patch = await api.patch(location, bytes, [0, bytes.length - 1]);
  assert.equal(patch.status, 202);
  const { location: next } = expectSession(patch, repo, bytes.length);
  const claimed = sha512(randomBlob(10));
  await expectError(await api.put(next, claimed), 400, 'DIGEST_INVALID', 'wrong sha512');
  for (const digest of [claimed, sha512(bytes), sha256(bytes)]) {
    await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${digest}`), 404, `nothing under ${digest.slice(0, 20)}`);
  }
  await expectError(await api.get(next), 404, 'BLOB_UPLOAD_UNKNOWN', 'session gone');
});

test('DELETE of a blob answers 202; it is then 404 to HEAD, GET and DELETE', async () => {
  const repo = uniqueRepo('blobs');
  const bytes = randomBlob(5000);
  const digest = await api.pushBlob(repo, bytes);
  const response = await api.delete(`/v2/${repo}/blobs/${digest}`);
  assert.equal(response.status, 202, await response.clone().text());
  await expectHeadStatus(await api.head(`/v2/${repo}/blobs/${digest}`), 404, 'HEAD after DELETE');
  await expectError(await api.get(`/v2/${repo}/blobs/${digest}`), 404, 'BLOB_UNKNOWN', 'GET after DELETE');
  await expectError(await api.delete(`/v2/${repo}/blobs/${digest}`), 404, 'BLOB_UNKNOWN', 'DELETE after DELETE');
  // Pushing it again makes it visible again.
  await api.pushBlob(repo, bytes);
  await expectBlob(repo, bytes);
});

test('cross-repository mount: 201 when the source repository has the blob', async () => {
  const source = uniqueRepo('mount');
  const target = uniqueRepo('mount');
  const bytes = randomBlob(2 * MiB);
  const digest = await api.pushBlob(source, bytes);
  await expectHeadStatus(await api.head(`/v2/${target}/blobs/${digest}`), 404, 'not in the target before the mount');
  const response = await api.fetch(`/v2/${target}/blobs/uploads/?mount=${digest}&from=${source}`, { method: 'POST', headers: { 'Content-Length': '0' } });
  assert.equal(response.status, 201, await response.clone().text());
  assert.equal(new URL(response.headers.get('location')!, stack.url).pathname, `/v2/${target}/blobs/${digest}`);
  assert.equal(response.headers.get('docker-content-digest'), digest);
  await expectBlob(target, bytes);
  await expectBlob(source, bytes);
  // The mounted link is the target's own: deleting it leaves the source intact.
  assert.equal((await api.delete(`/v2/${target}/blobs/${digest}`)).status, 202);
  await expectHeadStatus(await api.head(`/v2/${target}/blobs/${digest}`), 404, 'target link deleted');
  await expectBlob(source, bytes);
});

test('cross-repository mount: 202 with a usable session when the source lacks the blob, even if another repository has it', async () => {
  const holder = uniqueRepo('mount');
  const source = uniqueRepo('mount');
  const target = uniqueRepo('mount');
  const bytes = randomBlob(4096);
  const digest = await api.pushBlob(holder, bytes);
  await api.pushBlob(source, randomBlob(10)); // the source exists, but without this blob

  for (const query of [`mount=${digest}&from=${source}`, `mount=${absentDigest()}&from=${holder}`, `mount=${digest}&from=${uniqueRepo('nowhere')}`]) {
    const response = await api.fetch(`/v2/${target}/blobs/uploads/?${query}`, { method: 'POST', headers: { 'Content-Length': '0' } });
    assert.equal(response.status, 202, `${query}: ${await response.clone().text()}`);
    expectSession(response, target, 0);
  }
  await expectHeadStatus(await api.head(`/v2/${target}/blobs/${digest}`), 404, 'a failed mount links nothing');

  // The session of a failed mount is an ordinary upload session.
  const response = await api.fetch(`/v2/${target}/blobs/uploads/?mount=${digest}&from=${source}`, { method: 'POST', headers: { 'Content-Length': '0' } });
  const { location } = expectSession(response, target, 0);
  const put = await api.put(location, digest, bytes);
  assert.equal(put.status, 201, await put.clone().text());
  await expectBlob(target, bytes);
});

test('a mount without `from` opens a session (202) that can be used', async () => {
  const target = uniqueRepo('mount');
  const bytes = randomBlob(64);
  const response = await api.fetch(`/v2/${target}/blobs/uploads/?mount=${sha256(bytes)}`, { method: 'POST', headers: { 'Content-Length': '0' } });
  assert.ok(response.status === 202 || response.status === 201, `202 (or 201 if the registry mounts without from), got ${response.status}`);
  if (response.status === 202) {
    const { location } = expectSession(response, target, 0);
    assert.equal((await api.put(location, sha256(bytes), bytes)).status, 201);
  }
  await expectBlob(target, bytes);
});

test('blob isolation: a blob pushed to repository A is unknown in repository B', async () => {
  const a = uniqueRepo('iso');
  const b = uniqueRepo('iso');
  await api.pushBlob(b, randomBlob(10)); // B exists
  const bytes = randomBlob(777);
  const digest = await api.pushBlob(a, bytes);
  await expectHeadStatus(await api.head(`/v2/${b}/blobs/${digest}`), 404, 'HEAD in B');
  await expectError(await api.get(`/v2/${b}/blobs/${digest}`), 404, 'BLOB_UNKNOWN', 'GET in B');
  await expectError(await api.delete(`/v2/${b}/blobs/${digest}`), 404, 'BLOB_UNKNOWN', 'DELETE in B');
  await expectBlob(a, bytes);
});

test('the same bytes pushed to two repositories are served by both; deleting one link leaves the other', async () => {
  const a = uniqueRepo('iso');
  const b = uniqueRepo('iso');
  const bytes = randomBlob(9 * MiB);
  const digest = await api.pushBlob(a, bytes);
  // The second push goes through a chunked session of its own.
  const { location } = await api.startUpload(b);
  const patch = await api.patch(location, bytes.subarray(0, 5 * MiB), [0, 5 * MiB - 1]);
  assert.equal(patch.status, 202);
  const { location: next } = expectSession(patch, b, 5 * MiB);
  const put = await api.put(next, digest, bytes.subarray(5 * MiB), [5 * MiB, bytes.length - 1]);
  assert.equal(put.status, 201, await put.clone().text());
  await expectBlob(a, bytes);
  await expectBlob(b, bytes);
  assert.equal((await api.delete(`/v2/${a}/blobs/${digest}`)).status, 202);
  await expectHeadStatus(await api.head(`/v2/${a}/blobs/${digest}`), 404, 'deleted in A');
  await expectBlob(b, bytes);
});
