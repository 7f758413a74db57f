/** `GET /v1/search` through the local server: matching, ranking, paging, descriptions, visibility. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../functions/auth/passwords.js';
import { startRegistry, type TestRegistry, metadataOf, type Metadata } from '../support/stack.js';

let stack: TestRegistry;
let store: Metadata;
const basic = `Basic ${Buffer.from('carol:carol-password').toString('base64')}`;

interface Results {
  query: string;
  num_results: number;
  results: { name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }[];
}

async function search(query: string, headers: Record<string, string> = {}): Promise<Results> {
  const response = await fetch(`${stack.url}/v1/search?${query}`, { headers });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as Results;
}

/** Pushes an image whose config (and optionally manifest) carries a description. */
async function pushImage(repository: string, label?: string, annotation?: string): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: label ? { Labels: { 'org.opencontainers.image.description': label } } : {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  assert.equal((await fetch(`${stack.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { authorization: basic }, body: config })).status, 201);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length },
    layers: [],
    ...(annotation ? { annotations: { 'org.opencontainers.image.description': annotation } } : {}),
  };
  const put = await fetch(`${stack.url}/v2/${repository}/manifests/latest`, {
    method: 'PUT',
    headers: { authorization: basic, 'content-type': manifest.mediaType },
    body: JSON.stringify(manifest),
  });
  assert.equal(put.status, 201);
}

before(async () => {
  stack = await startRegistry({ BERTH_AUTH: 'required' });
  store = metadataOf(stack.backends);
  await store.putAccount({ name: 'carol', kind: 'user', role: 'admin', repositories: [], passwordHash: await hashPassword('carol-password'), credentialVersion: 1, createdAt: 0 });
  await pushImage('tools/nginx-proxy', 'Reverse proxy in front of nginx');
  await pushImage('web/nginx', 'The web server');
  await pushImage('nginxish', undefined, 'Annotated description');
  await pushImage('web/frontend', 'Static site served by nginx');
  await pushImage('secret/nginx', 'Private one');
  for (const name of ['tools/nginx-proxy', 'web/nginx', 'nginxish', 'web/frontend']) await store.setVisibility(name, 'public');
});
after(() => stack.stop());

describe('v1 search', () => {
  test('ping answers 200', async () => {
    assert.equal((await fetch(`${stack.url}/v1/_ping`)).status, 200);
  });

  test('ranked exact > prefix > substring > description; every field filled', async () => {
    const found = await search('q=nginx', { authorization: basic });
    assert.deepEqual(found.results.map((r) => r.name).slice(0, 2).sort(), ['secret/nginx', 'web/nginx']);
    assert.deepEqual(found.results.map((r) => r.name).slice(2), ['nginxish', 'tools/nginx-proxy', 'web/frontend']);
    assert.equal(found.query, 'nginx');
    assert.equal(found.num_results, 5);
    assert.deepEqual(found.results.find((r) => r.name === 'web/nginx'), { name: 'web/nginx', description: 'The web server', star_count: 0, is_official: false, is_automated: false });
    assert.equal(found.results.find((r) => r.name === 'nginxish')!.description, 'Annotated description', 'from the manifest annotation');
  });

  test('exact matches rank the most recently pushed first', async () => {
    await pushImage('secret/nginx', 'Private one, pushed again');
    const found = await search('q=nginx', { authorization: basic });
    assert.deepEqual(found.results.map((r) => r.name).slice(0, 2), ['secret/nginx', 'web/nginx']);
  });

  test('anonymous callers see public repositories only; logged-in users what they may pull', async () => {
    const anonymous = await search('q=nginx');
    assert.ok(!anonymous.results.some((r) => r.name === 'secret/nginx'));
    assert.equal(anonymous.num_results, 4);
    const wrong = await fetch(`${stack.url}/v1/search?q=nginx`, { headers: { authorization: `Basic ${Buffer.from('carol:nope').toString('base64')}` } });
    assert.equal(wrong.status, 401);
  });

  test('description matches and admin descriptions', async () => {
    await store.setDescription('web/frontend', 'Company homepage');
    assert.deepEqual((await search('q=homepage')).results.map((r) => r.name), ['web/frontend']);
    assert.deepEqual((await search('q=REVERSE')).results.map((r) => r.name), ['tools/nginx-proxy'], 'case-insensitive');
  });

  test('n and page', async () => {
    const first = await search('q=nginx&n=2&page=1', { authorization: basic });
    const second = await search('q=nginx&n=2&page=2', { authorization: basic });
    assert.equal(first.results.length, 2);
    assert.equal(second.results.length, 2);
    assert.equal(first.num_results, 4, 'web/frontend no longer mentions nginx');
    assert.ok(!first.results.some((r) => second.results.some((s) => s.name === r.name)));
    for (const bad of ['n=0', 'n=-1', 'n=x', 'page=0', `q=${'x'.repeat(300)}`]) {
      assert.equal((await fetch(`${stack.url}/v1/search?${bad}`)).status, 400, bad);
    }
    assert.equal((await search('q=nginx&n=100000', { authorization: basic })).results.length, 4, 'n is clamped to 100');
  });

  test('a Bearer token needs registry:catalog:search', async () => {
    const token = async (scope: string) =>
      ((await (await fetch(`${stack.url}/token?scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic } })).json()) as { token: string }).token;
    const withScope = await search('q=nginx', { authorization: `Bearer ${await token('registry:catalog:search')}` });
    assert.equal(withScope.num_results, 4);
    const without = await fetch(`${stack.url}/v1/search?q=nginx`, { headers: { authorization: `Bearer ${await token('repository:web/nginx:pull')}` } });
    assert.equal(without.status, 401);
    assert.match(without.headers.get('www-authenticate')!, /scope="registry:catalog:search"/);
  });
});
