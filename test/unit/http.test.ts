import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegistryError } from '../../functions/core/errors.js';
import { requestFromEvent, resultFromResponse } from '../../functions/http/lambda.js';
import { linkHeader, MAX_PAGE, parseLimit } from '../../functions/http/pagination.js';
import { errorResponse } from '../../functions/http/router.js';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';

test('n: absent, zero, clamped; negative and garbage refused', () => {
  assert.equal(parseLimit(null), MAX_PAGE);
  assert.equal(parseLimit('0'), 0);
  assert.equal(parseLimit('99999999999'), MAX_PAGE);
  assert.equal(parseLimit('99999999999999999999999999'), MAX_PAGE);
  for (const n of ['-1', 'abc', '1.5', '', '1e3']) {
    assert.throws(() => parseLimit(n), (e: RegistryError) => e.code === 'UNSUPPORTED' && e.status === 400, n);
  }
});

test('Link header only when another page follows', () => {
  assert.deepEqual(linkHeader('/v2/a/tags/list', 2, { items: ['x', 'y'] }), {});
  assert.deepEqual(linkHeader('/v2/a/tags/list', 2, { items: ['x', 'y'], last: 'y' }), { Link: '</v2/a/tags/list?n=2&last=y>; rel="next"' });
});

test('errors render as OCI JSON; unexpected errors reveal nothing', async () => {
  const known = errorResponse(new RegistryError('BLOB_UNKNOWN', 'gone', { digest: 'x' }));
  assert.equal(known.status, 404);
  assert.deepEqual(JSON.parse(String(known.body)), { errors: [{ code: 'BLOB_UNKNOWN', message: 'gone', detail: { digest: 'x' } }] });
  const unknown = errorResponse(new Error('secret table name in stack'));
  assert.equal(unknown.status, 500);
  assert.ok(!String(unknown.body).includes('secret'));
});

test('API Gateway payload 2.0: base64 bodies in and out', async () => {
  const event = {
    rawPath: '/v2/a/blobs/uploads/x',
    rawQueryString: 'digest=sha256%3Aab',
    headers: { 'Content-Range': '0-2' },
    body: Buffer.from([1, 2, 3]).toString('base64'),
    isBase64Encoded: true,
    requestContext: { http: { method: 'patch', sourceIp: '203.0.113.7' } },
  } as unknown as APIGatewayProxyEventV2;
  const request = requestFromEvent(event);
  assert.equal(request.method, 'PATCH');
  assert.equal(request.sourceIp, '203.0.113.7', 'the client address API Gateway saw, not a header');
  assert.equal(request.query.get('digest'), 'sha256:ab');
  assert.equal(request.headers['content-range'], '0-2');
  const chunks = [];
  for await (const chunk of request.body.chunks) chunks.push(chunk);
  assert.deepEqual(Buffer.concat(chunks), Buffer.from([1, 2, 3]));
  const result = await resultFromResponse({ status: 200, headers: {}, body: Buffer.from('hi') });
  assert.equal(result.isBase64Encoded, true);
  assert.equal(Buffer.from(result.body!, 'base64').toString(), 'hi');
});
