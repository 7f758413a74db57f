/** Token authentication through the local server with BERTH_AUTH=required. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../functions/auth/passwords.js';
import type { Account } from '../../functions/auth/accounts.js';
import { startRegistry, type TestRegistry, metadataOf, type Metadata } from '../support/stack.js';

let stack: TestRegistry;
let store: Metadata;

async function addAccount(name: string, password: string, role: Account['role'], repositories: string[] = []): Promise<void> {
  await store.putAccount({ name, kind: 'user', role, repositories, passwordHash: await hashPassword(password), credentialVersion: 1, createdAt: 0 });
}

before(async () => {
  stack = await startRegistry({ BERTH_AUTH: 'required' });
  store = metadataOf(stack.backends);
  await addAccount('admin', 'admin-password', 'admin');
  await addAccount('bob', 'bob-password', 'writer', ['bob/*']);
  await addAccount('locked', 'locked-password', 'reader');
});
after(() => stack.stop());

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function token(scopes: string[], authorization?: string, extra = ''): Promise<Response> {
  const query = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&');
  return fetch(`${stack.url}/token?service=${stack.host}&${query}${extra}`, { headers: authorization ? { authorization } : {} });
}

async function bearer(scopes: string[], user?: string, password?: string): Promise<string> {
  const response = await token(scopes, user ? basic(user, password!) : undefined);
  assert.equal(response.status, 200);
  return `Bearer ${((await response.json()) as { token: string }).token}`;
}

async function pushBlob(repository: string, authorization: string): Promise<string> {
  const bytes = randomBytes(64);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const response = await fetch(`${stack.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { authorization }, body: bytes });
  assert.equal(response.status, 201);
  return digest;
}

describe('challenge and token service', () => {
  test('a request without credentials gets 401 with a Bearer challenge built from the request host', async () => {
    for (const path of ['/v2/', '/v2/bob/app/tags/list']) {
      const response = await fetch(`${stack.url}${path}`);
      assert.equal(response.status, 401);
      const challenge = response.headers.get('www-authenticate')!;
      assert.match(challenge, new RegExp(`^Bearer realm="http://${stack.host}/token",service="${stack.host}"`));
      assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0].code, 'UNAUTHORIZED');
    }
    const scoped = await fetch(`${stack.url}/v2/bob/app/tags/list`);
    assert.match(scoped.headers.get('www-authenticate')!, /scope="repository:bob\/app:pull"/);
    const mount = await fetch(`${stack.url}/v2/bob/app/blobs/uploads/?mount=sha256:${'0'.repeat(64)}&from=bob/base`, { method: 'POST' });
    assert.match(mount.headers.get('www-authenticate')!, /scope="repository:bob\/app:push repository:bob\/base:pull"/, 'a mount asks for pull on its source');
  });

  test('GET /token: a token, its lifetime and time of issue; a refresh token only offline', async () => {
    const response = await token(['repository:bob/app:pull,push'], basic('bob', 'bob-password'));
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 200);
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.ok(!Number.isNaN(Date.parse(body.issued_at as string)));
    assert.equal(body.refresh_token, undefined);
    const offline = (await (await token([], basic('bob', 'bob-password'), '&offline_token=true&client_id=docker')).json()) as Record<string, string>;
    assert.ok(offline.refresh_token);
  });

  test('POST /token: password and refresh_token grants; a refresh token dies with a password change', async () => {
    const form = (fields: Record<string, string>) => fetch(`${stack.url}/token`, { method: 'POST', body: new URLSearchParams(fields) });
    const password = await form({ grant_type: 'password', username: 'bob', password: 'bob-password', scope: 'repository:bob/app:pull', service: stack.host, access_type: 'offline', client_id: 'containerd' });
    assert.equal(password.status, 200);
    const { refresh_token: refresh } = (await password.json()) as { refresh_token: string };
    const refreshed = await form({ grant_type: 'refresh_token', refresh_token: refresh, scope: 'repository:bob/app:pull', service: stack.host });
    assert.equal(refreshed.status, 200);
    const { access_token: access } = (await refreshed.json()) as { access_token: string };
    assert.equal((await fetch(`${stack.url}/v2/bob/app/tags/list`, { headers: { authorization: `Bearer ${access}` } })).status, 404);
    const bob = (await store.getAccount('bob'))!;
    await store.putAccount({ ...bob, credentialVersion: bob.credentialVersion + 1 });
    const stale = await form({ grant_type: 'refresh_token', refresh_token: refresh, service: stack.host });
    assert.equal(stale.status, 401);
    assert.equal((await form({ grant_type: 'password', username: 'bob', password: 'nope', service: stack.host })).status, 401);
    assert.equal((await form({ grant_type: 'magic' })).status, 400);
  });

  test('Basic credentials sent directly on /v2/ requests work; wrong ones are refused', async () => {
    assert.equal((await fetch(`${stack.url}/v2/`, { headers: { authorization: basic('admin', 'admin-password') } })).status, 200);
    const wrong = await fetch(`${stack.url}/v2/`, { headers: { authorization: basic('admin', 'wrong-password') } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate')!, /^Bearer realm=/);
  });
});

describe('permissions', () => {
  test('the token grants the intersection of what was asked and what is allowed', async () => {
    const response = await token(['repository:bob/app:pull,push,delete', 'repository:admin/x:pull'], basic('bob', 'bob-password'));
    const { token: jwt } = (await response.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'bob/app', actions: ['pull', 'push'] }]);
  });

  test('a token for one repository is refused on another, on the catalog, and for DELETE without delete', async () => {
    const auth = await bearer(['repository:bob/app:pull,push'], 'bob', 'bob-password');
    const digest = await pushBlob('bob/app', auth);
    const other = await fetch(`${stack.url}/v2/bob/other/blobs/${digest}`, { method: 'HEAD', headers: { authorization: auth } });
    assert.equal(other.status, 401);
    assert.match(other.headers.get('www-authenticate')!, /error="insufficient_scope"/);
    assert.equal((await fetch(`${stack.url}/v2/_catalog`, { headers: { authorization: auth } })).status, 401);
    const deleted = await fetch(`${stack.url}/v2/bob/app/blobs/${digest}`, { method: 'DELETE', headers: { authorization: auth } });
    assert.equal(deleted.status, 401);
    assert.equal((await fetch(`${stack.url}/v2/bob/app/blobs/${digest}`, { method: 'HEAD', headers: { authorization: auth } })).status, 200, 'still there');
  });

  test('cross-repository mount from a repository the caller cannot pull: 202, never 201', async () => {
    const admin = await bearer(['repository:secret/x:pull,push'], 'admin', 'admin-password');
    const digest = await pushBlob('secret/x', admin);
    const bob = await bearer(['repository:bob/app:pull,push', 'repository:secret/x:pull'], 'bob', 'bob-password');
    const mount = await fetch(`${stack.url}/v2/bob/app/blobs/uploads/?mount=${digest}&from=secret/x`, { method: 'POST', headers: { authorization: bob } });
    assert.equal(mount.status, 202);
    assert.equal((await fetch(`${stack.url}/v2/bob/app/blobs/${digest}`, { method: 'HEAD', headers: { authorization: bob } })).status, 404);
    const allowed = await bearer(['repository:secret/y:pull,push', 'repository:secret/x:pull'], 'admin', 'admin-password');
    const adminMount = await fetch(`${stack.url}/v2/secret/y/blobs/uploads/?mount=${digest}&from=secret/x`, { method: 'POST', headers: { authorization: allowed } });
    assert.equal(adminMount.status, 201);
  });

  test('private by default; public repositories can be pulled anonymously; listings show only what may be pulled', async () => {
    const admin = await bearer(['repository:pub/app:pull,push', 'repository:priv/app:pull,push'], 'admin', 'admin-password');
    const publicDigest = await pushBlob('pub/app', admin);
    const privateDigest = await pushBlob('priv/app', admin);
    await store.setVisibility('pub/app', 'public');
    const anonymous = await bearer(['repository:pub/app:pull,push', 'repository:priv/app:pull', 'registry:catalog:*']);
    const claims = JSON.parse(Buffer.from(anonymous.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access, [
      { type: 'repository', name: 'pub/app', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    assert.equal((await fetch(`${stack.url}/v2/pub/app/blobs/${publicDigest}`, { method: 'HEAD', headers: { authorization: anonymous } })).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/priv/app/blobs/${privateDigest}`, { method: 'HEAD', headers: { authorization: anonymous } })).status, 401);
    const catalog = (await (await fetch(`${stack.url}/v2/_catalog`, { headers: { authorization: anonymous } })).json()) as { repositories: string[] };
    assert.ok(catalog.repositories.includes('pub/app'));
    assert.ok(!catalog.repositories.includes('priv/app'));
    const bobCatalog = await bearer(['registry:catalog:*'], 'bob', 'bob-password');
    const bobs = (await (await fetch(`${stack.url}/v2/_catalog`, { headers: { authorization: bobCatalog } })).json()) as { repositories: string[] };
    assert.ok(bobs.repositories.every((name) => name === 'pub/app' || name.startsWith('bob/')), JSON.stringify(bobs));
  });
});

describe('credential safety', () => {
  test('no user enumeration: same status and message, and scrypt runs for unknown users too', async () => {
    const time = async (user: string) => {
      const started = performance.now();
      const response = await token([], basic(user, 'not-the-password'));
      return { ms: performance.now() - started, status: response.status, body: await response.text() };
    };
    // Fastest of three each, alternating: a busy machine only ever adds time, so the minimum shows
    // the work itself (one scrypt either way) rather than the load of the moment.
    const runs: { unknown: Awaited<ReturnType<typeof time>>; known: Awaited<ReturnType<typeof time>> }[] = [];
    for (let i = 0; i < 3; i++) runs.push({ unknown: await time('nobody-here'), known: await time('admin') });
    await store.clearLoginFailures('admin');
    for (const { unknown, known } of runs) {
      assert.equal(unknown.status, 401);
      assert.equal(known.status, 401);
      assert.equal(unknown.body, known.body);
    }
    const unknownMs = Math.min(...runs.map((r) => r.unknown.ms));
    const knownMs = Math.min(...runs.map((r) => r.known.ms));
    assert.ok(unknownMs > knownMs / 3 && unknownMs < knownMs * 3, `unknown ${unknownMs} ms vs known ${knownMs} ms`);
  });

  test('repeated failed logins are slowed: 429 with Retry-After, even for the right password', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await token([], basic('locked', `guess-${i}`))).status, 401);
    const blocked = await token([], basic('locked', 'locked-password'));
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers.get('retry-after')) > 0);
    assert.equal((await blocked.json() as { errors: { code: string }[] }).errors[0].code, 'TOOMANYREQUESTS');
  });

  test('robots are not locked out by failed logins (their tokens cannot be guessed)', async () => {
    await store.putAccount({ name: 'robot$ci', kind: 'robot', role: 'writer', repositories: [], passwordHash: await hashPassword('robot-token-value'), credentialVersion: 1, createdAt: 0 });
    for (let i = 0; i < 7; i++) assert.equal((await token([], basic('robot$ci', `guess-${i}`))).status, 401);
    assert.equal((await token([], basic('robot$ci', 'robot-token-value'))).status, 200);
  });

  test('names no account can have are refused without touching storage (no 5xx)', async () => {
    for (const name of ['x'.repeat(3000), 'UPPER', 'a/b', '']) {
      assert.equal((await token([], basic(name, 'whatever'))).status, 401, name.slice(0, 10));
    }
    assert.equal((await fetch(`${stack.url}/v2/`, { headers: { authorization: 'Foo bar' } })).status, 401, 'an unknown scheme is no anonymous pass');
  });

  test('the catalog cursor never names a repository the caller may not pull', async () => {
    const admin = await bearer(['repository:zz-secret/a:push', 'repository:zz-secret/b:push', 'repository:zz-public/c:push'], 'admin', 'admin-password');
    for (const name of ['zz-secret/a', 'zz-secret/b', 'zz-public/c']) await pushBlob(name, admin);
    await store.setVisibility('zz-public/c', 'public');
    const anonymous = await bearer(['registry:catalog:*']);
    let last = 'zz';
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${stack.url}/v2/_catalog?n=1&last=${last}`, { headers: { authorization: anonymous } });
      const { repositories } = (await response.json()) as { repositories: string[] };
      seen.push(...repositories);
      const link = response.headers.get('link');
      assert.ok(!link?.includes('secret'), link ?? '');
      if (!link) break;
      last = new URL(link.slice(1, link.indexOf('>')), stack.url).searchParams.get('last')!;
    }
    assert.deepEqual(seen, ['zz-public/c']);
  });

  test('credentials and tokens never reach the request log', async () => {
    const auth = await bearer(['repository:bob/app:pull'], 'bob', 'bob-password');
    await fetch(`${stack.url}/v2/bob/app/tags/list`, { headers: { authorization: auth } });
    const log = stack.log.join('\n');
    assert.ok(stack.log.length > 10);
    for (const secret of ['bob-password', 'admin-password', auth.slice(7, 40), 'Basic ', 'Bearer ']) assert.ok(!log.includes(secret), secret);
  });
});
