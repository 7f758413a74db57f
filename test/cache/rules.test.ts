/**
 * Cache rules and what they refuse: `npx berth cache add|ls|rm` on a running `npm start`,
 * credentials sealed and never shown, upstream URLs with credentials and prefixes overlapping a
 * repository or another rule refused, pushes and deletes into a cached repository refused
 * (DENIED), Docker Hub's `library/` for one-part names.
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Cleanup, RegistryProcess, runOk, waitFor } from '../e2e/helpers.js';
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

/** The server's metadata store, as the server reads it. */
function ruleStore() {
  return serverMetadata(berth.dataDir);
}

/** The rules as stored in the server's table (read directly, as the server does). */
async function storedRules() {
  return (await ruleStore()).listCacheRules();
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

test('sealed credentials that do not open: a clear OCI error (502), not a 500; a bad cache key: one CLI line', async () => {
  // An upstream that wants Basic credentials: Berth must read the rule's to answer.
  const upstream = createServer((_request, response) => void response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="up"' }).end());
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  cleanup.add('stop the upstream', () => new Promise((resolve) => upstream.close(resolve)));
  await berth.berthOk(['cache', 'add', 'sealed', `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, '--username', 'u', '--password-stdin'], 'pw\n');
  const rule = (await storedRules()).find((r) => r.prefix === 'sealed')!;
  const bytes = Buffer.from(rule.secret!.slice('sealed:'.length), 'base64');
  bytes[bytes.length - 1] ^= 1;
  await (await ruleStore()).putCacheRule({ ...rule, secret: `sealed:${bytes.toString('base64')}` });
  // The server reads the rules again within 5 s.
  const answer = await waitFor('the altered rule to be read', async () => {
    const response = await fetch(`${berth.url}/v2/sealed/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const body = (await response.json()) as { errors?: Array<{ code: string; message: string }> };
    return /cannot be read/.test(body.errors?.[0]?.message ?? '') || response.status === 500 ? { status: response.status, error: body.errors?.[0] } : undefined;
  }, 15_000, 250);
  assert.equal(answer.status, 502);
  assert.equal(answer.error?.code, 'MANIFEST_UNKNOWN');
  assert.equal(answer.error?.message, `the credentials of cache rule "sealed" cannot be read: the sealed credentials do not open with this server's cache key (sealed under another key, or altered); add the rule again with npx berth cache add sealed …`);
  await cache(['rm', 'sealed']);

  const keyFile = join(berth.dataDir, 'cache-key');
  const key = await readFile(keyFile, 'utf8');
  try {
    await writeFile(keyFile, 'c2hvcnQ=\n');
    const added = await cache(['add', 'k', 'https://r.example.com', '--username', 'u', '--password-stdin'], 'pw\n');
    assert.deepEqual(added, { code: 1, out: `berth: the cache key ${keyFile}: the cache key must be 32 bytes (base64), not 5; npm start writes it on its first start (the sealed credentials of cache rules need the same key)` });
  } finally {
    await writeFile(keyFile, key);
  }
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
