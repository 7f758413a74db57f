/**
 * The front door's CloudFront Function (infra/aws/frontdoor/function.js) in the emulated
 * cloudfront-js-2.0 runtime (infra/local/cloudfront-functions.ts), without a server: tokens minted
 * by functions/core/signed-paths.ts, property-based.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseSegment, signBlob, signUpload, type PathKey } from '../../functions/core/signed-paths.js';
import { loadFunction, type CfEvent, type CfRequest, type CfResponse, type CfValues, type FunctionRun } from '../../infra/local/cloudfront-functions.js';

const FUNCTION_FILE = fileURLToPath(new URL('../../infra/aws/frontdoor/function.js', import.meta.url));
const MAX_PUT = 5 * 1024 ** 3;
const HOST = 'registry.example.com';
const RUNS = { numRuns: 50 };

/** The key versions the KeyValueStore holds (`upload-key-<v>`), each with its own secret. */
const KEYS = new Map<number, PathKey>([1, 2, 7, 10, 99, 100, 1234, 9999].map((version) => [version, { version, secret: randomBytes(32) }]));
const kvs = Object.fromEntries([...KEYS.values()].map((k) => [`upload-key-${k.version}`, k.secret.toString('base64')]));
// A generous wall-clock cap: this machine runs other tests at the same time; the point here is the function's logic.
const limits = { functionTimeoutMs: 2000 };
const fn = loadFunction({ functionFile: FUNCTION_FILE, kvs, limits });
const fnChecksum = loadFunction({ functionFile: FUNCTION_FILE, kvs: { ...kvs, 's3-checksum': 'on' }, limits });
after(() => {
  fn.close();
  fnChecksum.close();
});

const now = () => Math.floor(Date.now() / 1000);

