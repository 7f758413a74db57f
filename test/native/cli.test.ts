/**
 * `npm start` on its default native metadata store, and `npx berth` on the same data folder: while
 * the server runs the CLI works through the server's loopback endpoint; with no server it opens
 * the journal itself under the folder's lock; the server sees what the CLI wrote either way, and
 * keeps it across a SIGKILL.
 */
import assert from 'node:assert/strict';
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Cleanup, RegistryProcess } from '../e2e/helpers.js';
import { berth } from '../support/cli.js';

const cleanup = new Cleanup();
after(() => cleanup.run());

const basic = (name: string) => ({ Authorization: `Basic ${Buffer.from(`${name}:${name}-password`).toString('base64')}` });

/** The status of `GET /v2/_catalog` with `name`'s Basic credentials. */
async function catalogStatus(registry: RegistryProcess, name: string): Promise<number> {
  const response = await fetch(`${registry.url}/v2/_catalog`, { headers: basic(name) });
  await response.body?.cancel();
  return response.status;
}

async function addUser(dataDir: string, name: string): Promise<void> {
  const added = await berth(['user', 'add', name, '--password-stdin', '--role', 'reader'], { dataDir, input: `${name}-password\n` });
  assert.equal(added.code, 0, added.output);
}

test('npx berth with a running native server, with none, and after the server was killed', async () => {
  const env = { BERTH_AUTH: 'required' };
  let registry = await RegistryProcess.start(cleanup, { env });
  const { dataDir } = registry;
  const endpoints = JSON.parse(await readFile(join(dataDir, 'endpoints.json'), 'utf8')) as Record<string, string>;
  assert.equal(endpoints.BERTH_METADATA, 'native');
  assert.match(endpoints.BERTH_METADATA_URL, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback only');
  assert.equal(endpoints.BERTH_DYNAMODB_ENDPOINT, undefined, 'no DynamoDB emulator runs');
  assert.equal((await stat(join(dataDir, 'metadata-secret'))).mode & 0o777, 0o600);
  const refused = await fetch(endpoints.BERTH_METADATA_URL, { method: 'POST', body: '{"method":"listAccounts","args":[]}' });
  assert.equal(refused.status, 401, 'the endpoint wants the secret');

  await addUser(dataDir, 'alice');
  assert.equal(await catalogStatus(registry, 'alice'), 200, 'the server sees an account the CLI added through it');

  await registry.stop();
  await addUser(dataDir, 'bob');
  const listed = await berth(['user', 'list'], { dataDir });
  assert.match(listed.stdout, /alice/);
  assert.match(listed.stdout, /bob/);
  await assert.rejects(access(join(dataDir, 'server.lock')), 'the CLI gave the folder back');

  registry = await RegistryProcess.start(cleanup, { env, dataDir });
  assert.equal(await catalogStatus(registry, 'bob'), 200, 'the server sees an account the CLI added without it');
  await addUser(dataDir, 'carol');
  registry.child.kill('SIGKILL');
  await new Promise((resolve) => registry.child.once('exit', resolve));
  registry = await RegistryProcess.start(cleanup, { env, dataDir });
  assert.equal(await catalogStatus(registry, 'carol'), 200, 'an acknowledged write survives SIGKILL');
  assert.equal(await catalogStatus(registry, 'mallory'), 401);
});

test('a data folder the DynamoDB emulator served keeps its metadata (an account, a repository setting) when npm start runs the native store', async () => {
  const old = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required', BERTH_BACKEND: 'emulators' } });
  const { dataDir } = old;
  await addUser(dataDir, 'dave');
  assert.equal(await catalogStatus(old, 'dave'), 200);
  assert.equal((await berth(['repo', 'visibility', 'team/app', 'public'], { dataDir })).code, 0);
  await old.stop();
  await assert.rejects(access(join(dataDir, 'metadata.journal')), 'the emulator wrote no journal');
  const registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' }, dataDir });
  assert.ok(registry.lines.some((line) => /^berth: copied \d+ items of the DynamoDB emulator/.test(line)), registry.lines.join('\n'));
  assert.equal(await catalogStatus(registry, 'dave'), 200, 'the account came along');
  assert.match((await berth(['repo', 'visibility', 'team/app'], { dataDir })).stdout, /^team\/app is public/, 'and the repository\'s visibility');
  await registry.stop();
  const again = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' }, dataDir });
  assert.ok(!again.lines.some((line) => line.includes('copied')), 'copied once');
  assert.equal(await catalogStatus(again, 'dave'), 200);
});
