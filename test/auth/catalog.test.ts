/**
 * The cost of the catalog for a caller who may see few of many repositories: the store reads one
 * request makes are counted through a recording wrapper over the real store (no timing).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TokenService } from '../../functions/auth/tokens.js';
import { Catalog, MAX_EXAMINED } from '../../functions/core/catalog.js';
import type { Page, RepositoryInfo } from '../../functions/storage/ports.js';
import { nextLink } from '../http/helpers.js';
import { recordingStore, startRegistry, type StoreCall, type TestRegistry, metadataOf, type Metadata } from '../support/stack.js';

let stack: TestRegistry;
let store: Metadata;
let anonymous: string;
const calls: StoreCall[] = [];
const PRIVATE = 400;
const PUBLIC = ['a/first', 'm/middle', 'z/last'];

before(async () => {
  stack = await startRegistry({ BERTH_AUTH: 'required' }, recordingStore(calls));
  store = metadataOf(stack.backends);
  // 400 private repositories between the first two public ones.
  const names = Array.from({ length: PRIVATE }, (_, i) => `b/private${String(i).padStart(3, '0')}`);
  for (let i = 0; i < names.length; i += 25) await Promise.all(names.slice(i, i + 25).map((name) => store.touchRepository(name, 1)));
  for (const name of PUBLIC) await store.setVisibility(name, 'public');
  const response = await fetch(`${stack.url}/token?service=${stack.host}&scope=registry:catalog:*`);
  anonymous = `Bearer ${((await response.json()) as { token: string }).token}`;
});
after(() => stack.stop());

/** One catalog request of the anonymous caller: its answer, and the catalog reads it made. */
async function catalog(path: string): Promise<{ response: Response; repositories: string[]; reads: Page<RepositoryInfo>[] }> {
  const first = calls.length;
  const response = await fetch(new URL(path, stack.url), { headers: { authorization: anonymous } });
  assert.equal(response.status, 200, await response.clone().text());
  const reads = calls.slice(first).filter((call) => call.method === 'listRepositories').map((call) => call.result as Page<RepositoryInfo>);
  return { response, repositories: ((await response.json()) as { repositories: string[] }).repositories, reads };
}

const examined = (reads: Page<RepositoryInfo>[]) => reads.reduce((sum, page) => sum + page.items.length, 0);

test(`GET /v2/_catalog?n=1 by an anonymous caller among ${PRIVATE} private repositories: a bounded number of store reads`, async () => {
  const { repositories, reads, response } = await catalog('/v2/_catalog?n=1&last=a/first');
  assert.deepEqual(repositories, ['m/middle']);
  // Batches of n, doubling: 1 + 2 + … + 256 ≥ 401 entries in 9 reads (one read per entry before).
  assert.ok(reads.length <= 10, `${reads.length} listRepositories calls`);
  assert.ok(examined(reads) <= MAX_EXAMINED, `${examined(reads)} entries read`);
  assert.equal(nextLink(response), '/v2/_catalog?n=1&last=m%2Fmiddle');
});

test('past the per-request bound a page is partial, its Link sealed; following the Links finds every visible repository and names no private one', async () => {
  const { tokenKey } = stack.backends.config;
  assert.ok(tokenKey?.kind === 'inline');
  const key = Buffer.from(tokenKey.base64, 'base64');
  const limit = 50;
  stack.registry.catalog = new Catalog(recordingStore(calls)(store), new TokenService(async () => key), limit);
  try {
    const seen: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=2';
    let requests = 0;
    while (path) {
      const { response, repositories, reads } = await catalog(path);
      assert.ok(examined(reads) <= limit, `${examined(reads)} entries read by one request`);
      seen.push(...repositories);
      path = nextLink(response);
      assert.doesNotMatch(path ?? '', /private/, 'no cursor names a private repository');
      assert.ok(++requests <= PRIVATE / limit + PUBLIC.length + 2, `${requests} requests`);
    }
    assert.deepEqual(seen, PUBLIC);
    const tampered = await fetch(`${stack.url}/v2/_catalog?n=1&last=~${Buffer.from('b/private100').toString('base64url')}`, { headers: { authorization: anonymous } });
    assert.equal(tampered.status, 400, 'a position this registry did not seal');
  } finally {
    stack.registry.catalog = new Catalog(store, new TokenService(async () => key));
  }
});
