/**
 * Logins with real clients against the local server started with `BERTH_AUTH=required`: docker
 * login / push / pull / logout and a wrong password, anonymous pulls of private and public
 * repositories, a writer limited to `team/*`, skopeo `--dest-creds` / `--src-creds`, ctr
 * `--user`, and a robot account. Users, robots and visibility are set with `npx berth` while
 * the registry runs, as the README says.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  basicAuth,
  Cleanup,
  Containerd,
  describeFailure,
  Docker,
  getManifest,
  importImage,
  readJson,
  RegistryProcess,
  RUN_ID,
  sha256,
  Skopeo,
  type RunResult,
  withRegistryLog,
} from './helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;

/** A writer on `team/*` only. */
const ALICE = { name: 'alice', password: `alice-${randomBytes(12).toString('hex')}` };
/** An admin on everything, for looking at what the registry holds. */
const ROOT = { name: 'root', password: `root-${randomBytes(12).toString('hex')}` };

/** What docker, skopeo and containerd print when the registry refuses them. */
const REFUSED = /unauthorized|authentication required|authorization failed|insufficient_scope|denied|401 Unauthorized|403 Forbidden/i;

before(async () => {
  registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
  await registry.addUser(ALICE.name, ALICE.password, 'writer', ['team/*']);
  await registry.addUser(ROOT.name, ROOT.password, 'admin');
});
after(() => cleanup.run());

const withLog = (body: () => Promise<void>) => withRegistryLog(() => registry, body);

/** A command that must have failed, and said so in a way matching `message`. */
function assertRefused(result: RunResult, message: RegExp = REFUSED): void {
  assert.notEqual(result.code, 0, `should have failed: ${describeFailure(result)}`);
  assert.ok(!result.timedOut, describeFailure(result));
  assert.match(result.output, message, describeFailure(result));
}

/** No secret ever appears in the request log. */
function assertNotLogged(...secrets: string[]): void {
  for (const secret of secrets) {
    const leaks = registry.lines.filter((line) => line.includes(secret));
    assert.deepEqual(leaks, [], 'a secret appears in the registry log');
  }
}

test('docker: wrong password refused; login, push, pull, logout; anonymous pull refused when private, allowed when public', { timeout: 600_000 }, withLog(async () => {
  const docker = await Docker.create(cleanup);
  const ref = `${registry.host}/team/app:${RUN_ID}`;
  const id = await importImage(docker, cleanup, ref, { 'app.txt': 'team app\n', 'bin/data': 20_000 });

  // Anonymous: no push.
  assertRefused(await docker.run(['push', ref], { timeoutMs: 240_000 }));
  assert.equal((await getManifest(registry, 'team/app', RUN_ID, basicAuth(ROOT.name, ROOT.password))).status, 404, 'nothing was stored');

  // A wrong password fails and stores nothing.
  const wrong = await docker.login(registry.host, ALICE.name, `${ALICE.password}-wrong`);
  assertRefused(wrong, /unauthorized|invalid username or password/i);
  assert.doesNotMatch(wrong.output, /Login Succeeded/);
  assert.deepEqual(await docker.loggedIn(), []);
  assert.ok(registry.requests('GET', /^\/token$/, 401).length >= 1, 'the token service refused the wrong password');

  // The right one works.
  const login = await docker.login(registry.host, ALICE.name, ALICE.password);
  assert.equal(login.code, 0, describeFailure(login));
  assert.match(login.output, /Login Succeeded/);
  assert.deepEqual(await docker.loggedIn(), [registry.host]);

  const { digest } = await docker.push(ref);
  const served = await getManifest(registry, 'team/app', RUN_ID, basicAuth(ALICE.name, ALICE.password));
  assert.equal(served.status, 200);
  assert.equal(served.digestHeader, digest);
  assert.equal(sha256(served.bytes), digest);
  assert.equal(served.json.config.digest, id);
  assert.equal((await getManifest(registry, 'team/app', RUN_ID)).status, 401, 'no anonymous access to a private repository');

  await docker.forget(ref);
  await docker.pull(ref, 1);
  assert.equal(await docker.imageId(ref), id);

  const logout = await docker.ok(['logout', registry.host]);
  assert.match(logout.output, /Removing login credentials for 127\.0\.0\.1:\d+/);
  assert.deepEqual(await docker.loggedIn(), []);

  // Anonymous pull of a private repository: refused, nothing pulled.
  await docker.forget(ref);
  const anonymous = await docker.run(['pull', ref], { timeoutMs: 240_000 });
  assertRefused(anonymous, /pull access denied|unauthorized|denied/i);
  assert.equal(await docker.exists(ref), false);

  // Public: anonymous pull allowed, anonymous push still refused.
  const visibility = await registry.berthOk(['repo', 'visibility', 'team/app', 'public']);
  assert.match(visibility.stdout, /team\/app is public/);
  await docker.pull(ref, 1);
  assert.equal(await docker.imageId(ref), id);
  const anonymousTag = `${registry.host}/team/app:${RUN_ID}-anonymous`;
  cleanup.images(anonymousTag);
  await docker.ok(['tag', ref, anonymousTag]);
  assertRefused(await docker.run(['push', anonymousTag], { timeoutMs: 240_000 }));
  assert.equal((await getManifest(registry, 'team/app', `${RUN_ID}-anonymous`, basicAuth(ROOT.name, ROOT.password))).status, 404);

  assertNotLogged(ALICE.password, Buffer.from(`${ALICE.name}:${ALICE.password}`).toString('base64'));
}));

