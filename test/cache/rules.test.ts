/**
 * Cache rules and what they refuse: `npx berth cache add|ls|rm` on a running `npm start`,
 * credentials sealed and never shown, upstream URLs with credentials and prefixes overlapping a
 * repository or another rule refused, pushes and deletes into a cached repository refused
 * (DENIED), Docker Hub's `library/` for one-part names.
 */
import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Cleanup, RegistryProcess, runOk } from '../e2e/helpers.js';
import { metadataOf, serverMetadata, startRegistry } from '../support/stack.js';
import { Crane } from './helpers.js';

const cleanup = new Cleanup();
let berth: RegistryProcess;

before(async () => {
  berth = await RegistryProcess.start(cleanup);
});
after(() => cleanup.run());

/** `npx berth cache …`: exit code and the one line a person reads. */
async function cache(args: string[], input?: string): Promise<{ code: number | null; out: string }> {
  const result = await berth.berth(['cache', ...args], input);
  return { code: result.code, out: result.output.trim() };
}

/** The rules as stored in the server's table (read directly, as the server does). */
async function storedRules() {
  return (await serverMetadata(berth.dataDir)).listCacheRules();
}

test('cache add, ls and rm; credentials are sealed, never shown', async () => {
  assert.deepEqual(await cache(['ls']), { code: 0, out: 'no cache rules' });
  const added = await cache(['add', 'priv', 'https://registry.example.com', '--username', 'bob', '--password-stdin', '--ttl', '90s'], 'hunter2-upstream\n');
  assert.equal(added.code, 0, added.out);
  assert.match(added.out, /^added cache rule priv → https:\/\/registry\.example\.com as bob, tags looked up again after 90s$/);
  const listed = await cache(['ls']);
  assert.match(listed.out, /priv\s+https:\/\/registry\.example\.com\s+bob\s+90s/);
  assert.doesNotMatch(listed.out, /hunter2/);
  const [rule] = await storedRules();
  assert.match(rule.secret!, /^sealed:/);
  assert.doesNotMatch(JSON.stringify(rule), /hunter2/);
  assert.equal((await stat(join(berth.dataDir, 'cache-key'))).mode & 0o777, 0o600);
  assert.deepEqual(await cache(['rm', 'priv']), { code: 0, out: 'removed cache rule priv and its credentials; repositories cached under priv/ stay (berth rm removes them)' });
  assert.deepEqual(await cache(['rm', 'priv']), { code: 2, out: 'berth: no such cache rule: priv (see berth cache ls)' });
});

test('Docker Hub: its names become its API host, one-part names get library/', async () => {
  const added = await cache(['add', 'hub', 'docker.io']);
  assert.match(added.out, /^added cache rule hub → https:\/\/registry-1\.docker\.io \(anonymous\), tags looked up again after 300s$/);
  const stack = await startRegistry();
  try {
    // An in-process registry on tables of its own: the rule goes there too.
    const store = metadataOf(stack.backends);
    await store.putCacheRule({ prefix: 'hub', upstream: 'https://registry-1.docker.io', ttlSeconds: 300, createdAt: Date.now() });
    assert.equal((await stack.registry.cache.mirror('hub/alpine'))?.target.repository, 'library/alpine');
    assert.equal((await stack.registry.cache.mirror('hub/bitnami/redis'))?.target.repository, 'bitnami/redis');
    assert.equal(await stack.registry.cache.mirror('hubble/app'), undefined);
  } finally {
    await stack.stop();
  }
  await cache(['rm', 'hub']);
});

test('bad rules are refused with one line: credentials in the URL, a path, overlaps', async () => {
  const withCredentials = await cache(['add', 'x', 'https://user:pw@registry.example.com']);
  assert.deepEqual(withCredentials, { code: 2, out: 'berth: the upstream URL must not hold credentials: give them with --username and --password-stdin' });
  assert.equal((await cache(['add', 'x', 'ftp://registry.example.com'])).code, 2);
  assert.match((await cache(['add', 'x', 'https://registry.example.com/v2/foo'])).out, /without a path or query/);
  assert.match((await cache(['add', 'x', 'https://r.example.com', '--username', 'u'])).out, /--username and --password-stdin go together/);

  // A repository of the team's own under the prefix.
  const dir = await cleanup.tempDir('layer');
  await writeFile(join(dir, 'file'), 'own image\n');
  await runOk('tar', ['-C', dir, '-cf', join(dir, 'layer.tar'), 'file']);
  await (await Crane.create(cleanup)).ok(['append', '-f', join(dir, 'layer.tar'), '-t', `${berth.host}/team/app:v1`]);
  assert.deepEqual(await cache(['add', 'team', 'https://ghcr.io']), { code: 2, out: 'berth: prefix team overlaps the repository team/app, which is not a cache: pick another prefix' });
  assert.match((await cache(['add', 'team/app', 'https://ghcr.io'])).out, /overlaps the repository team\/app/);

  assert.equal((await cache(['add', 'mirror', 'https://ghcr.io'])).code, 0);
  assert.deepEqual(await cache(['add', 'mirror/quay', 'https://quay.io']), { code: 2, out: 'berth: prefix mirror/quay overlaps the cache rule "mirror"' });
});

test('pushes and deletes into a cached repository are refused (DENIED)', async () => {
  const upload = await fetch(`${berth.url}/v2/mirror/some/image/blobs/uploads/`, { method: 'POST' });
  assert.equal(upload.status, 403);
  const body = (await upload.json()) as { errors: Array<{ code: string; message: string }> };
  assert.equal(body.errors[0].code, 'DENIED');
  assert.equal(body.errors[0].message, 'mirror/some/image is a read-only pull-through cache of https://ghcr.io (cache rule "mirror"): push to a repository outside mirror/');
  const manifest = await fetch(`${berth.url}/v2/mirror/some/image/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: '{}' });
  assert.equal(manifest.status, 403);
  const deletion = await fetch(`${berth.url}/v2/mirror/some/image/manifests/v1`, { method: 'DELETE' });
  assert.equal(deletion.status, 403);
  // Outside the prefix, pushes go on as ever.
  const own = await fetch(`${berth.url}/v2/mirrored/image/blobs/uploads/`, { method: 'POST' });
  assert.equal(own.status, 202);
});
