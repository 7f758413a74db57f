/**
 * The emulated API Gateway HTTP API + Lambda (infra/local/lambda-emulator.ts), behaviour by
 * behaviour, with stand-in handlers: AWS's own answers for over-limit requests, function errors,
 * both timeouts and over-limit responses; cold starts; the payload 2.0 event; buffered responses.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { AWS_LIMITS, createLambdaEmulator, maxChunkBytes, type EmulatorLimits, type LambdaHandler } from '../../infra/local/lambda-emulator.js';

const MiB = 1024 * 1024;
const servers: Array<{ close(): void; closeAllConnections(): void }> = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

interface Emulated {
  url: string;
  loads: number;
  events: APIGatewayProxyEventV2[];
  log: string[];
  environments(): number;
}

/** An emulator on a loopback port whose every environment runs `handler`. */
async function emulate(handler: LambdaHandler, limits: Partial<EmulatorLimits> = {}, loadDelayMs = 0): Promise<Emulated> {
  const state: Emulated = { url: '', loads: 0, events: [], log: [], environments: () => 0 };
  const server = createLambdaEmulator({
    limits,
    log: (line) => state.log.push(line),
    loadHandler: async () => {
      state.loads++;
      await new Promise((r) => setTimeout(r, loadDelayMs));
      return async (event, context) => {
        state.events.push(event);
        return handler(event, context);
      };
    },
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.environments = () => server.environments();
  return state;
}

const ok: LambdaHandler = async () => ({ statusCode: 202, headers: { 'Content-Length': '0' }, body: '' });

/** Asserts the exact answer API Gateway itself gives (its JSON message, its request id header). */
async function assertGatewayAnswer(response: Response, status: number, message: string): Promise<void> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('content-type'), 'application/json');
  const body = await response.text();
  assert.equal(body, JSON.stringify({ message }));
  assert.equal(response.headers.get('content-length'), String(body.length));
  assert.match(response.headers.get('apigw-requestid') ?? '', /^[A-Za-z0-9]{14}=$/);
}

describe('request limits (answered by API Gateway, the function never runs)', () => {
  test('a body over the HTTP API payload quota of 10 MiB: 413 {"message":"Request Entity Too Large"}', async () => {
    const e = await emulate(ok);
    const response = await fetch(`${e.url}/v2/a/blobs/uploads/x`, { method: 'PATCH', body: randomBytes(10 * MiB + 1) });
    await assertGatewayAnswer(response, 413, 'Request Entity Too Large');
    assert.equal(e.events.length, 0);
    assert.match(e.log.join('\n'), /HTTP API payload quota/);
  });

  test('an event of 6 MiB or more (base64 body): 413 {"message":"Request Entity Too Large"}', async () => {
    const e = await emulate(ok);
    // 4.5 MiB of bytes are exactly 6 MiB of base64: with the rest of the event, over the limit.
    const response = await fetch(`${e.url}/v2/a/blobs/uploads/x`, { method: 'PATCH', body: randomBytes(4.5 * MiB) });
    await assertGatewayAnswer(response, 413, 'Request Entity Too Large');
    assert.equal(e.events.length, 0);
    assert.match(e.log.join('\n'), /Lambda: event of \d+ bytes, must be smaller than 6291456/);
  });

  test('the advertised chunk size passes, even with 8 KiB of headers', async () => {
    const e = await emulate(ok);
    const chunk = randomBytes(maxChunkBytes());
    assert.equal(maxChunkBytes(), 4_669_437);
    const headers: Record<string, string> = { 'content-range': `0-${chunk.length - 1}`, 'content-type': 'application/octet-stream' };
    for (let i = 0; i < 8; i++) headers[`x-padding-${i}`] = 'p'.repeat(1000);
    const response = await fetch(`${e.url}/v2/a/blobs/uploads/x`, { method: 'PATCH', headers, body: chunk });
    assert.equal(response.status, 202);
    const event = e.events[0];
    assert.equal(event.isBase64Encoded, true);
    assert.deepEqual(Buffer.from(event.body!, 'base64'), chunk);
    assert.ok(Buffer.byteLength(JSON.stringify(event)) < AWS_LIMITS.lambdaRequestBytes);
  });
});

