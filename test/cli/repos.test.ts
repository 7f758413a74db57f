/**
 * Repository management with `npx berth` (child processes on the data of a running registry):
 * `repo ls`, `tag ls`, `rm` of a tag, a digest and a whole repository, `du` and `gc`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { berth, start } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/stack.js';
import { Api, uniqueRepo } from '../http/helpers.js';
import { storedBlobBytes, storesOf } from '../gc/helpers.js';

let stack: TestRegistry;
let api: Api;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
});
after(() => stack.stop());

const cli = async (...args: string[]) => {
  const result = await berth(args, { dataDir: stack.backends.dataDir });
  assert.equal(result.code, 0, `berth ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
};

test('help shows the repository commands and says that deleting by digest removes every tag pointing at it', async () => {
  const help = await cli('--help');
  for (const command of ['repo ls', 'tag ls <repo>', 'rm <repo>:<tag>', 'rm <repo>@<digest>', 'du', 'gc [--dry-run] [--grace <duration>]']) assert.ok(help.includes(`berth ${command}`), command);
  assert.match(help, /deletes the manifest and every tag pointing at it/);
});

test('repo ls, tag ls, rm of a tag and of a digest', async () => {
  const repo = uniqueRepo('cli');
  const image = await api.pushImage(repo, 'v1');
  await api.pushManifest(repo, 'also-v1', image.manifest);
  await api.pushImage(repo, 'v2');
  const listing = await cli('repo', 'ls');
  const row = listing.split('\n').find((line) => line.startsWith(`${repo} `));
  assert.ok(row, listing);
  assert.match(row, /private\s+3\s+\d/);
  const tags = await cli('tag', 'ls', repo);
  assert.match(tags, new RegExp(`v1\\s+${image.digest}`));
  assert.match(await cli('rm', `${repo}:v2`), /deleted tag/);
  assert.equal((await api.get(`/v2/${repo}/manifests/v2`)).status, 404);
  assert.match(await cli('rm', `${repo}@${image.digest}`), /deleted manifest .* and 2 tags pointing at it/);
  for (const tag of ['v1', 'also-v1']) assert.equal((await api.get(`/v2/${repo}/manifests/${tag}`)).status, 404);
  const missing = await berth(['rm', `${repo}:nope`], { dataDir: stack.backends.dataDir });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^berth: manifest unknown: nope\n$/);
});

test('rm of a repository removes it from the catalog and search; du and gc then free its bytes', async () => {
  const repo = uniqueRepo('cli');
  const image = await api.pushImage(repo, 'v1');
  const du = await cli('du');
  assert.match(du, new RegExp(`${repo}\\s+\\d`));
  assert.match(du, /^total .* in \d+ blobs/m);
  assert.match(await cli('rm', repo), /deleted repository .* \(1 tags, 1 manifests, 2 blob links\)/);
  const catalog = (await (await api.get('/v2/_catalog?n=1000')).json()) as { repositories: string[] };
  assert.equal(catalog.repositories.includes(repo), false);
  const search = (await (await api.get(`/v1/search?q=${repo.split('/')[1]}`)).json()) as { results: unknown[] };
  assert.deepEqual(search.results, []);
  const { blobs } = storesOf(stack);
  const before = await storedBlobBytes(blobs);
  const dry = await cli('gc', '--dry-run', '--grace', '0s');
  assert.match(dry, new RegExp(`would delete blob ${image.layer.digest} \\(${image.layer.size} bytes\\)`));
  const run = await cli('gc', '--grace', '0s');
  assert.match(run, /gc finished \(grace 0s\)/);
  assert.match(run, /requests: \d+ DynamoDB, \d+ S3/);
  const afterRun = await storedBlobBytes(blobs);
  assert.ok(before.bytes - afterRun.bytes >= image.layer.size, `${before.bytes} → ${afterRun.bytes}`);
  const bad = await berth(['gc', '--grace', 'soon'], { dataDir: stack.backends.dataDir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--grace: not a duration/);
});

test('npm start runs garbage collection on a timer (BERTH_GC_INTERVAL) and refuses a bad interval', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-gc-timer-'));
  try {
    const env = { PORT: '0', HOST: '127.0.0.1', BERTH_DATA_DIR: dataDir, BERTH_GC_INTERVAL: '1s', BERTH_GC_GRACE: '0s' };
    const result = await start([], env, 12_000);
    assert.match(result.stdout, /berth: gc finished: deleted 0 manifests, .* bytes reclaimed \(\d+ DynamoDB, \d+ S3 requests\)/, result.output);
    const bad = await start([], { ...env, BERTH_GC_INTERVAL: 'daily' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^berth: invalid configuration: BERTH_GC_INTERVAL: not a duration/);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
