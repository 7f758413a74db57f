/** Pull-through cache pieces without a network: upstream URLs, auth challenges, sealed credentials. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { upstreamBase } from '../../functions/core/cache-rules.js';
import { RegistryError } from '../../functions/core/errors.js';
import { parseChallenge } from '../../functions/core/upstream.js';
import { SealedSecrets, SecretUnreadable } from '../../functions/storage/secrets.js';

test('upstream URLs: the registry itself, Docker Hub by any of its names, nothing with credentials or a path', () => {
  assert.equal(upstreamBase('https://ghcr.io'), 'https://ghcr.io');
  assert.equal(upstreamBase('ghcr.io/'), 'https://ghcr.io');
  assert.equal(upstreamBase('http://127.0.0.1:5000'), 'http://127.0.0.1:5000');
  for (const hub of ['docker.io', 'https://index.docker.io', 'hub.docker.com', 'https://registry-1.docker.io']) assert.equal(upstreamBase(hub), 'https://registry-1.docker.io');
  for (const bad of ['https://u:p@ghcr.io', 'https://u@ghcr.io', 'ftp://ghcr.io', 'https://ghcr.io/v2/', 'https://ghcr.io?x=1', 'https://ghcr.io/#a', 'https://']) {
    assert.throws(() => upstreamBase(bad), (error: unknown) => error instanceof RegistryError && error.status === 400, bad);
  }
});

test('WWW-Authenticate challenges: scheme and parameters, quoted or not', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
  });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.deepEqual(parseChallenge('bearer realm=http://r/token, service=x'), { scheme: 'bearer', params: { realm: 'http://r/token', service: 'x' } });
  assert.deepEqual(parseChallenge('Bearer realm="a\\"b"'), { scheme: 'bearer', params: { realm: 'a"b' } });
  assert.equal(parseChallenge(null), undefined);
});

test('sealed credentials: read back with the key, not with another; tampering detected', async () => {
  const secrets = new SealedSecrets(randomBytes(32));
  const reference = await secrets.write('hub', '{"username":"u","password":"p@ss"}');
  assert.match(reference, /^sealed:/);
  assert.doesNotMatch(reference, /p@ss/);
  assert.notEqual(await secrets.write('hub', 'same'), await secrets.write('hub', 'same'), 'a fresh nonce each time');
  assert.equal(await secrets.read(reference), '{"username":"u","password":"p@ss"}');
  const unreadable = (message: RegExp) => (error: unknown) => error instanceof SecretUnreadable && message.test(error.message);
  await assert.rejects(new SealedSecrets(randomBytes(32)).read(reference), unreadable(/do not open with this server's cache key/));
  const bytes = Buffer.from(reference.slice('sealed:'.length), 'base64');
  bytes[bytes.length - 1] ^= 1;
  await assert.rejects(secrets.read(`sealed:${bytes.toString('base64')}`), unreadable(/sealed under another key, or altered/));
  await assert.rejects(secrets.read('sealed:AAAA'), unreadable(/do not open/), 'cut short');
  await assert.rejects(secrets.read('arn:aws:secretsmanager:us-east-1:1:secret:x'), unreadable(/Secrets Manager/));
  assert.throws(() => new SealedSecrets(randomBytes(16)), unreadable(/must be 32 bytes \(base64\), not 16/));
});
