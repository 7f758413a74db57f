/**
 * The emulated CloudFront distribution (infra/local/cloudfront-*.ts) against a real HTTP
 * origin, a fake S3 that checks SigV4 signatures independently, and the embedded S3 (s3rver).
 * Test functions are written to temporary files, as the deployed one is read from its file.
 * Run: node --import tsx --test test/frontdoor/cloudfront-emulator.test.ts
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { S3EventRecord } from 'aws-lambda';
import S3rver from 's3rver';
import { createCloudFrontEmulator, type CloudFrontEmulatorOptions } from '../../infra/local/cloudfront-emulator.js';
import { toScript } from '../../infra/local/cloudfront-functions.js';
import { s3EventKey } from '../../infra/local/cloudfront-s3-origin.js';
import { EMULATOR_CREDENTIALS } from '../../infra/local/emulators.js';

const MiB = 1024 * 1024;
const REGION = 'eu-west-1';
const BUCKET = 'berth';

interface Reply {
  status: number;
  message: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request with full control over the request line and headers. */
function send(base: string, method: string, path: string, headers: Record<string, string | string[]> = {}, body?: Buffer): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, message: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const rfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Checks an S3 SigV4 header signature from scratch (AWS's documented algorithm, not the SDK's code). */
function verifySigV4(req: IncomingMessage, secret: string): { ok: boolean; signedHeaders: string[]; region: string } {
  const auth = String(req.headers.authorization ?? '');
  const m = /^AWS4-HMAC-SHA256 Credential=[^/]+\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { ok: false, signedHeaders: [], region: '' };
  const [, date, region, signedList, signature] = m;
  const signed = signedList.split(';');
  const url = new URL(req.url ?? '/', 'http://s3');
  const query = [...url.searchParams]
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .sort()
    .join('&');
  const canonicalHeaders = signed.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, url.pathname, query, canonicalHeaders, signedList, String(req.headers['x-amz-content-sha256'])].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', String(req.headers['x-amz-date']), `${date}/${region}/s3/aws4_request`, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${secret}`, date);
  for (const part of [region, 's3', 'aws4_request']) key = hmac(key, part);
  return { ok: hmac(key, toSign).toString('hex') === signature, signedHeaders: signed, region };
}

interface OriginHit {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  bytes: number;
}

