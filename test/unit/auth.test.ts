import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base64url, SignJWT, UnsecuredJWT } from 'jose';
import { allows, parseScopes } from '../../functions/auth/access.js';
import { matchesAny, repositoryActions, type Account } from '../../functions/auth/accounts.js';
import { hashPassword, verifyPassword } from '../../functions/auth/passwords.js';
import { sourceKey } from '../../functions/auth/service.js';
import { TokenService } from '../../functions/auth/tokens.js';
import { RegistryError } from '../../functions/core/errors.js';

const key = new Uint8Array(32).fill(1);
const tokens = new TokenService(async () => key);
const unauthorized = (e: RegistryError) => e.code === 'UNAUTHORIZED';

test('scopes: several per value, host:port prefixes, unknown parts dropped', () => {
  assert.deepEqual(parseScopes(['repository:team/app:pull,push repository:localhost:5000/x/y:pull', 'registry:catalog:*']), [
    { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
    { type: 'repository', name: 'x/y', actions: ['pull'] },
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);
  assert.deepEqual(parseScopes(['repository:reg.example.com/a:pull'], 'reg.example.com'), [{ type: 'repository', name: 'a', actions: ['pull'] }]);
  assert.deepEqual(parseScopes(['repository(plugin):a:pull']), [{ type: 'repository', name: 'a', actions: ['pull'] }]);
  assert.deepEqual(parseScopes(['repository:a:fly', 'repository:A:pull', 'nonsense', 'user:a:pull', 'repository:../x:pull']), []);
  assert.deepEqual(parseScopes(['repository:a:pull', 'repository:a:push']), [{ type: 'repository', name: 'a', actions: ['pull', 'push'] }]);
});

test('grants: an action is allowed only on its own resource', () => {
  const grants = parseScopes(['repository:a:pull', 'repository:b:*']);
  assert.ok(allows(grants, 'repository', 'a', 'pull'));
  assert.ok(!allows(grants, 'repository', 'a', 'push'));
  assert.ok(!allows(grants, 'repository', 'c', 'pull'));
  assert.ok(allows(grants, 'repository', 'b', 'delete'));
});

test('roles and patterns', () => {
  const account = (role: Account['role'], repositories: string[] = []): Account => ({
    name: 'u', kind: 'user', role, repositories, passwordHash: '', credentialVersion: 1, createdAt: 0,
  });
  assert.ok(matchesAny(['team/*'], 'team/a/b'));
  assert.ok(!matchesAny(['team/*'], 'teams/a'));
  assert.ok(!matchesAny(['team/*'], 'team'));
  assert.ok(!matchesAny(['a.b'], 'axb'), 'dots are literal');
  assert.deepEqual(repositoryActions(account('reader'), 'x', 'private'), ['pull']);
  assert.deepEqual(repositoryActions(account('writer', ['team/*']), 'team/x', 'private'), ['pull', 'push']);
  assert.deepEqual(repositoryActions(account('admin', ['team/*']), 'other', 'private'), []);
  assert.deepEqual(repositoryActions(account('admin'), 'other', 'private'), ['pull', 'push', 'delete']);
  assert.deepEqual(repositoryActions(undefined, 'x', 'public'), ['pull']);
  assert.deepEqual(repositoryActions(undefined, 'x', 'private'), []);
});

test('passwords: scrypt hashes verify, others do not, a missing account never does', async () => {
  const hash = await hashPassword('correct horse');
  assert.match(hash, /^scrypt\$32768\$8\$1\$/);
  assert.ok(await verifyPassword('correct horse', hash));
  assert.ok(!(await verifyPassword('correct horsf', hash)));
  assert.ok(!(await verifyPassword('anything', undefined)));
});

test('tokens: round trip with audience, access and subject', async () => {
  const { token, expiresIn } = await tokens.issueAccess('alice', 'reg:5000', [{ type: 'repository', name: 'a', actions: ['pull'] }]);
  assert.equal(expiresIn, 300);
  assert.deepEqual(await tokens.verifyAccess(token, 'reg:5000'), { subject: 'alice', access: [{ type: 'repository', name: 'a', actions: ['pull'] }] });
  await assert.rejects(tokens.verifyAccess(token, 'other:5000'), unauthorized, 'another audience');
  const refresh = await tokens.issueRefresh('alice', 'reg:5000', 3);
  await assert.rejects(tokens.verifyAccess(refresh.token, 'reg:5000'), unauthorized, 'a refresh token is no access token');
  assert.deepEqual(await tokens.verifyRefresh(refresh.token, 'reg:5000'), { subject: 'alice', credentialVersion: 3 });
});

test('tokens: alg none, foreign keys, tampering and expiry are refused', async () => {
  const claims = { use: 'access', access: [{ type: 'repository', name: 'a', actions: ['*'] }] };
  const base = <T extends SignJWT | UnsecuredJWT>(jwt: T): T => jwt.setIssuer('berth').setAudience('reg').setSubject('eve').setIssuedAt().setExpirationTime('5m') as T;
  const none = base(new UnsecuredJWT(claims)).encode();
  await assert.rejects(tokens.verifyAccess(none, 'reg'), unauthorized, 'alg none');
  const otherKey = new Uint8Array(32).fill(2);
  const foreign = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'HS256', kid: 'mine' }).sign(otherKey);
  await assert.rejects(tokens.verifyAccess(foreign, 'reg'), unauthorized, 'signed with a foreign key');
  const { privateKey, publicKey } = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const jwk = await crypto.subtle.exportKey('jwk', publicKey);
  const embedded = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'ES256', jwk: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! } }).sign(privateKey);
  await assert.rejects(tokens.verifyAccess(embedded, 'reg'), unauthorized, 'a key in the jwk header');
  const good = (await tokens.issueAccess('bob', 'reg', [{ type: 'repository', name: 'a', actions: ['pull'] }])).token;
  const [header, payload, signature] = good.split('.');
  const forged = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
  forged.access[0].actions = ['*'];
  const tampered = [header, base64url.encode(JSON.stringify(forged)), signature].join('.');
  await assert.rejects(tokens.verifyAccess(tampered, 'reg'), unauthorized, 'tampered payload');
  const expired = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('berth').setAudience('reg').setSubject('eve').setIssuedAt(1).setExpirationTime(60).sign(key);
  await assert.rejects(tokens.verifyAccess(expired, 'reg'), unauthorized, 'expired');
  const early = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'HS256' }).setNotBefore('10m').sign(key);
  await assert.rejects(tokens.verifyAccess(early, 'reg'), unauthorized, 'not yet valid');
  await assert.rejects(tokens.verifyAccess('garbage', 'reg'), unauthorized);
});