test('docker: a writer limited to team/* cannot push to other/x', { timeout: 600_000 }, withLog(async () => {
  const docker = await Docker.create(cleanup);
  const ref = `${registry.host}/other/x:${RUN_ID}`;
  await importImage(docker, cleanup, ref, { 'x.txt': 'not for alice\n' });
  const login = await docker.login(registry.host, ALICE.name, ALICE.password);
  assert.equal(login.code, 0, describeFailure(login));

  const push = await docker.run(['push', ref], { timeoutMs: 240_000 });
  assertRefused(push, /denied/i);
  assert.equal((await getManifest(registry, 'other/x', RUN_ID, basicAuth(ROOT.name, ROOT.password))).status, 404, 'nothing stored in other/x');

  // …while team/* still works for the same login.
  const allowed = `${registry.host}/team/x:${RUN_ID}`;
  cleanup.images(allowed);
  await docker.ok(['tag', ref, allowed]);
  const { digest } = await docker.push(allowed);
  assert.equal((await getManifest(registry, 'team/x', RUN_ID, basicAuth(ROOT.name, ROOT.password))).digestHeader, digest);
  await docker.ok(['logout', registry.host]);
}));

test('skopeo: copy with --dest-creds and --src-creds; refused without', { timeout: 600_000 }, withLog(async () => {
  const docker = await Docker.create(cleanup);
  const skopeo = await Skopeo.create(cleanup);
  const work = await cleanup.tempDir('auth-skopeo');
  const local = `berth-e2e/auth-skopeo:${RUN_ID}`;
  await importImage(docker, cleanup, local, { 'skopeo.txt': 'skopeo with credentials\n', 'bin/data': 50_000 });
  const remote = `docker://${registry.host}/team/skopeo:${RUN_ID}`;
  const creds = `${ALICE.name}:${ALICE.password}`;

  assertRefused(await skopeo.run(['copy', '--dest-tls-verify=false', `docker-daemon:${local}`, remote]));
  assert.equal((await getManifest(registry, 'team/skopeo', RUN_ID, basicAuth(ROOT.name, ROOT.password))).status, 404);

  const digestFile = join(work, 'pushed.digest');
  await skopeo.ok(['copy', '--dest-tls-verify=false', '--dest-creds', creds, '--digestfile', digestFile, `docker-daemon:${local}`, remote]);
  const pushed = (await readFile(digestFile, 'utf8')).trim();
  const served = await getManifest(registry, 'team/skopeo', RUN_ID, basicAuth(ALICE.name, ALICE.password));
  assert.equal(served.status, 200);
  assert.equal(served.digestHeader, pushed);

  const layout = join(work, 'layout');
  assertRefused(await skopeo.run(['copy', '--src-tls-verify=false', remote, `oci:${layout}:anonymous`]));
  await skopeo.ok(['copy', '--src-tls-verify=false', '--src-creds', creds, remote, `oci:${layout}:${RUN_ID}`]);
  const index = await readJson<{ manifests: Array<{ digest: string; annotations?: Record<string, string> }> }>(join(layout, 'index.json'));
  const entries = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === RUN_ID);
  assert.equal(entries.length, 1, JSON.stringify(index));
  const manifest = JSON.parse(await readFile(join(layout, 'blobs', ...entries[0].digest.split(':')), 'utf8')) as { layers: Array<{ digest: string }> };
  assert.deepEqual(manifest.layers.map((l) => l.digest), served.json.layers.map((l) => l.digest), 'the layers pushed are the layers pulled');
  for (const layer of manifest.layers) assert.equal(sha256(await readFile(join(layout, 'blobs', ...layer.digest.split(':')))), layer.digest);

  assertNotLogged(ALICE.password);
}));