describe('function errors, timeouts and responses', () => {
  test('a handler that throws: 500 {"message":"Internal Server Error"}', async () => {
    const e = await emulate(async () => {
      throw new Error('boom');
    });
    await assertGatewayAnswer(await fetch(`${e.url}/v2/`), 500, 'Internal Server Error');
  });

  test('past the function timeout: 500, and the environment is replaced (next request cold-starts)', async () => {
    let slow = true;
    const e = await emulate(async () => {
      if (slow) await new Promise((r) => setTimeout(r, 600));
      return { statusCode: 200, body: 'ok' };
    }, { functionTimeoutMs: 200, integrationTimeoutMs: 2000 });
    await assertGatewayAnswer(await fetch(`${e.url}/v2/`), 500, 'Internal Server Error');
    assert.match(e.log.join('\n'), /Task timed out after 0\.20 seconds/);
    slow = false;
    const next = await fetch(`${e.url}/v2/`);
    assert.equal(next.status, 200);
    assert.equal(e.loads, 2, 'a new execution environment');
  });

  test('no answer within the integration timeout: 503 {"message":"Service Unavailable"} (33 bytes)', async () => {
    const e = await emulate(async () => {
      await new Promise((r) => setTimeout(r, 800));
      return { statusCode: 200, body: 'late' };
    }, { functionTimeoutMs: 2000, integrationTimeoutMs: 300 });
    const started = Date.now();
    const response = await fetch(`${e.url}/v2/`);
    await assertGatewayAnswer(response, 503, 'Service Unavailable');
    assert.equal(response.headers.get('content-length'), '33');
    assert.ok(Date.now() - started < 700, 'answered at the timeout, not when the function ends');
  });

  test('the integration timeout counts the cold start', async () => {
    const e = await emulate(ok, { functionTimeoutMs: 2000, integrationTimeoutMs: 300 }, 500);
    await assertGatewayAnswer(await fetch(`${e.url}/v2/`), 503, 'Service Unavailable');
  });

  test('a response over 6,291,556 bytes of JSON: 500; at the limit it passes', async () => {
    const overhead = JSON.stringify({ statusCode: 200, body: '' }).length;
    let size = AWS_LIMITS.lambdaResponseBytes - overhead;
    const e = await emulate(async () => ({ statusCode: 200, body: 'A'.repeat(size) }));
    const at = await fetch(`${e.url}/v2/big`);
    assert.equal(at.status, 200);
    assert.equal((await at.text()).length, size);
    size += 1;
    await assertGatewayAnswer(await fetch(`${e.url}/v2/big`), 500, 'Internal Server Error');
    assert.match(e.log.join('\n'), /Response payload size exceeded maximum allowed payload size \(6291556 bytes\)/);
  });

  test('responses are buffered results: status, headers, cookies, base64 bodies; HEAD keeps the length', async () => {
    const bytes = randomBytes(3000);
    const e = await emulate(async (event) => ({
      statusCode: 200,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length), 'Docker-Content-Digest': 'sha256:x' },
      cookies: ['a=1', 'b=2'],
      body: event.requestContext.http.method === 'HEAD' ? '' : bytes.toString('base64'),
      isBase64Encoded: true,
    }));
    const got = await fetch(`${e.url}/v2/a/blobs/sha256:x`);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
    assert.equal(got.headers.get('docker-content-digest'), 'sha256:x');
    assert.deepEqual(got.headers.getSetCookie(), ['a=1', 'b=2']);
    const head = await fetch(`${e.url}/v2/a/blobs/sha256:x`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), String(bytes.length));
  });
});

describe('execution environments and events', () => {
  test('cold start on the first request, warm after; a concurrent request starts another environment', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const e = await emulate(async (event) => {
      if (event.rawPath === '/v2/wait') await gate;
      return { statusCode: 200, body: 'ok' };
    });
    assert.equal(e.loads, 0, 'nothing imported before the first request');
    await fetch(`${e.url}/v2/`);
    assert.equal(e.loads, 1);
    assert.match(e.log[0], /cold start \d+ms \(environment 1\)/);
    await fetch(`${e.url}/v2/`);
    assert.equal(e.loads, 1, 'the warm environment is reused');
    assert.doesNotMatch(e.log[1], /cold start/);
    const waiting = fetch(`${e.url}/v2/wait`);
    await new Promise((r) => setTimeout(r, 100));
    await fetch(`${e.url}/v2/`);
    assert.equal(e.loads, 2, 'one environment serves one request at a time');
    release();
    assert.equal((await waiting).status, 200);
    assert.equal(e.environments(), 2);
  });

  test('payload 2.0 events: routes, raw path and query, lower-case joined headers, cookies, text and binary bodies', async () => {
    const e = await emulate(ok);
    await fetch(`${e.url}/v2/team/app/tags/list?n=10&last=a&n=20`, { headers: { 'X-Custom': 'A', Cookie: 'c1=1; c2=2' } });
    await fetch(`${e.url}/v2/`);
    await fetch(`${e.url}/token?service=x`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password' });
    await fetch(`${e.url}/v2/a/manifests/v1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: '{"schemaVersion":2}' });
    const [tags, root, token, manifest] = e.events;
    assert.equal(tags.version, '2.0');
    assert.equal(tags.routeKey, 'ANY /v2/{proxy+}');
    assert.deepEqual(tags.pathParameters, { proxy: 'team/app/tags/list' });
    assert.equal(tags.rawPath, '/v2/team/app/tags/list');
    assert.equal(tags.rawQueryString, 'n=10&last=a&n=20');
    assert.deepEqual(tags.queryStringParameters, { n: '10,20', last: 'a' });
    assert.equal(tags.headers['x-custom'], 'A');
    assert.equal(tags.headers.cookie, undefined);
    assert.deepEqual(tags.cookies, ['c1=1', 'c2=2']);
    assert.equal(tags.headers['x-forwarded-proto'], 'http');
    assert.equal(tags.requestContext.http.method, 'GET');
    assert.equal(tags.requestContext.stage, '$default');
    assert.equal(tags.body, undefined);
    assert.equal(tags.isBase64Encoded, false);
    assert.equal(root.routeKey, '$default', '/v2/ (trailing slash) matches no path route');
    assert.equal(token.routeKey, 'POST /token');
    assert.equal(token.body, 'grant_type=password');
    assert.equal(token.isBase64Encoded, false);
    assert.equal(manifest.body, '{"schemaVersion":2}');
    assert.equal(manifest.isBase64Encoded, false);
  });
});