// Generators. Repository names follow the OCI distribution spec's grammar.
const component = fc.stringMatching(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/, { maxLength: 24 });
const repository = fc.array(component, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
const uuid = fc.uuid();
const key = fc.constantFrom(...KEYS.values());
const unknownVersion = fc.integer({ min: 1, max: 9999 }).filter((v) => !KEYS.has(v));
const future = fc.integer({ min: 60, max: 10 * 365 * 86400 }).map((s) => now() + s);
const past = fc.integer({ min: 0, max: 1_800_000_000 }).map((t) => Math.min(t, now() - 1));
const digestBytes = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
const size = fc.integer({ min: 1, max: MAX_PUT });
/** `digest=` as containerd (`%3A`) or other clients (`:`) write it. */
const digestParam = (hex: string, escaped: boolean) => `sha256${escaped ? '%3A' : ':'}${hex}`;
const authorization = fc.constantFrom('Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig', 'Basic dXNlcjpwYXNz');
/** x-amz-* headers a viewer might send: S3 must see none of them (OAC signs what the function chose). */
const amzHeaders = fc.dictionary(
  fc.constantFrom('x-amz-storage-class', 'x-amz-acl', 'x-amz-tagging', 'x-amz-meta-berth-repository', 'x-amz-meta-owner', 'x-amz-checksum-sha256', 'x-amz-website-redirect-location'),
  fc.constantFrom('GLACIER', 'public-read-write', 'other/repository', 'AAAA', 'https://example.com/'),
  { maxKeys: 3 },
);
const tokenChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./~%');

// Events.
const values = (o: Record<string, string>): CfValues => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { value: v }]));
const context = { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE', requestId: 'unit-test' };

function request(method: string, uri: string, query: Record<string, string> = {}, headers: Record<string, string> = {}): CfRequest {
  return { method, uri, querystring: values(query), headers: values({ host: HOST, 'user-agent': 'containerd/2.0.0', ...headers }), cookies: {} };
}

function viewerRequest(req: CfRequest): CfEvent {
  return { version: '1.0', context: { ...context, eventType: 'viewer-request' }, viewer: { ip: '192.0.2.1' }, request: structuredClone(req) };
}

function viewerResponse(req: CfRequest, res: CfResponse): CfEvent {
  return { version: '1.0', context: { ...context, eventType: 'viewer-response' }, viewer: { ip: '192.0.2.1' }, request: structuredClone(req), response: structuredClone(res) };
}

/** S3's answer to a PUT, as the viewer-response event holds it. */
const s3Ok = (): CfResponse => ({
  statusCode: 200,
  statusDescription: 'OK',
  headers: values({ etag: '"0123456789abcdef0123456789abcdef"', 'x-amz-request-id': 'EXAMPLE', 'content-length': '0', server: 'AmazonS3' }),
  cookies: {},
});

const uploadUri = (name: string, segment: string) => `/v2/${name}/blobs/uploads/${segment}`;
const hexOf = (bytes: Buffer) => bytes.toString('hex');

/** An upload PUT carrying the whole blob. */
function uploadPut(name: string, segment: string, digest: string, length: number, headers: Record<string, string> = {}): CfRequest {
  return request('PUT', uploadUri(name, segment), { digest }, { 'content-length': String(length), 'content-type': 'application/octet-stream', authorization: 'Bearer x', ...headers });
}

/** `sent` as S3 gets it: `uri`, no query, no Authorization, no x-amz-* header of the viewer. */
/** What S3 must receive: no query, none of the viewer's headers but CloudFront's framing and a Range, an octet-stream type. */
function toS3(sent: CfRequest, uri: string): CfRequest {
  const expected = structuredClone(sent);
  expected.uri = uri;
  expected.querystring = {};
  const kept = new Set(['host', 'content-length', 'transfer-encoding', 'via', 'range']);
  for (const name of Object.keys(expected.headers)) if (!kept.has(name)) delete expected.headers[name];
  expected.headers['content-type'] = { value: 'application/octet-stream' };
  return expected;
}

function isResponse(value: unknown): value is CfResponse {
  return typeof value === 'object' && value !== null && 'statusCode' in value;
}

/** The request the function returned. (assert.ok gets a message everywhere: without one, a failing
 * assert.ok under tsx spends minutes parsing the source for the expression's text.) */
function requestOf(run: FunctionRun): CfRequest {
  assert.ok(!isResponse(run.result), `expected a request, got the response ${JSON.stringify(run.result)}`);
  return run.result;
}

/** The function answered itself with OCI error JSON. */
function assertOciError(run: FunctionRun, status: number, code: string): void {
  assert.ok(isResponse(run.result), `expected a ${status} response, got a request to ${(run.result as CfRequest).uri}`);
  const res = run.result;
  assert.equal(res.statusCode, status);
  assert.equal(run.selectedOrigin, undefined);
  assert.equal(res.headers?.['content-type']?.value, 'application/json');
  assert.equal(res.headers?.['docker-distribution-api-version']?.value, 'registry/2.0');
  assert.ok(typeof res.body === 'object' && res.body.encoding === 'text', 'a text body');
  const body = JSON.parse(res.body.data ?? '') as { errors: { code: string; message: unknown; detail: unknown }[] };
  assert.equal(body.errors.length, 1);
  assert.equal(body.errors[0].code, code);
  assert.equal(typeof body.errors[0].message, 'string');
  assert.equal(body.errors[0].detail, null);
}

/** The request went to the default behaviour's origin (`api`), unchanged but for x-forwarded-host and the viewer's address. */
function assertForwarded(run: FunctionRun, sent: CfRequest): void {
  assert.ok(!isResponse(run.result), `expected a forwarded request, got ${JSON.stringify(run.result)}`);
  assert.equal(run.selectedOrigin, undefined, 'no origin selected: the default behaviour\'s, api');
  const expected = structuredClone(sent);
  expected.headers['x-forwarded-host'] = { value: sent.headers.host.value };
  expected.headers['x-berth-viewer-address'] = { value: '192.0.2.1' };
  assert.deepEqual(run.result, expected);
}

/** `segment` with the character at `at` replaced by `c` (another character). */
function mutate(segment: string, at: number, c: string): string | undefined {
  const i = at % segment.length;
  return segment[i] === c ? undefined : segment.slice(0, i) + c + segment.slice(i + 1);
}

test('the function source fits the 10 KB CloudFront Functions limit and starts with the cloudfront import', () => {
  const source = readFileSync(FUNCTION_FILE);
  assert.ok(source.length <= 10 * 1024, `${source.length} bytes`);
  assert.match(source.toString('utf8'), /^import cf from 'cloudfront';\n/);
});

describe('viewer request: whole-blob upload PUTs', () => {
  test('a token from signUpload sends the PUT to S3 under incoming/', async () => {
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, digestBytes, fc.boolean(), size, authorization, amzHeaders, async (name, id, exp, k, bytes, escaped, length, auth, amz) => {
        const hex = hexOf(bytes);
        const sent = uploadPut(name, signUpload(k, name, id, exp), digestParam(hex, escaped), length, { authorization: auth, ...amz });
        const run = await fn.run(viewerRequest(sent));
        const result = requestOf(run);
        assert.equal(run.selectedOrigin, 'blobs');
        const expected = toS3(sent, `/incoming/sha256-${hex}/${id}`);
        expected.headers['x-amz-meta-berth-repository'] = { value: name };
        assert.deepEqual(result, expected);
      }),
      RUNS,
    );
  });

  test('with s3-checksum=on in the KeyValueStore, x-amz-checksum-sha256 is the base64 of the digest', async () => {
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, digestBytes, size, amzHeaders, async (name, id, exp, k, bytes, length, amz) => {
        const sent = uploadPut(name, signUpload(k, name, id, exp), digestParam(hexOf(bytes), true), length, amz);
        const run = await fnChecksum.run(viewerRequest(sent));
        const result = requestOf(run);
        assert.equal(run.selectedOrigin, 'blobs');
        const expected = toS3(sent, `/incoming/sha256-${hexOf(bytes)}/${id}`);
        expected.headers['x-amz-meta-berth-repository'] = { value: name };
        expected.headers['x-amz-checksum-sha256'] = { value: bytes.toString('base64') };
        assert.deepEqual(result, expected);
      }),
      RUNS,
    );
  });

  test('a valid token whose session the registry marked as used (spent-<id>): 404 BLOB_UPLOAD_UNKNOWN; other sessions pass', async () => {
    const k = KEYS.get(1)!;
    const [used, other] = [randomUUID(), randomUUID()];
    const marked = loadFunction({ functionFile: FUNCTION_FILE, kvs: { ...kvs, [`spent-${used}`]: '2000000000' }, limits });
    try {
      const exp = Math.floor(Date.now() / 1000) + 600;
      const replay = await marked.run(viewerRequest(uploadPut('team/app', signUpload(k, 'team/app', used, exp), digestParam('ab'.repeat(32), false), 100)));
      assertOciError(replay, 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.match(JSON.stringify(replay.result), /already used/);
      const fresh = await marked.run(viewerRequest(uploadPut('team/app', signUpload(k, 'team/app', other, exp), digestParam('ab'.repeat(32), false), 100)));
      assert.equal(fresh.selectedOrigin, 'blobs');
    } finally {
      marked.close();
    }
  });

  test('a changed token, another repository, an unknown or wrong key, an expired token: 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const bad = fc.oneof(
      fc.record({ kind: fc.constant('changed' as const), at: fc.nat(), c: tokenChar }),
      fc.record({ kind: fc.constant('repository' as const), other: repository }),
      fc.record({ kind: fc.constant('version' as const), version: unknownVersion }),
      fc.record({ kind: fc.constant('secret' as const) }),
      fc.record({ kind: fc.constant('expired' as const), exp: past }),
    );
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, digestBytes, size, bad, async (name, id, exp, k, bytes, length, how) => {
        let path = name;
        let segment = signUpload(k, name, id, exp);
        if (how.kind === 'changed') {
          const changed = mutate(segment, how.at, how.c);
          fc.pre(changed !== undefined);
          segment = changed!;
        } else if (how.kind === 'repository') {
          fc.pre(how.other !== name);
          path = how.other;
        } else if (how.kind === 'version') {
          segment = signUpload({ version: how.version, secret: k.secret }, name, id, exp);
        } else if (how.kind === 'secret') {
          segment = signUpload({ version: k.version, secret: randomBytes(32) }, name, id, exp);
        } else {
          segment = signUpload(k, name, id, how.exp);
        }
        const sent = uploadPut(path, segment, digestParam(hexOf(bytes), true), length);
        const run = await fn.run(viewerRequest(sent));
        // A change that leaves no token in the path makes it an ordinary request, for the API.
        if (parseSegment(segment) === undefined) assertForwarded(run, sent);
        else assertOciError(run, 404, 'BLOB_UPLOAD_UNKNOWN');
      }),
      RUNS,
    );
  });

  test('a malformed sha256 digest: 400 DIGEST_INVALID', async () => {
    const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
    const malformed = fc.oneof(
      fc.stringMatching(/^[0-9a-f]{0,63}$/).map((h) => `sha256:${h}`),
      fc.stringMatching(/^[0-9a-f]{65,80}$/).map((h) => `sha256:${h}`),
      hex64.map((h) => `sha256:${h.toUpperCase()}`).filter((d) => /[A-F]/.test(d)),
      fc.tuple(hex64, fc.nat(63), fc.constantFrom('g', 'z', 'G', '-', '+', ' ')).map(([h, i, c]) => `sha256:${h.slice(0, i)}${c}${h.slice(i + 1)}`),
      hex64.map((h) => `sha256%3A${h}%3A`),
      hex64,
      hex64.map((h) => `:${h}`),
      fc.constant(''),
    );
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, malformed, async (name, id, exp, k, digest) => {
        assertOciError(await fn.run(viewerRequest(uploadPut(name, signUpload(k, name, id, exp), digest, 1024))), 400, 'DIGEST_INVALID');
      }),
      RUNS,
    );
    const segment = signUpload(KEYS.get(1)!, 'library/alpine', randomUUID(), now() + 600);
    const noDigest = request('PUT', uploadUri('library/alpine', segment), {}, { 'content-length': '1024' });
    assertOciError(await fn.run(viewerRequest(noDigest)), 400, 'DIGEST_INVALID');
  });

  test(
    'a digest with a malformed percent-escape: 400 DIGEST_INVALID',
    async () => {
      const segment = signUpload(KEYS.get(1)!, 'library/alpine', randomUUID(), now() + 600);
      for (const digest of ['%', 'sha256%3A%zz', `sha256%3A${'a'.repeat(63)}%E0%A4%A`]) {
        const run = await fn.run(viewerRequest(uploadPut('library/alpine', segment, digest, 1024)));
        assertOciError(run, 400, 'DIGEST_INVALID');
      }
    },
  );

  test('a body over 5 GiB (S3\'s largest PUT): 413 SIZE_INVALID; exactly 5 GiB goes through', async () => {
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, digestBytes, fc.integer({ min: MAX_PUT + 1, max: 2 ** 50 }), async (name, id, exp, k, bytes, length) => {
        const run = await fn.run(viewerRequest(uploadPut(name, signUpload(k, name, id, exp), digestParam(hexOf(bytes), true), length)));
        assertOciError(run, 413, 'SIZE_INVALID');
      }),
      RUNS,
    );
    const segment = signUpload(KEYS.get(1)!, 'library/alpine', randomUUID(), now() + 600);
    const run = await fn.run(viewerRequest(uploadPut('library/alpine', segment, digestParam('a'.repeat(64), true), MAX_PUT)));
    assert.equal(run.selectedOrigin, 'blobs');
  });

  test('PATCH, GET, DELETE, empty PUTs and sha512 digests on an upload URL go to the API unchanged', async () => {
    const other = fc.oneof(
      fc.record({ method: fc.constantFrom('PATCH', 'GET', 'DELETE'), length: fc.option(fc.integer({ min: 0, max: 2 ** 32 })), digest: fc.option(fc.constant('sha256')) }),
      fc.record({ method: fc.constant('PUT'), length: fc.constantFrom(0, null), digest: fc.option(fc.constantFrom('sha256', 'sha512')) }),
      fc.record({ method: fc.constant('PUT'), length: fc.integer({ min: 1, max: 2 ** 40 }), digest: fc.constant('sha512') }),
    );
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, fc.uint8Array({ minLength: 64, maxLength: 64 }), authorization, other, async (name, id, exp, k, bytes, auth, how) => {
        const hex = Buffer.from(bytes).toString('hex');
        const query: Record<string, string> = how.digest === null ? {} : { digest: how.digest === 'sha512' ? `sha512%3A${hex}` : `sha256%3A${hex.slice(0, 64)}` };
        const headers: Record<string, string> = { authorization: auth };
        if (how.length !== null) headers['content-length'] = String(how.length);
        const sent = request(how.method, uploadUri(name, signUpload(k, name, id, exp)), query, headers);
        assertForwarded(await fn.run(viewerRequest(sent)), sent);
      }),
      RUNS,
    );
  });
});