test('ctr: push and pull with --user; both refused without credentials', { timeout: 600_000 }, async () => {
  const docker = await Docker.create(cleanup);
  const work = await cleanup.tempDir('auth-ctr');
  let current: Containerd | undefined;
  try {
    const local = `berth-e2e/auth-ctr:${RUN_ID}`;
    const id = await importImage(docker, cleanup, local, { 'ctr.txt': 'ctr with credentials\n', 'bin/data': 30_000 });
    const archive = join(work, 'x.tar');
    await docker.ok(['save', '-o', archive, local]);
    const user = `${ALICE.name}:${ALICE.password}`;
    const remote = `${registry.host}/team/ctr:${RUN_ID}`;

    const first = await Containerd.start(cleanup, join(work, 'a'));
    current = first;
    await first.ctr(['images', 'import', '--no-unpack', archive]);
    const [[localRef, digest]] = [...(await first.images())];

    assertRefused(await first.run(['images', 'push', '--plain-http', remote, localRef]));
    assert.equal((await getManifest(registry, 'team/ctr', RUN_ID, basicAuth(ROOT.name, ROOT.password))).status, 404);

    const tokenPosts = registry.requests('POST', /^\/token$/, 200).length;
    await first.ctr(['images', 'push', '--plain-http', '--user', user, remote, localRef]);
    assert.ok(registry.requests('POST', /^\/token$/, 200).length > tokenPosts, 'containerd got its token with POST /token (OAuth2 password grant)');
    const served = await getManifest(registry, 'team/ctr', RUN_ID, basicAuth(ALICE.name, ALICE.password));
    assert.equal(served.status, 200);
    assert.equal(served.digestHeader, digest);
    assert.equal(served.json.config.digest, id);
    await first.stop();

    // A fresh containerd root, so that nothing comes from a local content store.
    const second = await Containerd.start(cleanup, join(work, 'b'));
    current = second;
    assertRefused(await second.run(['images', 'pull', '--plain-http', '--snapshotter', 'native', remote]));
    assert.equal((await second.images()).size, 0, 'nothing pulled');
    const pulled = await second.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'native', '--user', user, remote]);
    assert.match(pulled.output, new RegExp(`unpacking \\S+ ${digest}`), pulled.output);
    assert.equal((await second.images()).get(remote), digest);
    await second.stop();
    current = undefined;

    assertNotLogged(ALICE.password);
  } catch (error) {
    if (error instanceof Error) {
      error.message += `\n--- registry log (last lines) ---\n${registry.tail()}`;
      if (current) error.message += `\n--- containerd log (last lines) ---\n${await current.log()}`;
    }
    throw error;
  }
});

test('robot account: npx berth robot add, docker login -u robot$ci, push', { timeout: 600_000 }, withLog(async () => {
  const robot = await registry.addRobot('ci', 'writer');
  assert.equal(robot.username, 'robot$ci');
  assert.ok(robot.token.length >= 32, `a long generated token: ${robot.token}`);

  const docker = await Docker.create(cleanup);
  assertRefused(await docker.login(registry.host, robot.username, `${robot.token}x`), /unauthorized|invalid username or password/i);
  const login = await docker.login(registry.host, robot.username, robot.token);
  assert.equal(login.code, 0, describeFailure(login));
  assert.match(login.output, /Login Succeeded/);

  const ref = `${registry.host}/ci/app:${RUN_ID}`;
  const id = await importImage(docker, cleanup, ref, { 'ci.txt': 'pushed by a robot\n' });
  const { digest } = await docker.push(ref);
  const served = await getManifest(registry, 'ci/app', RUN_ID, basicAuth(robot.username, robot.token));
  assert.equal(served.status, 200);
  assert.equal(served.digestHeader, digest);
  assert.equal(served.json.config.digest, id);
  await docker.ok(['logout', registry.host]);

  assertNotLogged(robot.token);
}));
