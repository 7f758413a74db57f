/**
 * Berth as a Docker daemon's `registry-mirrors`: a Docker 29 daemon of its own (test/frontdoor's
 * tools, on a containerd 2.4 of its own) whose only mirror is Berth pulls an unqualified Docker Hub
 * name through the rule for the prefix `docker.io`. Docker Hub itself is not reachable here, so
 * that rule's upstream is a second Berth holding the image under the name Docker Hub would have.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { frontdoorTools, startContainerd, startDocker29, type DockerDaemon } from '../frontdoor/daemons.js';
import { Cleanup, RegistryProcess, run, RUN_ID } from '../e2e/helpers.js';
import { Crane, pushImages, type PushedImages } from './helpers.js';

const cleanup = new Cleanup();
let berth: RegistryProcess;
let upstream: RegistryProcess;
let daemon: DockerDaemon;
let pushed: PushedImages;
const name = `mirror${RUN_ID}/app`;

before(async () => {
  const tools = await frontdoorTools(['containerd', 'docker']);
  berth = await RegistryProcess.start(cleanup);
  upstream = await RegistryProcess.start(cleanup);
  pushed = await pushImages(await Crane.create(cleanup), cleanup, upstream.host, name, 'v1');
  await berth.berthOk(['cache', 'add', 'docker.io', upstream.url]);
  const containerd = await startContainerd(tools.CONTAINERD!, { cleanup });
  daemon = await startDocker29({ dockerd: tools.DOCKERD!, containerd, snapshotter: 'native', config: { 'registry-mirrors': [berth.url] }, cleanup });
});
after(() => cleanup.run());

test('docker pull <name> goes to Berth as a Docker Hub mirror and is cached under docker.io/', async () => {
  const config = await cleanup.tempDir('docker-config');
  const pull = await run('docker', ['pull', `${name}:v1`], { env: { ...daemon.env, DOCKER_CONFIG: config }, timeoutMs: 240_000 });
  assert.equal(pull.code, 0, `${pull.output}\n${await daemon.log(30)}`);
  assert.match(pull.output, new RegExp(`Digest: ${pushed.index}`));
  // The daemon asked Berth (HEAD of the tag, then GETs by digest), under Docker Hub's name.
  const asked = [...berth.requests('HEAD', new RegExp(`^/v2/${name}/manifests/v1$`), 200), ...berth.requests('GET', new RegExp(`^/v2/${name}/manifests/v1$`), 200)];
  assert.ok(asked.length > 0, berth.tail());
  const tags = await berth.berthOk(['tag', 'ls', `docker.io/${name}`]);
  assert.match(tags.stdout, new RegExp(`v1\\s+${pushed.index}`));
});