test('a viewer cannot name its own address: x-berth-viewer-address is the one CloudFront saw', async () => {
  const sent = request('POST', '/token', {}, { 'x-berth-viewer-address': '10.0.0.1' });
  const run = await fn.run(viewerRequest(sent));
  assert.ok(!isResponse(run.result));
  assert.deepEqual(run.result.headers['x-berth-viewer-address'], { value: '192.0.2.1' });
});

describe('viewer request: blob GETs by signed path', () => {
  test('a path from signBlob is served from S3 blobs/<uuid>', async () => {
    await fc.assert(
      fc.asyncProperty(uuid, future, key, fc.constantFrom('GET', 'HEAD'), authorization, fc.boolean(), amzHeaders, async (id, exp, k, method, auth, withQuery, amz) => {
        const sent = request(method, signBlob(k, id, exp), withQuery ? { 'x-id': 'GetObject' } : {}, { authorization: auth, accept: '*/*', range: 'bytes=0-99', ...amz });
        const run = await fn.run(viewerRequest(sent));
        assert.equal(run.selectedOrigin, 'blobs');
        assert.deepEqual(requestOf(run), toS3(sent, `/blobs/${id}`));
      }),
      RUNS,
    );
  });

  test('an expired blob path: 403 DENIED; a bad one: 404 BLOB_UNKNOWN', async () => {
    const how = fc.oneof(
      fc.record({ kind: fc.constant('expired' as const), exp: past }),
      fc.record({ kind: fc.constant('changed' as const), at: fc.nat(), c: tokenChar }),
      fc.record({ kind: fc.constant('version' as const), version: unknownVersion }),
      fc.record({ kind: fc.constant('secret' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(uuid, future, key, fc.constantFrom('GET', 'HEAD'), how, async (id, exp, k, method, bad) => {
        let path: string;
        if (bad.kind === 'expired') path = signBlob(k, id, bad.exp);
        else if (bad.kind === 'version') path = signBlob({ version: bad.version, secret: k.secret }, id, exp);
        else if (bad.kind === 'secret') path = signBlob({ version: k.version, secret: randomBytes(32) }, id, exp);
        else {
          const changed = mutate(signBlob(k, id, exp).slice('/_berth/blobs/'.length), bad.at, bad.c);
          fc.pre(changed !== undefined);
          path = `/_berth/blobs/${changed}`;
        }
        const sent = request(method, path);
        const run = await fn.run(viewerRequest(sent));
        const segment = parseSegment(path.slice('/_berth/blobs/'.length));
        if (segment === undefined) return assertForwarded(run, sent);
        if (bad.kind === 'expired') return assertOciError(run, 403, 'DENIED');
        // The signature is checked first: a forged path is unknown, whatever its expiry says.
        assertOciError(run, 404, 'BLOB_UNKNOWN');
      }),
      RUNS,
    );
  });

  test('other methods on a blob path go to the API unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(uuid, future, key, fc.constantFrom('PUT', 'POST', 'DELETE', 'PATCH'), async (id, exp, k, method) => {
        const sent = request(method, signBlob(k, id, exp), {}, { 'content-length': '0' });
        assertForwarded(await fn.run(viewerRequest(sent)), sent);
      }),
      RUNS,
    );
  });
});

