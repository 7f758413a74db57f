/**
 * The bundled `api` function (dist/api/index.mjs, as Lambda runs it) answers payload 2.0 events
 * against real back ends: a chunked upload with base64 bodies, a manifest, and a blob GET that
 * redirects to a presigned URL which serves the exact bytes.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { EMULATOR_CREDENTIALS } from '../../infra/local/emulators.js';
import { startBackends, type Backends } from '../support/stack.js';

type Handler = (event: APIGatewayProxyEventV2, context: unknown) => Promise<APIGatewayProxyStructuredResultV2>;

let backends: Backends;
let handler: Handler;
before(async () => {
  // The bundled handlers store blobs in S3, as deployed.
  backends = await startBackends({ BERTH_BLOB_DELIVERY: 'redirect' }, { blobs: 's3' });
  const { config } = backends;
  Object.assign(process.env, {
    BERTH_TABLE: config.dynamo.table,
    BERTH_BUCKET: config.s3.bucket,
    BERTH_DYNAMODB_ENDPOINT: config.dynamo.endpoint,
    BERTH_S3_ENDPOINT: config.s3.endpoint,
    BERTH_BLOB_DELIVERY: 'redirect',
    BERTH_AUTH: 'off',
    BERTH_TOKEN_KEY: Buffer.alloc(32, 7).toString('base64'),
    AWS_ACCESS_KEY_ID: config.s3.credentials?.accessKeyId ?? EMULATOR_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: config.s3.credentials?.secretAccessKey ?? EMULATOR_CREDENTIALS.secretAccessKey,
  });
  ({ handler } = await import(pathToFileURL(resolve('dist/api/index.mjs')).href));
});
after(() => backends.stop());

function event(method: string, path: string, options: { query?: string; headers?: Record<string, string>; body?: Buffer } = {}) {
  return {
    version: '2.0',
    rawPath: path,
    rawQueryString: options.query ?? '',
    headers: options.headers ?? {},
    body: options.body?.toString('base64'),
    isBase64Encoded: options.body !== undefined,
    requestContext: { http: { method } },
  } as unknown as APIGatewayProxyEventV2;
}

const invoke = (e: APIGatewayProxyEventV2) => handler(e, {});

test('bundled handler: chunked upload, manifest, redirected blob GET', async () => {
  assert.equal((await invoke(event('GET', '/v2/'))).statusCode, 200);
  const blob = randomBytes(3000);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const started = await invoke(event('POST', '/v2/lambda/test/blobs/uploads/'));
  assert.equal(started.statusCode, 202);
  const location = String(started.headers!.Location);
  const first = await invoke(event('PATCH', location, { headers: { 'content-range': '0-999' }, body: blob.subarray(0, 1000) }));
  assert.equal(first.statusCode, 202);
  assert.equal(first.headers!.Range, '0-999');
  const done = await invoke(event('PUT', location, { query: `digest=${digest}`, headers: { 'content-range': '1000-2999' }, body: blob.subarray(1000) }));
  assert.equal(done.statusCode, 201);
  assert.equal(done.headers!['Docker-Content-Digest'], digest);

  const got = await invoke(event('GET', `/v2/lambda/test/blobs/${digest}`));
  assert.equal(got.statusCode, 307);
  const redirected = await fetch(String(got.headers!.Location));
  assert.deepEqual(Buffer.from(await redirected.arrayBuffer()), blob);

  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: blob.length },
    layers: [],
  }));
  const put = await invoke(event('PUT', '/v2/lambda/test/manifests/v1', { headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest }));
  assert.equal(put.statusCode, 201);
  const fetched = await invoke(event('GET', '/v2/lambda/test/manifests/v1'));
  assert.equal(fetched.statusCode, 200);
  assert.equal(fetched.isBase64Encoded, true);
  assert.deepEqual(Buffer.from(fetched.body!, 'base64'), manifest);
});

test('bundled handler: a state change is one audit line on stdout, by Powertools\' Logger, with API Gateway\'s request id and source address', async () => {
  const lines: string[] = [];
  const write = process.stdout.write;
  // The test runner reports on stdout too: its output passes, the function's JSON lines are kept.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    if (typeof chunk === 'string' && chunk.startsWith('{"level"')) return lines.push(chunk) > 0;
    return write.call(process.stdout, chunk, ...rest);
  }) as typeof process.stdout.write;
  let answer: APIGatewayProxyStructuredResultV2;
  try {
    const e = event('DELETE', '/v2/lambda/test/manifests/v1');
    Object.assign(e.requestContext, { requestId: 'Zq1AbCdEfGhIjKl=', http: { method: 'DELETE', sourceIp: '203.0.113.9' } });
    answer = await invoke(e);
  } finally {
    process.stdout.write = write;
  }
  assert.equal(answer.statusCode, 202);
  const records = lines.map((line) => JSON.parse(line));
  assert.equal(records.length, 1, lines.join(''));
  const { time, timestamp, ...rest } = records[0];
  assert.ok(Math.abs(Date.parse(time) - Date.now()) < 60_000 && Date.parse(timestamp) > 0);
  assert.deepEqual(rest, {
    level: 'INFO',
    message: 'audit',
    service: 'berth',
    sampling_rate: 0,
    requestId: 'Zq1AbCdEfGhIjKl=',
    sourceIp: '203.0.113.9',
    action: 'tag.delete',
    repository: 'lambda/test',
    reference: 'v1',
    status: 202,
    bytes: 0,
  });
});

test('bundled handler: bad input is OCI error JSON, not a crash', async () => {
  const bad = await invoke(event('GET', '/v2/UPPER/manifests/latest'));
  assert.equal(bad.statusCode, 400);
  assert.equal(JSON.parse(Buffer.from(bad.body!, 'base64').toString()).errors[0].code, 'NAME_INVALID');
});

/** Pushes an image of one config blob, no layers, as `repository:tag` through the handler; returns the config's digest. */
async function pushTagged(repository: string, tag: string): Promise<string> {
  const config = Buffer.from(JSON.stringify({ repository, tag }));
  const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  assert.equal((await invoke(event('POST', `/v2/${repository}/blobs/uploads/`, { query: `digest=${digest}`, body: config }))).statusCode, 201);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length },
    layers: [],
  }));
  const headers = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
  assert.equal((await invoke(event('PUT', `/v2/${repository}/manifests/${tag}`, { headers, body: manifest }))).statusCode, 201);
  return digest;
}

