/**
 * Behind the front door API Gateway sees CloudFront's address, not the client's. The login throttle
 * counts failures per account and address, so the function forwards the viewer's address, and the
 * API believes it only with the distribution's proof (an origin custom header). Through
 * `BERTH_EMULATE_LAMBDA=1 npm start` with logins required: a stranger's wrong guesses from one
 * address do not lock out the account's owner at another, and a viewer cannot name its own address.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { MAX_LOGIN_FAILURES } from '../../functions/auth/service.js';
import { ROOT, startEmulatedRegistry, type EmulatedRegistry } from '../emulation/helpers.js';

let registry: EmulatedRegistry;
before(async () => {
  registry = await startEmulatedRegistry({ BERTH_AUTH: 'required' });
  const added = spawnSync(process.execPath, ['cli/berth.mjs', 'user', 'add', 'owner', '--password-stdin', '--role', 'reader'], {
    cwd: ROOT,
    env: { ...process.env, BERTH_DATA_DIR: registry.dataDir },
    input: 'owner-password\n',
    encoding: 'utf8',
  });
  assert.equal(added.status, 0, added.stderr);
});
after(() => registry?.stop());

/** `GET /token` with Basic credentials through the emulated CloudFront, from local address `from`. */
function login(password: string, from: string, headers: Record<string, string> = {}): Promise<number> {
  const port = Number(new URL(registry.url).port);
  const authorization = `Basic ${Buffer.from(`owner:${password}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: `/token?service=${registry.host}`, localAddress: from, agent: false, headers: { ...headers, authorization } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode!));
    })
      .on('error', reject)
      .end();
  });
}

test('wrong guesses from one viewer lock that viewer only; a forged address header changes nothing', { timeout: 120_000 }, async () => {
  for (let i = 0; i < MAX_LOGIN_FAILURES; i++) assert.equal(await login(`guess-${i}`, '127.0.0.2'), 401, registry.tail());
  assert.equal(await login('owner-password', '127.0.0.2'), 429, 'the stranger\'s address is locked');
  // Claiming another address, or the distribution's proof, does not get the stranger out.
  const forged = { 'x-berth-viewer-address': '127.0.0.9', 'x-berth-origin': 'guess' };
  assert.equal(await login('owner-password', '127.0.0.2', forged), 429, 'a viewer cannot name its own address');
  // The owner, at another address, is not locked out (before: every viewer was CloudFront's one address).
  assert.equal(await login('owner-password', '127.0.0.1'), 200, registry.tail());
});
