/**
 * The audit trail: a real `npm start` process with logins required, driven over HTTP the way
 * clients drive it (token logins, a push, a tag moved, deletes), prints one JSON line per
 * state-changing request with who, from where, what and the outcome, and never a password or a
 * token; account changes by `npx berth` land in the data folder's audit.log.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { after, before, test } from 'node:test';
import type { AuditRecord } from '../../functions/http/audit.js';
import { basicAuth, Cleanup, RegistryProcess, sha256, waitFor } from '../e2e/helpers.js';
import { berth } from '../support/cli.js';

const PASSWORD = 'alice-audit-password-7f3e';
const cleanup = new Cleanup();
let registry: RegistryProcess;
/** Every token the test was given, to check none reaches the log. */
const secrets: string[] = [PASSWORD, 'wrong-password-91ab'];

before(async () => {
  registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
  const added = await berth(['user', 'add', 'alice', '--password-stdin', '--role', 'admin'], { dataDir: registry.dataDir, input: `${PASSWORD}\n` });
  assert.equal(added.code, 0, added.output);
});
after(() => cleanup.run());

/** The audit records the server printed so far (its JSON lines with `message: "audit"`). */
function records(): (AuditRecord & Record<string, unknown>)[] {
  return registry.lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).filter((line) => line.message === 'audit');
}

async function login(password: string): Promise<Response> {
  return fetch(`${registry.url}/token?service=${registry.host}&scope=repository:team/app:pull,push,delete`, { headers: basicAuth('alice', password) });
}

async function call(method: string, path: string, token: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Response> {
  const response = await fetch(`${registry.url}/v2/${path}`, { method, headers: { Authorization: `Bearer ${token}`, ...headers }, body: body === undefined ? undefined : new Uint8Array(Buffer.from(body)) });
  await response.body?.cancel();
  return response;
}

test('push, tag move, deletes, failed and successful logins: one JSON line each, with who, where, what and the outcome', async () => {
  const since = records().length;
  assert.equal((await login('wrong-password-91ab')).status, 401);
  const ok = await login(PASSWORD);
  assert.equal(ok.status, 200);
  const { token } = (await ok.json()) as { token: string };
  secrets.push(token);

  const layer = Buffer.from('audit layer bytes');
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  for (const blob of [layer, config]) assert.equal((await call('POST', `team/app/blobs/uploads/?digest=${sha256(blob)}`, token, blob)).status, 201);
  const manifest = (annotation: string) =>
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      annotations: { note: annotation },
    });
  const [first, second] = [manifest('first'), manifest('second')];
  const type = { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' };
  assert.equal((await call('PUT', 'team/app/manifests/v1', token, first, type)).status, 201);
  assert.equal((await call('PUT', 'team/app/manifests/v1', token, second, type)).status, 201, 'the tag moves to the second manifest');
  assert.equal((await call('DELETE', 'team/app/manifests/v1', token)).status, 202);
  assert.equal((await call('DELETE', `team/app/manifests/${sha256(first)}`, token)).status, 202);
  assert.equal((await call('DELETE', `team/app/manifests/${sha256(first)}`, token)).status, 404, 'a failed delete is recorded too');
  // Reads are not state changes: no records.
  assert.equal((await call('GET', 'team/app/tags/list', token)).status, 200);

  const got = await waitFor('nine audit records', () => (records().length - since >= 9 ? records().slice(since) : undefined), 5000);
  const source = (r: AuditRecord) => r.sourceIp;
  const summary = got.map((r) => [r.action, r.account, r.repository, r.reference, r.digest, r.status, r.bytes]);
  assert.deepEqual(summary, [
    ['login', 'alice', undefined, undefined, undefined, 401, 0],
    ['login', 'alice', undefined, undefined, undefined, 200, 0],
    ['blob.push', 'alice', 'team/app', undefined, sha256(layer), 201, layer.length],
    ['blob.push', 'alice', 'team/app', undefined, sha256(config), 201, config.length],
    ['manifest.push', 'alice', 'team/app', 'v1', sha256(first), 201, Buffer.byteLength(first)],
    ['manifest.push', 'alice', 'team/app', 'v1', sha256(second), 201, Buffer.byteLength(second)],
    ['tag.delete', 'alice', 'team/app', 'v1', undefined, 202, 0],
    ['manifest.delete', 'alice', 'team/app', sha256(first), undefined, 202, 0],
    ['manifest.delete', 'alice', 'team/app', sha256(first), undefined, 404, 0],
  ]);
  for (const record of got) {
    assert.match(source(record), /^(::ffff:)?127\.0\.0\.1$/);
    assert.match(record.requestId, /^[0-9a-f-]{36}$/);
    assert.ok(Math.abs(Date.parse(record.time) - Date.now()) < 60_000, record.time);
    // Powertools' Logger wrote it: its level, message and service beside the record's fields.
    assert.equal(record.level, 'INFO');
    assert.equal(record.service, 'berth');
  }
  assert.equal(new Set(got.map((r) => r.requestId)).size, got.length, 'one id per request');
});

