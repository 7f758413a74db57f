/**
 * Immutable tags (core/immutable.ts), set with `npx berth repo immutable`: moving or deleting a
 * tag of a matching repository answers DENIED naming the rule, through the distribution API and
 * `npx berth rm`; re-pushing the same digest and the exceptions still work; of parallel first
 * pushes of one tag exactly one wins.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { berth } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import { Api, expectError, uniqueRepo } from './helpers.js';

let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
});
after(() => stack.stop());

const cli = (...args: string[]) => berth(args, { dataDir: stack.backends.dataDir });

test('immutable tags cannot be moved or deleted; the same digest, the exceptions and other repositories can', async () => {
  const on = await cli('repo', 'immutable', 'frozen/*', 'on', '--except', 'latest', '--except', 'dev-*');
  assert.equal(on.code, 0, on.output);
  assert.match(on.stdout, /tags of frozen\/\* are immutable, except latest, dev-\*/);
  assert.match((await cli('repo', 'immutable')).stdout, /^frozen\/\*\timmutable, except latest, dev-\*$/m);
  const repo = uniqueRepo('frozen');
  const first = await api.pushImage(repo, 'v1');
  await api.pushManifest(repo, 'v1', first.manifest);
  const second = await api.pushImage(repo, 'latest');
  const moved = await api.putManifest(repo, 'v1', second.manifest);
  const [entry] = await expectError(moved.response, 403, 'DENIED', 're-pointing v1');
  assert.match(entry.message, /tag v1 of .* is immutable \(rule "frozen\/\*", except latest, dev-\*\)/);
  assert.equal((await api.get(`/v2/${repo}/manifests/v1`)).headers.get('docker-content-digest'), first.digest, 'v1 did not move');
  await expectError(await api.delete(`/v2/${repo}/manifests/v1`), 403, 'DENIED', 'deleting v1');
  await expectError(await api.delete(`/v2/${repo}/manifests/${first.digest}`), 403, 'DENIED', 'deleting the manifest v1 names');
  const viaPushByDigest = await api.putManifest(repo, `${second.digest}?tag=v1`, second.manifest);
  await expectError(viaPushByDigest.response, 403, 'DENIED', 'moving v1 with ?tag=');
  await api.pushManifest(repo, 'latest', first.manifest);
  await api.pushManifest(repo, 'dev-1', first.manifest);
  await api.pushManifest(repo, 'dev-1', second.manifest);
  assert.equal((await api.delete(`/v2/${repo}/manifests/dev-1`)).status, 202, 'an exception moves and goes');
  const rm = await cli('rm', `${repo}:v1`);
  assert.equal(rm.code, 2);
  assert.match(rm.stderr, /^berth: tag v1 of .* is immutable/);
  assert.equal((await cli('rm', repo)).code, 2, 'nor can the repository go');
  const other = uniqueRepo('thawed');
  await api.pushImage(other, 'v1');
  await api.pushImage(other, 'v1');
  assert.equal((await cli('repo', 'immutable', 'frozen/*', 'off')).code, 0);
  await api.pushManifest(repo, 'v1', second.manifest);
  assert.equal((await api.delete(`/v2/${repo}/manifests/v1`)).status, 202);
});

test('of parallel first pushes of one immutable tag, exactly one wins', async () => {
  assert.equal((await cli('repo', 'immutable', 'race/*', 'on')).code, 0);
  const repo = uniqueRepo('race');
  const images = [];
  for (let i = 0; i < 6; i++) images.push(await api.pushImage(repo, `candidate-${i}`));
  const results = await Promise.all(images.map((image) => api.putManifest(repo, 'release', image.manifest)));
  const statuses = results.map((r) => r.response.status).sort();
  assert.deepEqual(statuses, [201, 403, 403, 403, 403, 403]);
  const winner = results.find((r) => r.response.status === 201)!;
  assert.equal((await api.get(`/v2/${repo}/manifests/release`)).headers.get('docker-content-digest'), winner.digest);
  assert.equal((await cli('repo', 'immutable', 'race/*', 'off')).code, 0);
});
