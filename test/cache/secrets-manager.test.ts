/**
 * Cache rules whose credentials are in Secrets Manager (as deployed): a registry over the embedded
 * back ends without a local cache key reads them with signed GetSecretValue calls from a local
 * server standing in for Secrets Manager. A secret that is gone or denied is a rule to add again
 * (502); Secrets Manager failing (5xx, after 3 attempts) is a 503 with Retry-After that says to retry.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { metadataOf, startRegistry, type TestRegistry } from '../support/stack.js';

let registry: TestRegistry;
let upstream: Server;
let secretsManager: Server;
let answer: { status: number; body: string };
let calls = 0;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  // An upstream that wants Basic credentials: Berth must read the rule's secret to answer.
  upstream = createServer((_request, response) => void response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="up"' }).end());
  secretsManager = createServer((request, response) => {
    calls++;
    request.resume().on('end', () => response.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1' }).end(answer.body));
  });
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = `http://127.0.0.1:${await listen(secretsManager)}`;
  const upstreamPort = await listen(upstream);
  registry = await startRegistry();
  await metadataOf(registry.backends).putCacheRule({ prefix: 'sm', upstream: `http://127.0.0.1:${upstreamPort}`, secret: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:berth-dev/cache/sm', username: 'u', ttlSeconds: 300, createdAt: Date.now() });
});
after(async () => {
  delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
  await registry?.stop();
  upstream.close();
  secretsManager.close();
});

async function pull(): Promise<{ status: number; retryAfter: string | null; code?: string; message?: string }> {
  const response = await fetch(`${registry.url}/v2/sm/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const body = (await response.json()) as { errors?: Array<{ code: string; message: string }> };
  return { status: response.status, retryAfter: response.headers.get('retry-after'), code: body.errors?.[0]?.code, message: body.errors?.[0]?.message };
}

test('Secrets Manager failing: 503 with Retry-After, saying to retry (not to add the rule again), after 3 attempts', async () => {
  answer = { status: 500, body: JSON.stringify({ __type: 'InternalServiceError', message: 'oops' }) };
  calls = 0;
  const failed = await pull();
  assert.equal(failed.status, 503, JSON.stringify(failed));
  assert.ok(failed.retryAfter, 'Retry-After');
  assert.equal(failed.code, 'MANIFEST_UNKNOWN');
  assert.match(failed.message ?? '', /cannot be read just now: Secrets Manager is not answering \(InternalServiceError\); retry in a few seconds/);
  assert.doesNotMatch(failed.message ?? '', /add the rule again/);
  assert.equal(calls, 3);
});

test('a secret that is gone: 502, add the rule again', async () => {
  answer = { status: 400, body: JSON.stringify({ __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." }) };
  calls = 0;
  const failed = await pull();
  assert.equal(failed.status, 502, JSON.stringify(failed));
  assert.equal(failed.message, 'the credentials of cache rule "sm" cannot be read: Secrets Manager did not give the secret: ResourceNotFoundException; add the rule again with npx berth cache add sm …');
  assert.equal(calls, 1);
});