describe('CloudFront emulator', () => {
  let dir: string;
  let origin: Server;
  let originUrl: string;
  const originHits: OriginHit[] = [];
  let fakeS3: Server;
  let fakeS3Url: string;
  const fakeS3Hits: (OriginHit & { signature: ReturnType<typeof verifySigV4>; sha256: string })[] = [];
  let firstS3Bytes: () => void = () => undefined;
  let s3: S3rver;
  let s3Url: string;
  const emulators: Server[] = [];
  let kvsFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cf-emulator-'));
    origin = createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        originHits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bytes });
        if (req.url === '/slow') return; // never answers
        const status = req.url?.startsWith('/status/') ? Number(req.url.slice('/status/'.length)) : 200;
        const body = JSON.stringify({ from: 'origin', status });
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'set-cookie': ['s=1; Path=/', 't=2'] });
        res.end(body);
      });
    });
    originUrl = await listen(origin);

    fakeS3 = createServer((req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        if (bytes === 0) firstS3Bytes();
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        fakeS3Hits.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          bytes,
          sha256: hash.digest('hex'),
          signature: verifySigV4(req, EMULATOR_CREDENTIALS.secretAccessKey),
        });
        res.writeHead(200, { etag: '"0123456789abcdef0123456789abcdef"', 'x-amz-request-id': 'FAKE', 'content-length': '0' });
        res.end();
      });
    });
    fakeS3Url = await listen(fakeS3);

    s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: join(dir, 's3'), configureBuckets: [{ name: BUCKET }] });
    s3Url = `http://127.0.0.1:${((await s3.run()) as AddressInfo).port}`;

    kvsFile = join(dir, 'kvs.json');
    await writeFile(kvsFile, JSON.stringify({ data: [{ key: 'plain', value: 'hello' }, { key: 'obj', value: '{"n":42}' }] }));
  });

  after(async () => {
    for (const e of emulators) await close(e);
    await close(origin);
    await close(fakeS3);
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** An emulator running `source` as its function. */
  async function emulator(source: string, extra: Partial<CloudFrontEmulatorOptions> = {}, s3Endpoint?: string): Promise<{ url: string; logs: string[] }> {
    const functionFile = join(dir, `function-${randomUUID()}.js`);
    await writeFile(functionFile, source);
    const logs: string[] = [];
    const server = createCloudFrontEmulator({
      functionFile,
      kvsFile,
      origins: {
        api: originUrl,
        blobs: { endpoint: s3Endpoint ?? s3Url, bucket: BUCKET, region: REGION, credentials: EMULATOR_CREDENTIALS, forcePathStyle: true },
      },
      log: (line) => logs.push(line),
      ...extra,
    });
    emulators.push(server);
    return { url: await listen(server), logs };
  }

  const FORWARD = `import cf from 'cloudfront';
async function handler(event) {
  if (event.context.eventType === 'viewer-response') {
    event.response.headers['x-viewer-response'] = { value: 'ran' };
    if (event.request.uri === '/created') {
      event.response.statusCode = 201;
      event.response.statusDescription = 'Created';
    }
    return event.response;
  }
  var request = event.request;
  request.headers['x-forwarded-host'] = { value: request.headers.host.value };
  request.headers['x-event'] = { value: JSON.stringify({
    version: event.version, context: event.context, ip: event.viewer.ip, uri: request.uri, q: request.querystring,
    cookies: request.cookies, accept: request.headers.accept, hidden: ['connection', 'x-forwarded-proto', 'x-real-ip'].filter(function (h) { return h in request.headers; })
  }) };
  return request;
}
`;

  it('forwards to the api origin with its own Host, the viewer headers and the ones CloudFront adds', async () => {
    const { url } = await emulator(FORWARD);
    const before = originHits.length;
    const reply = await send(url, 'GET', '/v2/library%2Fx/tags/list?n=1&n=2&digest=sha256%3Aab', {
      host: 'registry.example:5000',
      cookie: 'a=b; c=d',
      'x-forwarded-proto': 'https',
      'x-real-ip': '10.9.9.9',
      'user-agent': 'containerd/2.0',
      accept: ['application/json', 'text/plain'],
      authorization: 'Bearer token',
    });
    assert.equal(reply.status, 200);
    assert.equal(originHits.length, before + 1);
    const hit = originHits[originHits.length - 1];
    const originHost = new URL(originUrl).host;
    assert.equal(hit.headers.host, originHost, 'the origin gets its own Host (AllViewerExceptHostHeader)');
    assert.equal(hit.headers['x-forwarded-host'], 'registry.example:5000');
    assert.equal(hit.url, '/v2/library%2Fx/tags/list?n=1&n=2&digest=sha256%3Aab', 'path and query as the viewer sent them');
    assert.equal(hit.headers['x-forwarded-for'], '127.0.0.1');
    assert.match(String(hit.headers.via), /^1\.1 [0-9a-f]{32}\.cloudfront\.net \(CloudFront\)$/);
    assert.match(String(hit.headers['x-amz-cf-id']), /^[A-Za-z0-9_-]{54}==$/);
    assert.equal(hit.headers.cookie, 'a=b; c=d');
    assert.equal(hit.headers['user-agent'], 'containerd/2.0');
    assert.equal(hit.headers.authorization, 'Bearer token');
    assert.deepEqual(
      hit.rawHeaders.filter((_, i) => i % 2 === 0 && hit.rawHeaders[i].toLowerCase() === 'accept').length,
      2,
      'duplicate headers stay separate lines',
    );
    assert.equal(hit.headers['x-forwarded-proto'], undefined, 'CloudFront removes X-Forwarded-Proto');
    assert.equal(hit.headers['x-real-ip'], undefined);
    assert.equal(hit.headers['cloudfront-forwarded-proto'], undefined, 'not part of AllViewerExceptHostHeader');
    assert.ok(hit.rawHeaders.includes('X-Forwarded-Host'), 'function headers are capitalised per word');

    const event = JSON.parse(String(hit.headers['x-event']));
    assert.equal(event.version, '1.0');
    assert.equal(event.context.eventType, 'viewer-request');
    assert.equal(event.context.distributionId, 'EDFDVBD6EXAMPLE');
    assert.equal(event.context.requestId, hit.headers['x-amz-cf-id']);
    assert.equal(event.ip, '127.0.0.1');
    assert.deepEqual(event.q.n, { value: '1', multiValue: [{ value: '1' }, { value: '2' }] });
    assert.deepEqual(event.q.digest, { value: 'sha256%3Aab' }, 'query values reach the function undecoded');
    assert.deepEqual(event.cookies, { a: { value: 'b' }, c: { value: 'd' } });
    assert.deepEqual(event.accept.multiValue, [{ value: 'application/json' }, { value: 'text/plain' }]);
    assert.deepEqual(event.hidden, [], 'disallowed headers are not exposed to the function');

    assert.equal(reply.headers['x-viewer-response'], 'ran');
    assert.equal(reply.headers['x-cache'], 'Miss from cloudfront');
    assert.match(String(reply.headers.via), /cloudfront\.net \(CloudFront\)$/);
    assert.deepEqual(reply.headers['set-cookie'], ['s=1; Path=/', 't=2']);
    assert.deepEqual(JSON.parse(reply.body.toString()), { from: 'origin', status: 200 });
  });

  it('runs viewer response on origin answers below 400 only', async () => {
    const { url, logs } = await emulator(FORWARD);
    const created = await send(url, 'GET', '/created');
    assert.equal(created.status, 201);
    assert.equal(created.message, 'Created');
    assert.equal(created.headers['x-viewer-response'], 'ran');
    for (const status of [400, 404, 500]) {
      const reply = await send(url, 'GET', `/status/${status}`);
      assert.equal(reply.status, status);
      assert.equal(reply.headers['x-viewer-response'], undefined, `viewer response must not run on ${status}`);
      assert.deepEqual(JSON.parse(reply.body.toString()), { from: 'origin', status });
    }
    assert.ok(logs.some((l) => l.includes('viewer-response skipped')));
  });

  it('answers with a function-generated response without contacting the origin', async () => {
    const { url } = await emulator(`function handler(event) {
  if (event.request.uri === '/b64') return { statusCode: 200, body: { encoding: 'base64', data: Buffer.from('binary\\u0000ok').toString('base64') } };
  if (event.request.uri === '/plain') return { statusCode: 302, headers: { location: { value: '/elsewhere' } }, body: 'moved' };
  return {
    statusCode: 404,
    statusDescription: 'Not Found',
    headers: { 'content-type': { value: 'application/json' }, 'docker-distribution-api-version': { value: 'registry/2.0' } },
    cookies: { k: { value: 'v', attributes: 'Path=/; Secure' } },
    body: { encoding: 'text', data: JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'nope', detail: null }] }) }
  };
}`);
    const before = originHits.length;
    const reply = await send(url, 'PUT', '/v2/x/blobs/uploads/abc', { 'content-type': 'application/octet-stream' }, randomBytes(3 * MiB));
    assert.equal(reply.status, 404);
    assert.equal(reply.message, 'Not Found');
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.deepEqual(reply.headers['set-cookie'], ['k=v; Path=/; Secure']);
    assert.equal(reply.headers['x-cache'], 'FunctionGeneratedResponse from cloudfront');
    assert.equal(JSON.parse(reply.body.toString()).errors[0].code, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal(Number(reply.headers['content-length']), reply.body.length);
    const b64 = await send(url, 'GET', '/b64');
    assert.equal(b64.body.toString('latin1'), 'binary\u0000ok');
    const plain = await send(url, 'GET', '/plain');
    assert.equal(plain.status, 302);
    assert.equal(plain.headers.location, '/elsewhere');
    assert.equal(plain.body.toString(), 'moved');
    assert.equal(originHits.length, before, 'the origin saw nothing');
  });

  it('answers 502 when the function adds a disallowed header or changes a read-only one', async () => {
    const { url, logs } = await emulator(`function handler(event) {
  if (event.context.eventType === 'viewer-response') return event.response;
  var r = event.request;
  if (r.uri === '/xfp') r.headers['x-forwarded-proto'] = { value: 'https' };
  if (r.uri === '/cache') r.headers['x-cache'] = { value: 'Hit' };
  if (r.uri === '/host') r.headers.host = { value: 'elsewhere.example' };
  if (r.uri === '/length') r.headers['content-length'] = { value: '1' };
  if (r.uri === '/upper') r.headers['X-Upper'] = { value: '1' };
  if (r.uri === '/method') r.method = 'POST';
  if (r.uri === '/nothing') return undefined;
  return r;
}`);
    const before = originHits.length;
    for (const path of ['/xfp', '/cache', '/host', '/length', '/upper', '/method', '/nothing']) {
      const reply = await send(url, 'GET', path);
      assert.equal(reply.status, 502, path);
      assert.equal(reply.headers['x-cache'], 'Error from cloudfront');
      assert.match(reply.body.toString(), /<H1>502 ERROR<\/H1>/);
    }
    assert.equal(originHits.length, before);
    assert.equal((await send(url, 'GET', '/fine')).status, 200, logs.join('\n'));
    assert.ok(logs.some((l) => l.includes('x-forwarded-proto is disallowed')));
  });

  it('answers 503 when the function throws, runs too long or uses what CloudFront lacks', async () => {
    const { url, logs } = await emulator(`import cf from 'cloudfront';
async function handler(event) {
  var uri = event.request.uri;
  if (uri === '/throw') throw new Error('boom');
  if (uri === '/loop') { while (true) {} }
  if (uri === '/after-await') { await cf.kvs().exists('plain'); while (true) {} }
  if (uri === '/origin') cf.selectRequestOriginById('nowhere');
  if (uri === '/update') cf.updateRequestOrigin({ domainName: 'example.com' });
  if (uri === '/never') await new Promise(function () {});
  return event.request;
}`);
    for (const path of ['/throw', '/loop', '/after-await', '/origin', '/update', '/never']) {
      const started = Date.now();
      const reply = await send(url, 'GET', path);
      assert.equal(reply.status, 503, path);
      assert.match(reply.body.toString(), /The CloudFront function associated with the CloudFront distribution is invalid or could not run/);
      assert.ok(Date.now() - started < 5000, `${path} answered promptly`);
    }
    assert.ok(logs.some((l) => l.includes('boom')));
    assert.ok(logs.some((l) => l.includes('timed out')));
    assert.ok(logs.some((l) => l.includes('updateRequestOrigin() is not supported')));
  });

  it('refuses a function over 10 KB and one that does not compile', async () => {
    const big = await emulator(`function handler(event) { return event.request; }\n// ${'x'.repeat(10 * 1024)}\n`);
    assert.equal((await send(big.url, 'GET', '/')).status, 503);
    assert.ok(big.logs.some((l) => l.includes('over CloudFront') && l.includes('10240')));
    const broken = await emulator(`import other from 'fs';\nfunction handler(event) { return event.request; }`);
    assert.equal((await send(broken.url, 'GET', '/')).status, 503);
    assert.ok(broken.logs.some((l) => l.includes('does not compile')));
  });

  it('gives the function the KeyValueStore, crypto, Buffer and nothing else', async () => {
    const { url } = await emulator(`import cf from 'cloudfront';
import crypto from 'crypto';
const kvs = cf.kvs();
async function handler(event) {
  var out = {};
  out.s = await kvs.get('plain');
  out.j = (await kvs.get('obj', { format: 'json' })).n;
  out.b = Buffer.from(await kvs.get('plain', { format: 'bytes' })).toString('hex');
  out.exists = [await kvs.exists('plain'), await kvs.exists('nope')];
  try { await kvs.get('nope'); out.missing = 'no error'; } catch (e) { out.missing = 'threw'; }
  out.keys = (await cf.kvs('kvs-id').meta()).keyCount;
  out.hmac = crypto.createHmac('sha256', Buffer.from('a2V5', 'base64')).update('msg').digest('base64url');
  out.hash = require('crypto').createHash('sha256').update('abc').digest('hex');
  out.buffer = Buffer.isBuffer(crypto.createHash('sha1').update('abc').digest());
  try { crypto.createHash('sha512'); out.sha512 = 'allowed'; } catch (e) { out.sha512 = 'refused'; }
  out.globals = [typeof process, typeof setTimeout, typeof fetch, typeof require, typeof console.log];
  try { eval('1'); out.eval = 'allowed'; } catch (e) { out.eval = 'refused'; }
  try { require('fs'); out.fs = 'allowed'; } catch (e) { out.fs = 'refused'; }
  return { statusCode: 200, body: JSON.stringify(out) };
}`);
    const reply = await send(url, 'GET', '/');
    assert.equal(reply.status, 200, reply.body.toString());
    assert.deepEqual(JSON.parse(reply.body.toString()), {
      s: 'hello',
      j: 42,
      b: Buffer.from('hello').toString('hex'),
      exists: [true, false],
      missing: 'threw',
      keys: 2,
      hmac: createHmac('sha256', 'key').update('msg').digest('base64url'),
      hash: sha256('abc'),
      buffer: true,
      sha512: 'refused',
      globals: ['undefined', 'undefined', 'undefined', 'function', 'function'],
      eval: 'refused',
      fs: 'refused',
    });
    await writeFile(kvsFile, JSON.stringify({ data: [{ key: 'plain', value: 'changed!' }, { key: 'obj', value: '{"n":7}' }] }));
    const again = JSON.parse((await send(url, 'GET', '/')).body.toString());
    assert.equal(again.s, 'changed!', 'the KeyValueStore file is read again when it changes');
    assert.equal(again.j, 7);
  });

  it('answers 413 and closes the connection for an over-long URL or request', async () => {
    const { url } = await emulator(FORWARD);
    const before = originHits.length;
    const longUrl = await send(url, 'GET', `/${'a'.repeat(8200)}`);
    assert.equal(longUrl.status, 413);
    assert.equal(longUrl.headers.connection, 'close');
    assert.match(longUrl.body.toString(), /<H1>413 ERROR<\/H1>/);
    const bigHeaders = await send(url, 'GET', '/', { 'x-big': 'b'.repeat(21_000) });
    assert.equal(bigHeaders.status, 413);
    assert.equal(originHits.length, before);
    // Just under the URL quota still passes: https:// + host + path.
    const host = new URL(url).host;
    const fits = await send(url, 'GET', `/${'a'.repeat(8192 - `https://${host}/`.length)}`);
    assert.equal(fits.status, 200);
  });

  it('answers 403 to a GET with a body, 504 when the origin does not answer in time', async () => {
    const { url } = await emulator(FORWARD, { limits: { originResponseTimeoutMs: 300 } });
    assert.equal((await send(url, 'GET', '/with-body', { 'content-type': 'text/plain', 'content-length': '4' }, Buffer.from('body'))).status, 403);
    const started = Date.now();
    const slow = await send(url, 'GET', '/slow');
    assert.equal(slow.status, 504);
    assert.ok(Date.now() - started < 5000);
  });

  const BLOBS = `import cf from 'cloudfront';
function handler(event) {
  var request = event.request;
  if (event.context.eventType === 'viewer-response') {
    if (request.method === 'PUT' && request.uri.indexOf('/incoming/') === 0 && event.response.statusCode === 200) {
      event.response.statusCode = 201;
      event.response.headers['x-repository'] = request.headers['x-amz-meta-berth-repository'];
    }
    return event.response;
  }
  if (request.uri.indexOf('/put/') === 0) {
    request.uri = '/incoming/' + request.uri.slice('/put/'.length);
    request.querystring = {};
    delete request.headers.authorization;
    request.headers['x-amz-meta-berth-repository'] = { value: 'library/alpine' };
    cf.selectRequestOriginById('blobs');
  } else if (request.uri.indexOf('/get/') === 0) {
    request.uri = '/' + request.uri.slice('/get/'.length);
    cf.selectRequestOriginById('blobs');
  }
  return request;
}
`;

  it('streams a PUT to the S3 origin, signed with SigV4 like Origin Access Control', async () => {
    const { url } = await emulator(BLOBS, {}, fakeS3Url);
    const body = randomBytes(8 * MiB);
    const reached = new Promise<void>((resolve) => (firstS3Bytes = resolve));
    const target = new URL(url);
    // The second half is sent only once S3 has seen bytes: a buffering emulator would deadlock here.
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        {
          hostname: target.hostname,
          port: target.port,
          method: 'PUT',
          path: '/put/streamed?digest=sha256%3Aabc',
          headers: { 'content-length': String(body.length), authorization: 'Bearer viewer-token', 'x-amz-date': '19700101T000000Z' },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, message: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, MiB));
      void reached.then(() => req.end(body.subarray(MiB)));
    });
    firstS3Bytes = () => undefined;
    assert.equal(reply.status, 201, reply.body.toString());
    assert.equal(reply.headers['x-repository'], 'library/alpine');
    const hit = fakeS3Hits[fakeS3Hits.length - 1];
    assert.equal(hit.method, 'PUT');
    assert.equal(hit.url, `/${BUCKET}/incoming/streamed`);
    assert.equal(hit.headers.host, new URL(fakeS3Url).host);
    assert.equal(hit.bytes, body.length);
    assert.equal(hit.sha256, sha256(body));
    assert.equal(hit.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
    assert.ok(hit.signature.ok, `SigV4 signature checks out: ${String(hit.headers.authorization)}`);
    assert.equal(hit.signature.region, REGION);
    for (const h of ['host', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-meta-berth-repository']) assert.ok(hit.signature.signedHeaders.includes(h), h);
    assert.notEqual(hit.headers['x-amz-date'], '19700101T000000Z', 'the signer sets its own date');
    assert.equal(hit.headers['x-amz-meta-berth-repository'], 'library/alpine');
    assert.match(String(hit.headers.authorization), /^AWS4-HMAC-SHA256 Credential=S3RVER\//, "OAC replaces the viewer's Authorization");
  });

  it('stores a 20 MiB PUT in the embedded S3 and notifies onObjectCreated', async () => {
    let notified: (record: S3EventRecord) => void = () => undefined;
    const notification = new Promise<S3EventRecord>((resolve) => (notified = resolve));
    const { url } = await emulator(BLOBS, { onObjectCreated: (record) => notified(record) });
    const body = randomBytes(20 * MiB);
    const digest = sha256(body);
    const uuid = randomUUID();
    const reply = await send(url, 'PUT', `/put/sha256-${digest}/${uuid}`, { 'content-type': 'application/octet-stream' }, body);
    assert.equal(reply.status, 201, reply.body.toString());
    const record = await notification;
    assert.equal(record.eventVersion, '2.1');
    assert.equal(record.eventSource, 'aws:s3');
    assert.equal(record.eventName, 'ObjectCreated:Put');
    assert.equal(record.awsRegion, REGION);
    assert.ok(!Number.isNaN(Date.parse(record.eventTime)));
    assert.equal(record.s3.bucket.name, BUCKET);
    assert.equal(record.s3.bucket.arn, `arn:aws:s3:::${BUCKET}`);
    assert.equal(record.s3.object.key, `incoming/sha256-${digest}/${uuid}`);
    assert.equal(record.s3.object.size, body.length);
    assert.equal(record.s3.object.eTag, createHash('md5').update(body).digest('hex'));
    assert.match(record.s3.object.sequencer, /^[0-9A-F]{18,}$/);

    const back = await send(url, 'GET', `/get/incoming/sha256-${digest}/${uuid}`);
    assert.equal(back.status, 200);
    assert.equal(sha256(back.body), digest, 'the object S3 holds is the one sent');
    const missing = await send(url, 'GET', `/get/incoming/nothing-here`);
    assert.equal(missing.status, 404);
  });

  it('writes script and event keys the way CloudFront and S3 do', () => {
    const script = toScript("import cf from 'cloudfront';\nimport crypto from \"crypto\";\nconst x = 1;\n");
    assert.equal(script, "var cf = __require(\"cloudfront\");\nvar crypto = __require(\"crypto\");\nconst x = 1;\n");
    assert.equal(s3EventKey('incoming/sha256-ab/0f'), 'incoming/sha256-ab/0f');
    assert.equal(s3EventKey('incoming/a b=c+d(1)'), 'incoming/a+b%3Dc%2Bd%281%29');
  });
});
