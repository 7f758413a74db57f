/**
 * Retention rules with `npx berth retention …` on a running registry: keep the last N tags of a
 * pattern, expire tags after N days, keep untagged manifests N days; `--dry-run` lists exactly
 * what the run deletes; immutable tags never expire; gc applies the rules and frees what they kept.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { berth } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import { Api, uniqueRepo } from '../http/helpers.js';
import { storesOf } from '../gc/helpers.js';

let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
});
after(() => stack.stop());

const DAY = 24 * 3600 * 1000;
const cli = async (...args: string[]) => {
  const result = await berth(args, { dataDir: stack.backends.dataDir });
  assert.equal(result.code, 0, `berth ${args.join(' ')}: ${result.output}`);
  return result.stdout;
};
const tagsOf = async (repo: string) => ((await (await api.get(`/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags;

test('keep-last and expire-days: the dry run lists exactly what the run deletes; immutable tags stay', async () => {
  const repo = uniqueRepo('ret');
  const images = [];
  for (const tag of ['v1', 'v2', 'v3', 'v4', 'v5', 'latest', 'nightly-1', 'nightly-2']) images.push({ tag, ...(await api.pushImage(repo, tag)) });
  // nightly-1 was pushed 40 days ago.
  const { metadata } = storesOf(stack);
  const nightly = (await metadata.getTag(repo, 'nightly-1'))!;
  await metadata.putTag({ ...nightly, updatedAt: Date.now() - 40 * DAY });
  const prefix = repo.split('/')[0];
  assert.match(await cli('retention', 'add', `${prefix}/*`, '--tags', 'v*', '--keep-last', '2'), /added retention rule \w+\tret\/\*\tkeep last 2 tags v\*/);
  await cli('retention', 'add', `${prefix}/*`, '--tags', 'nightly-*', '--expire-days', '30');
  await cli('repo', 'immutable', repo, 'on');
  await api.pushImage(uniqueRepo('ret'), 'v1'); // another repository: its only v-tag stays
  const listed = await cli('retention', 'ls');
  assert.equal(listed.trim().split('\n').length, 2, listed);
  const rules = listed.trim().split('\n').map((line) => line.split('\t')[0]);

  // Immutable: nothing of this repository may expire.
  assert.doesNotMatch(await cli('retention', 'run', '--dry-run'), new RegExp(`${repo}:`));
  await cli('repo', 'immutable', repo, 'off');
  const dry = await cli('retention', 'run', '--dry-run');
  const mine = (text: string) => text.split('\n').filter((line) => line.includes(`${repo}:`)).map((line) => line.replace(/^(would delete|deleted) /, '')).sort();
  assert.deepEqual(mine(dry), [`tag ${repo}:nightly-1 (older than 30 days (nightly-*))`, `tag ${repo}:v1 (keep last 2 of v*)`, `tag ${repo}:v2 (keep last 2 of v*)`, `tag ${repo}:v3 (keep last 2 of v*)`]);
  assert.equal((await tagsOf(repo)).length, 8, 'a dry run deletes nothing');
  const run = await cli('retention', 'run');
  assert.deepEqual(mine(run), mine(dry));
  assert.deepEqual((await tagsOf(repo)).sort(), ['latest', 'nightly-2', 'v4', 'v5']);
  // gc frees what the expired tags kept.
  const gc = await cli('gc', '--grace', '0s');
  assert.match(gc, /deleted: 0 repositories, [1-9]\d* manifests/);
  assert.equal((await api.get(`/v2/${repo}/manifests/${images[0].digest}`)).status, 404);
  assert.equal((await api.get(`/v2/${repo}/manifests/v4`)).status, 200);
  for (const id of rules) await cli('retention', 'rm', id);
  assert.match(await cli('retention', 'ls'), /no retention rules/);
});

test('untagged-days keeps untagged manifests longer than the grace period; gc applies tag rules itself', async () => {
  const repo = uniqueRepo('keep');
  const image = await api.pushImage(repo, 'tmp');
  await api.pushImage(repo, 'old-1');
  await api.pushImage(repo, 'old-2');
  await api.delete(`/v2/${repo}/manifests/tmp`);
  await cli('retention', 'add', 'keep/*', '--untagged-days', '3');
  await cli('retention', 'add', 'keep/*', '--tags', 'old-*', '--keep-last', '1');
  const dry = await stack.registry.gc.run({ graceMs: 0, dryRun: true });
  assert.ok(dry.planned.includes(`tag ${repo}:old-1 (keep last 1 of old-*)`), dry.planned.join('\n'));
  await stack.registry.gc.run({ graceMs: 0 });
  assert.deepEqual(await tagsOf(repo), ['old-2'], 'gc applied the tag rule');
  assert.equal((await api.get(`/v2/${repo}/manifests/${image.digest}`)).status, 200, 'untagged, but younger than 3 days');
  await stack.registry.gc.run({ graceMs: 0, now: () => Date.now() + 3 * DAY + 60_000 });
  assert.equal((await api.get(`/v2/${repo}/manifests/${image.digest}`)).status, 404);
  const bad = await berth(['retention', 'add', 'keep/*', '--keep-last', '1', '--expire-days', '2'], { dataDir: stack.backends.dataDir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /exactly one of/);
});
