/**
 * Berth as Docker Hub mirror (a rule of the prefix `docker.io`) beside the team's own
 * repositories, over real sockets, with the requests a Docker daemon sends to its
 * `registry-mirrors` (Docker Hub's names as they are, the token flow with the scope of that name):
 * - no dependency confusion: a name in a namespace that holds a repository of the team's own, or a
 *   one-part name, is never answered from the upstream, missing or not, before or after the team
 *   pushes it; what the mirror caches lands under `docker.io/`, never in the team's repositories;
 * - the access check applies to the repository read (`docker.io/<name>`), not to the name asked.
 * The upstream is a second Berth (anonymous) holding the names Docker Hub would.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Cleanup, MANIFEST_ACCEPT, RegistryProcess, runOk, waitFor } from '../e2e/helpers.js';
import { Crane } from './helpers.js';

const cleanup = new Cleanup();
const PASSWORD = 'mirror-names-1';
let berth: RegistryProcess;
let upstream: RegistryProcess;
/** Digests of what the upstream holds, by name. */
const hub: Record<string, string> = {};
/** Digest of the team's own `team/app:v1`. */
let own: string;

/** Pushes a one-layer image of random bytes to `ref` and returns its digest. */
async function pushImage(crane: Crane, ref: string): Promise<string> {
  const dir = await cleanup.tempDir('image');
  await writeFile(join(dir, 'file'), randomBytes(1024));
  await runOk('tar', ['-C', dir, '-cf', join(dir, 'layer.tar'), 'file']);
  await crane.ok(['append', '-f', join(dir, 'layer.tar'), '-t', ref]);
  return crane.digest(ref);
}

before(async () => {
  upstream = await RegistryProcess.start(cleanup);
  const anonymous = await Crane.create(cleanup);
  for (const name of ['team/app', 'team/other', 'library/solo', 'newns/app', 'newns/lib']) hub[name] = await pushImage(anonymous, `${upstream.host}/${name}:v1`);
  berth = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
  await berth.addUser('admin', PASSWORD, 'admin');
  await berth.addUser('hubreader', PASSWORD, 'reader', ['docker.io/*']);
  await berth.addUser('askedreader', PASSWORD, 'reader', ['library/*']);
  const admin = await Crane.create(cleanup, { [berth.host]: { username: 'admin', password: PASSWORD } });
  own = await pushImage(admin, `${berth.host}/team/app:v1`);
  await berth.berthOk(['cache', 'add', 'docker.io', upstream.url]);
  // A running server reads the rules again at most every 5 s.
  await waitFor('the docker.io rule to take effect', async () => (await pull('admin', 'library/solo')).status === 200, 15_000, 250);
});
after(() => cleanup.run());

/**
 * `GET /v2/<name>/manifests/v1` as a Docker daemon sends it to its mirror: anonymously, then with a
 * token for the scope of `name` that the challenge names, fetched with the user's password.
 */
async function pull(user: string, name: string): Promise<{ status: number; digest?: string; code?: string }> {
  const url = `${berth.url}/v2/${name}/manifests/v1`;
  const challenge = await fetch(url, { headers: { Accept: MANIFEST_ACCEPT } });
  await challenge.arrayBuffer();
  assert.equal(challenge.status, 401);
  const scope = /scope="([^"]+)"/.exec(challenge.headers.get('www-authenticate') ?? '')?.[1];
  assert.equal(scope, `repository:${name}:pull`, 'the challenge names the name asked');
  const basic = `Basic ${Buffer.from(`${user}:${PASSWORD}`).toString('base64')}`;
  const token = (await (await fetch(`${berth.url}/token?service=${berth.host}&scope=${encodeURIComponent(scope!)}`, { headers: { Authorization: basic } })).json()) as { token: string };
  const response = await fetch(url, { headers: { Accept: MANIFEST_ACCEPT, Authorization: `Bearer ${token.token}` } });
  if (response.status === 200) {
    await response.arrayBuffer();
    return { status: 200, digest: response.headers.get('docker-content-digest') ?? undefined };
  }
  const body = (await response.json()) as { errors: Array<{ code: string }> };
  return { status: response.status, code: body.errors[0].code };
}

/** The tags of `name` as `npx berth tag ls` prints them. */
async function tags(name: string): Promise<string> {
  return (await berth.berth(['tag', 'ls', name])).output;
}

test('Docker Hub names outside the team\'s namespaces are mirrored, and cached under docker.io/', async () => {
  assert.deepEqual(await pull('admin', 'library/solo'), { status: 200, digest: hub['library/solo'] });
  assert.match(await tags('docker.io/library/solo'), new RegExp(`v1\\s+${hub['library/solo']}`));
});

test('a name of the team\'s, or a missing one beside them, is never answered from the upstream', async () => {
  assert.deepEqual(await pull('admin', 'team/app'), { status: 200, digest: own });
  assert.deepEqual(await pull('admin', 'team/other'), { status: 404, code: 'MANIFEST_UNKNOWN' }, 'a missing name in the team\'s namespace');
  assert.deepEqual(await pull('admin', 'solo'), { status: 404, code: 'MANIFEST_UNKNOWN' }, 'a one-part name (Docker asks for library/solo)');
  assert.doesNotMatch(await tags('docker.io/team/other'), /v1/);
});

test('a namespace the team pushes to later is no longer mirrored; what the mirror cached stays under docker.io/', async () => {
  assert.deepEqual(await pull('admin', 'newns/app'), { status: 200, digest: hub['newns/app'] });
  const mine = await pushImage(await Crane.create(cleanup, { [berth.host]: { username: 'admin', password: PASSWORD } }), `${berth.host}/newns/app:v1`);
  assert.deepEqual(await pull('admin', 'newns/app'), { status: 200, digest: mine });
  assert.deepEqual(await pull('admin', 'newns/lib'), { status: 404, code: 'MANIFEST_UNKNOWN' });
  assert.match(await tags('docker.io/newns/app'), new RegExp(`v1\\s+${hub['newns/app']}`));
  assert.doesNotMatch(await tags('newns/app'), new RegExp(hub['newns/app']));
});

test('the access check applies to the repository read, not to the name asked', async () => {
  assert.deepEqual(await pull('hubreader', 'library/solo'), { status: 200, digest: hub['library/solo'] }, 'a reader of docker.io/*');
  assert.equal((await pull('askedreader', 'library/solo')).status, 401, 'a reader of library/* only');
});
