/**
 * Real docker against `BERTH_EMULATE_LAMBDA=1 npm start`: a small image pushes and pulls (the pull
 * follows 307s to S3), and an image with a 64 MiB layer fails exactly as it does against a
 * deployment, because docker sends each layer as one request body and the HTTP API refuses
 * bodies over 10 MiB (and Lambda events over 6 MiB) before Berth sees them.
 *
 * Needs dockerd (as root: `dockerd --storage-driver=vfs --iptables=false --ip6tables=false
 * --bridge=none &`); images come from `docker import` of a tarball.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Docker, startEmulatedRegistry, type EmulatedRegistry } from './helpers.js';

const RUN = randomBytes(4).toString('hex');
const MiB = 1024 * 1024;

/**
 * What docker 28.2.2 (daemon 20.10.24) prints when a layer is refused by the gateway, after its
 * 5 retries. The daemon cannot parse API Gateway's `{"message": …}` body as a registry error, so
 * it shows the raw status and body.
 */
export const DOCKER_TOO_LARGE = 'error parsing HTTP 413 response body: no error details found in HTTP response body: "{\\"message\\":\\"Request Entity Too Large\\"}"';

let registry: EmulatedRegistry;
let docker: Docker;
before(async () => {
  docker = await Docker.create();
  registry = await startEmulatedRegistry();
});
after(async () => {
  await docker?.cleanup();
  await registry?.stop();
});

test('docker push and pull of a small image through the emulated Lambda', { timeout: 300_000 }, async () => {
  const ref = `${registry.host}/emulation/small:${RUN}`;
  await docker.importImage(ref, { 'hello.txt': 'hello from the emulated lambda\n', 'data.bin': randomBytes(200_000) });
  const id = (await docker.ok(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
  const push = await docker.ok(['push', ref]);
  assert.match(push, /: Pushed/);
  assert.match(push, /digest: sha256:[0-9a-f]{64}/);
  await docker.ok(['rmi', ref]);
  docker.track(ref);
  await docker.ok(['pull', ref]);
  assert.equal((await docker.ok(['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), id, 'the pulled image is the pushed one');
  await registry.waitForLog(/^GET \/v2\/emulation\/small\/blobs\/sha256:[0-9a-f]+ 307 /);
});

test('a layer of 4 MiB (random, so ~4 MiB compressed) still fits in one request', { timeout: 300_000 }, async () => {
  const ref = `${registry.host}/emulation/four:${RUN}`;
  await docker.importImage(ref, { 'random.bin': randomBytes(4 * MiB) });
  assert.match(await docker.ok(['push', ref]), /: Pushed/);
});

test('a layer between the Lambda limit and the HTTP API quota (8 MiB) fails with the same message', { timeout: 300_000 }, async (t) => {
  const ref = `${registry.host}/emulation/eight:${RUN}`;
  await docker.importImage(ref, { 'random.bin': randomBytes(8 * MiB) });
  const push = await docker.run(['push', ref], 250_000);
  assert.notEqual(push.code, 0);
  assert.ok(push.output.includes(DOCKER_TOO_LARGE), push.output);
  const line = await registry.waitForLog(/^PATCH \/v2\/emulation\/eight\/blobs\/uploads\/\S+ 413 .*Lambda: event of \d+ bytes/);
  // The event around docker's PATCH body: its size minus the body's base64 is what docker's
  // headers and the rest of the event take (`npm run test:emulation` prints it).
  const [, bodyBytes, eventBytes] = /in=(\d+) .*event of (\d+) bytes/.exec(line)!.map(Number);
  t.diagnostic(`docker PATCH of ${bodyBytes} bytes: event of ${eventBytes} bytes, ${eventBytes - 4 * Math.ceil(bodyBytes / 3)} bytes besides the base64 body`);
});

test('docker push of an image with a 64 MiB layer fails as it does on AWS', { timeout: 900_000 }, async (t) => {
  const ref = `${registry.host}/emulation/big:${RUN}`;
  await docker.importImage(ref, { 'random.bin': randomBytes(64 * MiB) });
  const push = await docker.run(['push', ref], 800_000);
  t.diagnostic(`docker push output:\n${push.output}`);
  assert.notEqual(push.code, 0, 'the push fails');
  assert.ok(push.output.includes(DOCKER_TOO_LARGE), `docker prints API Gateway's answer:\n${push.output}`);
  // The layer never reached Berth: every attempt was refused by the emulated gateway.
  await registry.waitForLog(/^PATCH \/v2\/emulation\/big\/blobs\/uploads\/\S+ 413 .*HTTP API payload quota/);
  assert.ok(!registry.log.some((l) => /^PATCH \/v2\/emulation\/big\/blobs\/uploads\/\S+ 202 /.test(l) && /in=([0-9]{8,})/.test(l)), 'no large PATCH was accepted');
  const attempts = registry.log.filter((l) => /^PATCH \/v2\/emulation\/big\/blobs\/uploads\/\S+ 413 /.test(l)).length;
  t.diagnostic(`docker sent the layer ${attempts} time(s)`);
  const manifest = await fetch(`${registry.url}/v2/emulation/big/manifests/${RUN}`);
  assert.equal(manifest.status, 404, 'nothing was tagged');
});