describe('viewer response', () => {
  test('a 200 to an upload PUT becomes 201 with Docker-Content-Digest and Location', async () => {
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, digestBytes, fc.boolean(), size, async (name, id, exp, k, bytes, escaped, length) => {
        const hex = hexOf(bytes);
        const original = uploadPut(name, signUpload(k, name, id, exp), digestParam(hex, escaped), length);
        const rewritten = requestOf(await fn.run(viewerRequest(original)));
        const expected = s3Ok();
        expected.statusCode = 201;
        expected.statusDescription = 'Created';
        Object.assign(expected.headers!, values({ 'docker-content-digest': `sha256:${hex}`, location: `/v2/${name}/blobs/sha256:${hex}`, 'docker-distribution-api-version': 'registry/2.0' }));
        // The event's request: as the viewer-request function left it, or as the viewer sent it.
        for (const req of [rewritten, original]) {
          const run = await fn.run(viewerResponse(req, s3Ok()));
          assert.equal(run.selectedOrigin, undefined);
          assert.deepEqual(run.result, expected, req.uri);
        }
      }),
      RUNS,
    );
  });

  test('other responses pass unchanged', async () => {
    const status = fc.constantFrom(200, 201, 202, 204, 206, 301, 302, 304, 307, 308);
    const other = fc.oneof(
      fc.record({ kind: fc.constant('method' as const), method: fc.constantFrom('GET', 'HEAD', 'PATCH', 'POST', 'DELETE'), status }),
      fc.record({ kind: fc.constant('status' as const), method: fc.constant('PUT'), status: status.filter((s) => s !== 200) }),
      fc.record({ kind: fc.constantFrom('manifest' as const, 'sha512' as const, 'no-digest' as const, 'incoming-no-meta' as const), method: fc.constant('PUT'), status: fc.constant(200) }),
    );
    await fc.assert(
      fc.asyncProperty(repository, uuid, future, key, digestBytes, other, async (name, id, exp, k, bytes, how) => {
        const hex = hexOf(bytes);
        let req = uploadPut(name, signUpload(k, name, id, exp), digestParam(hex, true), 1024);
        req.method = how.method;
        if (how.kind === 'manifest') req.uri = `/v2/${name}/manifests/latest`;
        if (how.kind === 'sha512') req.querystring = values({ digest: `sha512%3A${hex}${hex}` });
        if (how.kind === 'no-digest') req.querystring = {};
        if (how.kind === 'incoming-no-meta') req = request('PUT', `/incoming/sha256-${hex}/${id}`, {}, { 'content-length': '1024' });
        const res = { ...s3Ok(), statusCode: how.status, statusDescription: 'Whatever' };
        const run = await fn.run(viewerResponse(req, res));
        assert.deepEqual(run.result, res);
      }),
      RUNS,
    );
  });
});