test('bundled gc function: collects what the api function left unreferenced and answers the report', async () => {
  const digest = await pushTagged('lambda/gc', 'tmp');
  assert.equal((await invoke(event('DELETE', '/v2/lambda/gc/manifests/tmp'))).statusCode, 202);
  const gc = (await import(pathToFileURL(resolve('dist/gc/index.mjs')).href)) as { handler: (event: unknown, context: unknown) => Promise<Record<string, any>> };
  const context = { getRemainingTimeInMillis: () => 900_000, functionName: 'berth-test-gc' };
  const report = await gc.handler({ graceMs: 0 }, context);
  assert.equal(report.finished, true);
  assert.ok(report.deleted.manifests >= 1 && report.deleted.blobs >= 1, JSON.stringify(report.deleted));
  assert.ok(report.requests.dynamodb > 0 && report.requests.s3 > 0);
  assert.equal((await invoke(event('GET', `/v2/lambda/gc/blobs/${digest}`))).statusCode, 404);
});

test('bundled handler: the web interface at / (pages, a form post with its CSRF token, the pushed repository)', async () => {
  await pushTagged('lambda/web', 'v1');
  const home = await invoke(event('GET', '/', { headers: { host: 'registry.example.com' } }));
  assert.equal(home.statusCode, 200);
  assert.match(String(home.headers!['Content-Type']), /^text\/html/);
  assert.match(String(home.headers!['Content-Security-Policy']), /frame-ancestors 'none'/);
  const html = Buffer.from(String(home.body), 'base64').toString('utf8');
  assert.match(html, /href="\/r\/lambda\/web"/);
  const [cookie] = home.cookies ?? [];
  assert.match(cookie, /^berth_csrf=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Secure/, 'Secure over HTTPS (API Gateway)');
  const csrf = /^berth_csrf=([^;]+)/.exec(cookie)![1];
  const form = (token: string) => Buffer.from(new URLSearchParams({ csrf: token, reference: 'v1' }).toString());
  const headers = { host: 'registry.example.com', 'content-type': 'application/x-www-form-urlencoded' };
  // Payload 2.0 carries the Cookie header as `cookies`.
  const post = (token: string) => invoke({ ...event('POST', '/r/lambda/web/-/delete', { headers, body: form(token) }), cookies: [`berth_csrf=${csrf}`] });
  assert.equal((await post('wrong')).statusCode, 403);
  const deleted = await post(csrf);
  assert.equal(deleted.statusCode, 303, 'BERTH_AUTH=off: everyone administers');
  assert.equal((await invoke(event('GET', '/v2/lambda/web/manifests/v1'))).statusCode, 404);
  const script = await invoke(event('GET', '/-/app.js'));
  assert.equal(script.statusCode, 200);
  assert.equal(script.headers!['Content-Type'], 'text/javascript; charset=utf-8');
});
