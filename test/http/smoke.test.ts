import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/stack.js';

let stack: TestRegistry;
before(async () => (stack = await startRegistry()));
after(() => stack.stop());

test('GET /v2/ answers 200 with the API version header', async () => {
  const response = await fetch(`${stack.url}/v2/`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
});
