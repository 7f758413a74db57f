/**
 * Login throttling through the local server with BERTH_AUTH=required: attempts are claimed
 * before the password is checked, so parallel guesses get no more than sequential ones; they are
 * counted per account and source address; `npx berth user unlock` forgets them.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashPassword } from '../../functions/auth/passwords.js';
import { MAX_LOGIN_FAILURES } from '../../functions/auth/service.js';
import { berth } from '../support/cli.js';
import { recordingStore, startRegistry, type StoreCall, type TestRegistry, metadataOf, type Metadata } from '../support/stack.js';

let stack: TestRegistry;
let store: Metadata;
/** Every metadata store call the registry made, completed. */
const calls: StoreCall[] = [];

async function addUser(name: string, password: string): Promise<void> {
  await store.putAccount({ name, kind: 'user', role: 'reader', repositories: [], passwordHash: await hashPassword(password), credentialVersion: 1, createdAt: 0 });
}

before(async () => {
  stack = await startRegistry({ BERTH_AUTH: 'required' }, recordingStore(calls));
  store = metadataOf(stack.backends);
});
after(() => stack.stop());

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** `GET /token` with Basic credentials from the local address `from` (any of 127.0.0.0/8 on Linux). */
function login(user: string, password: string, from = '127.0.0.1'): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port: stack.port, path: `/token?service=${stack.host}`, localAddress: from, agent: false, headers: { authorization: basic(user, password) } };
    request(options, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'] }));
    })
      .on('error', reject)
      .end();
  });
}

const count = (results: { status: number }[], status: number) => results.filter((r) => r.status === status).length;

test(`30 parallel wrong passwords: at most ${MAX_LOGIN_FAILURES} are checked (401), the rest get 429 with Retry-After`, async () => {
  await addUser('parallel', 'parallel-password');
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => login('parallel', `guess-${i}`)));
  assert.ok(count(results, 401) <= MAX_LOGIN_FAILURES, JSON.stringify(results.map((r) => r.status)));
  assert.equal(count(results, 401) + count(results, 429), 30, JSON.stringify(results.map((r) => r.status)));
  assert.ok(results.filter((r) => r.status === 429).every((r) => Number(r.retryAfter) > 0));
  assert.equal((await login('parallel', 'parallel-password')).status, 429, 'locked from this address now');
});

test('40 parallel attempts, the right password arriving after the limit was claimed: no token', async () => {
  await addUser('target', 'target-password');
  const touched = () => calls.filter((call) => call.args[0] === 'target').length;
  const wrong = Array.from({ length: 39 }, (_, i) => login('target', `guess-${i}`));
  // Every wrong attempt has reached the account store (before any password check ends) …
  for (let waited = 0; touched() < 39; waited += 5) {
    assert.ok(waited < 20_000, `only ${touched()} store calls for the 39 attempts`);
    await sleep(5);
  }
  // … so the right password comes in while they are still being checked.
  const right = await login('target', 'target-password');
  const results = await Promise.all(wrong);
  assert.equal(right.status, 429, 'the right password after the limit gets no token');
  assert.ok(count(results, 401) <= MAX_LOGIN_FAILURES, JSON.stringify(results.map((r) => r.status)));
});

test('throttled per account and source address: a stranger cannot lock out a colleague elsewhere; user unlock forgets', async () => {
  await addUser('colleague', 'colleague-password');
  for (let i = 0; i < MAX_LOGIN_FAILURES; i++) assert.equal((await login('colleague', `guess-${i}`, '127.0.0.2')).status, 401);
  assert.equal((await login('colleague', 'colleague-password', '127.0.0.2')).status, 429, 'the stranger\'s address is locked');
  assert.equal((await login('colleague', 'colleague-password', '127.0.0.1')).status, 200, 'the colleague\'s is not');
  const unlock = await berth(['user', 'unlock', 'colleague'], { dataDir: stack.backends.dataDir });
  assert.equal(unlock.code, 0, unlock.output);
  assert.match(unlock.stdout, /unlocked colleague/);
  assert.equal((await login('colleague', 'colleague-password', '127.0.0.2')).status, 200, 'unlocked');
  const unknown = await berth(['user', 'unlock', 'nobody'], { dataDir: stack.backends.dataDir });
  assert.equal(unknown.code, 2, unknown.output);
  assert.match(unknown.stderr, /^berth: no such user: nobody\n$/);
});

test('a login with the right password gives its attempt back: parallel logins of one user all succeed', async () => {
  await addUser('busy', 'busy-password');
  const results = await Promise.all(Array.from({ length: 2 * MAX_LOGIN_FAILURES }, () => login('busy', 'busy-password')));
  assert.deepEqual(results.map((r) => r.status), Array(2 * MAX_LOGIN_FAILURES).fill(200));
});
