/**
 * The admin routes under `/v2/_berth/` with BERTH_AUTH=required: only admins over every
 * repository get the `registry:berth:admin` scope; listings, usage, repository deletes and a
 * collection over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../functions/auth/passwords.js';
import type { Account } from '../../functions/auth/accounts.js';
import { startRegistry, type TestRegistry, metadataOf, type Metadata } from '../support/stack.js';
import { Api, expectError, uniqueRepo } from '../http/helpers.js';

let stack: TestRegistry;
let store: Metadata;

const account = async (name: string, role: Account['role'], repositories: string[] = []): Promise<void> =>
  store.putAccount({ name, kind: 'user', role, repositories, passwordHash: await hashPassword(`${name}-password`), credentialVersion: 1, createdAt: 0 });
const basic = (name: string) => ({ Authorization: `Basic ${Buffer.from(`${name}:${name}-password`).toString('base64')}` });

before(async () => {
  stack = await startRegistry({ BERTH_AUTH: 'required' });
  store = metadataOf(stack.backends);
  await account('root', 'admin');
  await account('teamadmin', 'admin', ['team/*']);
  await account('writer', 'writer');
});
after(() => stack.stop());

/** An API client that sends `name`'s Basic credentials with every request. */
function as(name: string): Api {
  const api = new Api(stack);
  const fetchAs = api.fetch.bind(api);
  api.fetch = (path, init = {}) => fetchAs(path, { ...init, headers: { ...basic(name), ...(init.headers as Record<string, string>) } });
  return api;
}

test('only admins over every repository may use the admin routes; the token service grants registry:berth:admin to them alone', async () => {
  assert.equal((await as('root').get('/v2/_berth/repositories')).status, 200);
  for (const name of ['teamadmin', 'writer']) await expectError(await as(name).get('/v2/_berth/repositories'), 401, 'UNAUTHORIZED', name);
  const anonymous = await new Api(stack).get('/v2/_berth/usage');
  await expectError(anonymous, 401, 'UNAUTHORIZED');
  assert.match(anonymous.headers.get('www-authenticate') ?? '', /scope="registry:berth:admin"/);
  for (const [name, granted] of [['root', true], ['teamadmin', false]] as const) {
    const response = await fetch(`${stack.url}/token?service=${stack.host}&scope=registry:berth:admin`, { headers: basic(name) });
    const { token } = (await response.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as { access: unknown[] };
    assert.deepEqual(claims.access, granted ? [{ type: 'registry', name: 'berth', actions: ['admin'] }] : [], name);
    const listed = await fetch(`${stack.url}/v2/_berth/repositories`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(listed.status, granted ? 200 : 401, name);
  }
});

test('repositories, tags, usage, deleting a repository and collecting over HTTP', async () => {
  const root = as('root');
  const repo = uniqueRepo('admin');
  const image = await root.pushImage(repo, 'v1');
  const { repositories } = (await (await root.get('/v2/_berth/repositories')).json()) as { repositories: { name: string; tags: number; bytes: number }[] };
  const entry = repositories.find((r) => r.name === repo);
  assert.equal(entry?.tags, 1);
  assert.equal(entry?.bytes, image.layer.size + image.config.size);
  const tags = (await (await root.get(`/v2/_berth/repositories/${repo}/tags`)).json()) as { tags: { tag: string; digest: string }[] };
  assert.deepEqual(tags.tags.map((t) => [t.tag, t.digest]), [['v1', image.digest]]);
  const usage = (await (await root.get('/v2/_berth/usage')).json()) as { total: number; repositories: { name: string; bytes: number }[] };
  assert.ok(usage.total >= image.layer.size);
  const deleted = await root.delete(`/v2/_berth/repositories/${repo}`);
  assert.equal(deleted.status, 202);
  assert.deepEqual(await deleted.json(), { tags: 1, manifests: 1, links: 2 });
  await expectError(await root.get(`/v2/${repo}/tags/list`), 404, 'NAME_UNKNOWN');
  await expectError(await root.delete(`/v2/_berth/repositories/${repo}`), 404, 'NAME_UNKNOWN');
  const dry = (await (await root.fetch('/v2/_berth/gc?grace=0s&dryRun=true', { method: 'POST' })).json()) as { dryRun: boolean; planned: string[] };
  assert.equal(dry.dryRun, true);
  assert.ok(dry.planned.includes(`blob ${image.layer.digest} (${image.layer.size} bytes)`), dry.planned.join('\n'));
  const run = (await (await root.fetch('/v2/_berth/gc?grace=0s', { method: 'POST' })).json()) as { finished: boolean; deleted: { blobs: number } };
  assert.equal(run.finished, true);
  assert.ok(run.deleted.blobs >= 2);
  await expectError(await root.fetch('/v2/_berth/gc?grace=later', { method: 'POST' }), 400, 'UNSUPPORTED');
});