test('login attempts count per IPv4 address and per IPv6 /64; anything else is one "unknown" source', () => {
  assert.equal(sourceKey('203.0.113.7'), '203.0.113.7');
  assert.equal(sourceKey('::ffff:203.0.113.7'), '203.0.113.7', 'IPv4-mapped IPv6 (a dual-stack socket) is the IPv4 address');
  assert.equal(sourceKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2::9'), '2001:db8:1:2::/64', 'one host rotating through its /64 stays one source');
  assert.equal(sourceKey('2001:DB8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  for (const odd of ['', 'localhost', '1.2.3', 'x'.repeat(300)]) assert.equal(sourceKey(odd), 'unknown', odd.slice(0, 10));
});

test('sealed positions: read back only by the deployment that sealed them, never the plain value in them', async () => {
  const sealed = await tokens.seal('secret/repository');
  assert.ok(!sealed.includes('secret') && /^[A-Za-z0-9_-]+$/.test(sealed), sealed);
  assert.equal(await tokens.open(sealed), 'secret/repository');
  assert.notEqual(await tokens.seal('secret/repository'), sealed, 'a fresh IV each time');
  const other = new TokenService(async () => new Uint8Array(32).fill(2));
  assert.equal(await other.open(sealed), undefined, 'another deployment');
  const bytes = Buffer.from(sealed, 'base64url');
  bytes[14] ^= 1;
  assert.equal(await tokens.open(bytes.toString('base64url')), undefined, 'tampered');
  for (const junk of ['', 'x', Buffer.from('secret/repository').toString('base64url')]) assert.equal(await tokens.open(junk), undefined, junk);
});
