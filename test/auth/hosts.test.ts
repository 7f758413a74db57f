/**
 * The registry's host names (BERTH_HOSTS, set on every deployment to the stack's addresses): a
 * token's audience is the host a request names, so only configured ones are served; without the
 * setting (a local server reached by whatever name) any host is.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { decodeJwt } from 'jose';
import { hashPassword } from '../../functions/auth/passwords.js';
import { ConfigError, loadConfig } from '../../functions/config.js';
import { Cleanup, RegistryProcess } from '../e2e/helpers.js';
import { startRegistry, type TestRegistry, metadataOf } from '../support/stack.js';

const HOSTS = 'registry.example.test,berth.example.test:8443';
let configured: TestRegistry;
let open: TestRegistry;
const cleanup = new Cleanup();

before(async () => {
  [configured, open] = await Promise.all([
    startRegistry({ BERTH_AUTH: 'required', BERTH_HOSTS: HOSTS }),
    startRegistry({ BERTH_AUTH: 'required' }),
  ]);
  for (const stack of [configured, open]) {
    const store = metadataOf(stack.backends);
    await store.putAccount({ name: 'alice', kind: 'user', role: 'writer', repositories: [], passwordHash: await hashPassword('alice-password'), credentialVersion: 1, createdAt: 0 });
  }
});
after(async () => {
  await cleanup.run();
  await Promise.all([configured.stop(), open.stop()]);
});

const ALICE = `Basic ${Buffer.from('alice:alice-password').toString('base64')}`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A GET with the `Host` header given (fetch cannot set it). */
function get(stack: TestRegistry, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: stack.port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject).end();
  });
}

const audience = (answer: Answer) => decodeJwt((JSON.parse(answer.body) as { token: string }).token).aud;

test('without BERTH_HOSTS any host is served, and is the token audience (a local server)', async () => {
  const answer = await get(open, '/token?scope=repository:team/app:pull', { host: 'evil.example', authorization: ALICE });
  assert.equal(answer.status, 200, answer.body);
  assert.equal(audience(answer), 'evil.example');
});

test('with BERTH_HOSTS, a token for another Host or X-Forwarded-Host is refused with 421 and a clear error', async () => {
  const expected = {
    errors: [
      {
        code: 'DENIED',
        message: 'this registry does not serve the host name evil.example: tokens are issued and accepted for its configured host names only (BERTH_HOSTS)',
        detail: null,
      },
    ],
  };
  const namings: Record<string, string>[] = [{ host: 'evil.example' }, { host: 'registry.example.test', 'x-forwarded-host': 'evil.example' }];
  for (const headers of namings) {
    const answer = await get(configured, '/token?scope=repository:team/app:pull', { ...headers, authorization: ALICE });
    assert.equal(answer.status, 421, JSON.stringify(headers));
    assert.deepEqual(JSON.parse(answer.body), expected);
    // No challenge names the foreign host as the realm to send passwords to.
    const challenge = await get(configured, '/v2/', headers);
    assert.equal(challenge.status, 421);
    assert.equal(challenge.headers['www-authenticate'], undefined);
    // Nor do the web interface's pages (a sign-in form, CSRF checks built from the Host).
    assert.equal((await get(configured, '/login', headers)).status, 421);
  }
  // A port the configured name does not have is another address.
  assert.equal((await get(configured, '/v2/', { host: 'berth.example.test:9999' })).status, 421);
});

test('with BERTH_HOSTS, configured hosts get tokens for themselves, accepted there and nowhere else', async () => {
  const issued = await get(configured, '/token?scope=repository:team/app:pull', { host: 'Registry.Example.Test:443', authorization: ALICE });
  assert.equal(issued.status, 200, issued.body);
  assert.equal(audience(issued), 'Registry.Example.Test:443');
  const viaFrontDoor = await get(configured, '/token?scope=repository:team/app:pull', { host: 'abc.execute-api.example', 'x-forwarded-host': 'berth.example.test:8443', authorization: ALICE });
  assert.equal(audience(viaFrontDoor), 'berth.example.test:8443');
  const token = `Bearer ${(JSON.parse(viaFrontDoor.body) as { token: string }).token}`;
  assert.equal((await get(configured, '/v2/', { host: 'berth.example.test:8443', authorization: token })).status, 200);
  const challenge = await get(configured, '/v2/', { host: 'registry.example.test' });
  assert.equal(challenge.status, 401);
  assert.match(String(challenge.headers['www-authenticate']), /^Bearer realm="http:\/\/registry\.example\.test\/token",service="registry\.example\.test"/);
  assert.equal((await get(configured, '/v2/', { host: 'registry.example.test', authorization: token })).status, 401, 'audience berth.example.test:8443 only');
});

test('BERTH_HOSTS that is not a list of host names is an invalid configuration', () => {
  assert.throws(() => loadConfig({ BERTH_AUTH: 'off', BERTH_HOSTS: 'registry.example.test,https://x/' }), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /^invalid configuration: BERTH_HOSTS\.1: a host name, or name:port$/);
    return true;
  });
  assert.deepEqual(loadConfig({ BERTH_AUTH: 'off', BERTH_HOSTS: ' A.example , [::1]:5000 ' }).hosts, ['a.example', '[::1]:5000']);
});

test('npm start told its host names still answers to localhost and 127.0.0.1, and refuses others', async () => {
  const registry = await RegistryProcess.start(cleanup, { env: { BERTH_HOSTS: 'registry.example.test' } });
  for (const host of ['localhost', '127.0.0.1', '[::1]', 'registry.example.test'].map((name) => `${name}:${registry.port}`)) {
    const answer = await new Promise<number>((resolve, reject) =>
      request({ host: '127.0.0.1', port: registry.port, path: '/v2/', headers: { host } }, (res) => resolve(res.resume().statusCode!)).on('error', reject).end(),
    );
    assert.equal(answer, 200, host);
  }
  const refused = await new Promise<number>((resolve, reject) =>
    request({ host: '127.0.0.1', port: registry.port, path: '/v2/', headers: { host: 'evil.example' } }, (res) => resolve(res.resume().statusCode!)).on('error', reject).end(),
  );
  assert.equal(refused, 421);
});