test('the web interface: a sign-in (wrong, then right), a refused form and a tag deleted from the page are recorded too', async () => {
  const cookies = new Map<string, string>();
  const web = async (method: string, path: string, form?: Record<string, string>) => {
    const headers: Record<string, string> = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(`${registry.url}${path}`, { method, headers, body: form && new URLSearchParams(form).toString(), redirect: 'manual' });
    for (const set of response.headers.getSetCookie()) {
      const [pair] = set.split(';');
      cookies.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
    }
    const text = await response.text();
    return { status: response.status, csrf: /name="csrf" value="([^"]+)"/.exec(text)?.[1] };
  };
  const { token } = (await (await login(PASSWORD)).json()) as { token: string };
  secrets.push(token);
  const config = Buffer.from('{"architecture":"amd64","os":"linux","web":true}');
  assert.equal((await call('POST', `team/app/blobs/uploads/?digest=${sha256(config)}`, token, config)).status, 201);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] });
  assert.equal((await call('PUT', 'team/app/manifests/web', token, manifest, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' })).status, 201);

  const since = records().length;
  const { csrf } = await web('GET', '/login');
  assert.ok(csrf, 'the sign-in form carries a CSRF token');
  assert.equal((await web('POST', '/login', { name: 'alice', password: 'wrong-password-91ab', csrf })).status, 401);
  assert.equal((await web('POST', '/login', { name: 'alice', password: PASSWORD, csrf })).status, 303);
  const page = await web('GET', '/r/team/app');
  assert.equal((await web('POST', '/r/team/app/-/delete', { reference: 'web', csrf: 'forged' })).status, 403);
  assert.equal((await web('POST', '/r/team/app/-/delete', { reference: 'web', csrf: page.csrf! })).status, 303);
  const got = await waitFor('four audit records', () => (records().length - since >= 4 ? records().slice(since) : undefined), 5000);
  assert.deepEqual(
    got.map((r) => [r.action, r.account, r.repository, r.reference, r.status]),
    [
      ['login', 'alice', undefined, undefined, 401],
      ['login', 'alice', undefined, undefined, 303],
      ['web.delete', 'alice', 'team/app', undefined, 403],
      ['web.delete', 'alice', 'team/app', 'web', 303],
    ],
  );
});

test('account changes by npx berth are recorded in the data folder\'s audit.log', async () => {
  assert.equal((await berth(['user', 'revoke', 'alice'], { dataDir: registry.dataDir })).code, 0);
  const lines = (await readFile(join(registry.dataDir, 'audit.log'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
  assert.deepEqual(
    lines.map((r) => [r.action, r.account, r.reference, r.status]),
    [
      ['account.add', `cli:${userInfo().username}`, 'alice', 200],
      ['account.revoke', `cli:${userInfo().username}`, 'alice', 200],
    ],
  );
});

test('no password or token appears in anything the server printed', () => {
  const output = registry.lines.join('\n');
  for (const secret of secrets) assert.ok(!output.includes(secret), `a secret of ${secret.length} characters was printed`);
  assert.ok(!output.includes(Buffer.from(`alice:${PASSWORD}`).toString('base64')), 'nor Basic credentials');
});
