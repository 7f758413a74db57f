/**
 * The signed Lambda Invoke and Secrets Manager GetSecretValue calls (functions/storage/aws-calls.ts)
 * against a local HTTP server that checks each request the way AWS does: the wire format of the
 * operation and a SigV4 signature recomputed here from the AWS specification (canonical request →
 * string to sign → HMAC chain; https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html),
 * independently of the signer the code uses. Error answers become AwsCallError with AWS's type;
 * throttling, 5xx and network errors are tried 3 times in all, as the SDKs' standard retry mode.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { AwsCallError, getSecretString, invokeAsync } from '../../functions/storage/aws-calls.js';
import { SecretsManagerReader, SecretUnavailable, SecretUnreadable } from '../../functions/storage/secrets.js';

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'session-token' };
const caller = { region: 'eu-west-1', credentials: async () => credentials };

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  signatureValid: boolean;
  service: string;
}
let seen: Seen[] = [];
let answer: (request: Seen) => { status: number; headers?: Record<string, string>; body: string };
let server: Server;

/** SigV4 as AWS specifies it, for a request without a query string. */
function expectedSignature(method: string, path: string, headers: IncomingMessage['headers'], body: string): { valid: boolean; service: string } {
  const auth = String(headers.authorization);
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!match) return { valid: false, service: '' };
  const [, keyId, day, region, service, signedHeaders, signature] = match;
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return { valid: false, service };
  const canonicalHeaders = names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join('');
  const canonicalUri = path.split('/').map((s) => encodeURIComponent(s)).join('/');
  const canonical = [method, canonicalUri, '', canonicalHeaders, signedHeaders, createHash('sha256').update(body).digest('hex')].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', headers['x-amz-date'], scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = createHmac('sha256', `AWS4${credentials.secretAccessKey}`).update(day).digest();
  for (const part of [region, service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const valid = keyId === credentials.accessKeyId && region === caller.region && createHmac('sha256', key).update(toSign).digest('hex') === signature;
  return { valid, service };
}

before(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { valid, service } = expectedSignature(request.method!, request.url!, request.headers, body);
      const entry = { method: request.method!, url: request.url!, headers: request.headers, body, signatureValid: valid, service };
      seen.push(entry);
      const out = answer(entry);
      response.writeHead(out.status, out.headers).end(out.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.env.AWS_ENDPOINT_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  delete process.env.AWS_ENDPOINT_URL;
  server.close();
});

test('invokeAsync: POST …/invocations, InvocationType Event, the payload as JSON, signed for lambda', async () => {
  seen = [];
  answer = () => ({ status: 202, body: '' });
  await invokeAsync(caller, 'berth-dev-verify', { uploadId: 'u-1' });
  assert.equal(seen.length, 1);
  const [request] = seen;
  assert.equal(request.method, 'POST');
  assert.equal(request.url, '/2015-03-31/functions/berth-dev-verify/invocations');
  assert.equal(request.headers['x-amz-invocation-type'], 'Event');
  assert.equal(request.headers['x-amz-security-token'], 'session-token');
  assert.deepEqual(JSON.parse(request.body), { uploadId: 'u-1' });
  assert.equal(request.service, 'lambda');
  assert.ok(request.signatureValid, 'SigV4 signature matches the one computed from the specification');
});

test('getSecretString: AWS JSON 1.1 GetSecretValue, signed for secretsmanager; the SecretString back', async () => {
  seen = [];
  answer = () => ({ status: 200, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ ARN: 'arn:x', Name: 'k', SecretString: 's3cr3t', VersionId: 'v' }) });
  assert.equal(await getSecretString(caller, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth-dev/token-key'), 's3cr3t');
  const [request] = seen;
  assert.equal(request.url, '/');
  assert.equal(request.headers['x-amz-target'], 'secretsmanager.GetSecretValue');
  assert.equal(request.headers['content-type'], 'application/x-amz-json-1.1');
  assert.deepEqual(JSON.parse(request.body), { SecretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth-dev/token-key' });
  assert.equal(request.service, 'secretsmanager');
  assert.ok(request.signatureValid);
});

test('error answers: the AWS error type and message, from __type or X-Amzn-ErrorType', async () => {
  seen = [];
  answer = () => ({ status: 400, body: JSON.stringify({ __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." }) });
  await assert.rejects(getSecretString(caller, 'gone'), (error: unknown) => {
    assert.ok(error instanceof AwsCallError);
    assert.equal(error.name, 'ResourceNotFoundException');
    assert.equal(error.status, 400);
    assert.match(error.message, /can't find the specified secret/);
    return true;
  });
  answer = () => ({ status: 429, headers: { 'x-amzn-errortype': 'TooManyRequestsException:http://internal.amazon.com/coral/com.amazonaws.awsgirafferoutingservice/' }, body: JSON.stringify({ Type: 'User', message: 'Rate exceeded' }) });
  assert.equal(seen.length, 1, 'a permanent error is not retried');
  seen = [];
  await assert.rejects(invokeAsync(caller, 'berth-dev-verify', {}), { name: 'TooManyRequestsException', status: 429 });
  assert.equal(seen.length, 3, 'throttling: 3 attempts, then the error');
});

test('transient errors (5xx, throttling) are retried, each attempt signed anew, until one passes', async () => {
  seen = [];
  const failures = [
    { status: 503, body: JSON.stringify({ __type: 'ServiceUnavailable', message: 'try later' }) },
    { status: 400, body: JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }) },
  ];
  answer = () => failures.shift() ?? { status: 200, body: JSON.stringify({ SecretString: 'after retries' }) };
  assert.equal(await getSecretString(caller, 'k'), 'after retries');
  assert.equal(seen.length, 3);
  assert.ok(seen.every((request) => request.signatureValid));
});

test('no answer at all (connection refused): NetworkingError, status 0, after 3 attempts', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = `http://127.0.0.1:${port}`;
  try {
    await assert.rejects(getSecretString(caller, 'k'), { name: 'NetworkingError', status: 0 });
  } finally {
    delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
  }
});

test('SecretsManagerReader: permanent errors make the secret unreadable, transient ones say to retry', async () => {
  const reader = new SecretsManagerReader(caller);
  for (const type of ['ResourceNotFoundException', 'AccessDeniedException', 'DecryptionFailure']) {
    seen = [];
    answer = () => ({ status: 400, body: JSON.stringify({ __type: type, message: 'no' }) });
    await assert.rejects(reader.read('arn:x'), (error: unknown) => error instanceof SecretUnreadable && error.message.includes(type));
    assert.equal(seen.length, 1, `${type} is not retried`);
  }
  seen = [];
  answer = () => ({ status: 500, body: JSON.stringify({ __type: 'InternalServiceError', message: 'oops' }) });
  await assert.rejects(reader.read('arn:x'), (error: unknown) => error instanceof SecretUnavailable && /retry/.test(error.message));
  assert.equal(seen.length, 3);
});
