/**
 * Ending sessions and replacing robot tokens with `npx berth` (a child process on the stack's data
 * folder) against a running registry with BERTH_AUTH=required.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../functions/auth/passwords.js';
import { berth } from '../support/cli.js';
import { startRegistry, type TestRegistry, metadataOf, type Metadata } from '../support/stack.js';

let stack: TestRegistry;
let store: Metadata;

before(async () => {
  stack = await startRegistry({ BERTH_AUTH: 'required' });
  store = metadataOf(stack.backends);
});
after(() => stack.stop());

const cli = (...args: string[]) => berth(args, { dataDir: stack.backends.dataDir });
const form = (fields: Record<string, string>) => fetch(`${stack.url}/token`, { method: 'POST', body: new URLSearchParams({ service: stack.host, ...fields }) });

/** An offline login (containerd's form): the refresh token of a new session. */
async function session(username: string, password: string): Promise<string> {
  const response = await form({ grant_type: 'password', username, password, access_type: 'offline', client_id: 'test' });
  assert.equal(response.status, 200);
  return ((await response.json()) as { refresh_token: string }).refresh_token;
}

const refresh = async (token: string) => (await form({ grant_type: 'refresh_token', refresh_token: token })).status;
const login = async (username: string, password: string) => (await form({ grant_type: 'password', username, password })).status;

test('user revoke: every refresh token of the user stops working; logging in again works', async () => {
  await store.putAccount({ name: 'dev', kind: 'user', role: 'reader', repositories: [], passwordHash: await hashPassword('dev-password'), credentialVersion: 1, createdAt: 0 });
  const sessions = [await session('dev', 'dev-password'), await session('dev', 'dev-password')];
  for (const token of sessions) assert.equal(await refresh(token), 200);
  const revoked = await cli('user', 'revoke', 'dev');
  assert.equal(revoked.code, 0, revoked.output);
  assert.match(revoked.stdout, /^sessions of dev revoked: its refresh tokens no longer work/);
  for (const token of sessions) assert.equal(await refresh(token), 401, 'a session from before the revocation');
  assert.equal(await refresh(await session('dev', 'dev-password')), 200, 'a new session');
  const unknown = await cli('user', 'revoke', 'nobody');
  assert.equal(unknown.code, 2, unknown.output);
  assert.equal(unknown.stderr, 'berth: no such user: nobody\n');
});

test('robot rotate: the new token is printed once; the old token and its sessions stop working', async () => {
  const added = await cli('robot', 'add', 'builder', '--role', 'writer', '--repo', 'ci/*');
  assert.equal(added.code, 0, added.output);
  assert.equal(added.stderr, '', 'no warning: this registry requires logins');
  const old = /token:\s+(\S+)/.exec(added.stdout)![1];
  const oldSession = await session('robot$builder', old);
  const rotated = await cli('robot', 'rotate', 'builder');
  assert.equal(rotated.code, 0, rotated.output);
  assert.match(rotated.stdout, /the old one no longer works/);
  const fresh = /token:\s+(\S+)/.exec(rotated.stdout)![1];
  assert.notEqual(fresh, old);
  assert.equal(await login('robot$builder', old), 401);
  assert.equal(await refresh(oldSession), 401);
  assert.equal(await login('robot$builder', fresh), 200);
  assert.equal((await store.getAccount('robot$builder'))!.repositories[0], 'ci/*', 'role and patterns stay');
  const user = await cli('robot', 'rotate', 'dev');
  assert.equal(user.code, 2, 'dev is a user, not a robot');
});
