/**
 * Pull-through cache end to end, over real sockets with real clients: Berth (`npm start`) caches
 * two upstreams, each holding a multi-layer image and a multi-platform index:
 * - a second Berth with `BERTH_AUTH=required` (the Docker token flow, as Docker Hub does it);
 * - Debian's `docker-registry` with htpasswd (Basic auth).
 * docker and skopeo pull through Berth and get the upstream's digests; a tag moved upstream is
 * served after the rule's TTL; with the upstream stopped, cached tags still pull; ten clients
 * pulling an uncached image at once make the upstream serve each blob once (its request log).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, Docker, MANIFEST_ACCEPT, RegistryProcess, RUN_ID, sha256, Skopeo, sleep, waitFor } from '../e2e/helpers.js';
import { Crane, pushImages, startBasicRegistry, type PushedImages } from './helpers.js';

const cleanup = new Cleanup();
/** Tags are trusted this long (the rule's --ttl), short so that the test sees them move. */
const TTL_MS = 4000;
const USER = 'mirror';
const PASSWORD = 'upstream-secret-1';

let berth: RegistryProcess;
let docker: Docker;
let skopeo: Skopeo;

before(async () => {
  berth = await RegistryProcess.start(cleanup);
  docker = await Docker.create(cleanup);
  skopeo = await Skopeo.create(cleanup);
});
after(() => cleanup.run());

/** An upstream registry under test: where it is, how to stop it, what its log says. */
interface Upstream {
  host: string;
  url: string;
  stop(): Promise<void>;
  /** Upstream GETs of blob `digest` of `repository` that were answered with its bytes or a redirect. */
  blobGets(repository: string, digest: string): Promise<number>;
}

const upstreams: Array<{ kind: string; prefix: string; start: () => Promise<Upstream> }> = [
  {
    kind: 'Berth with BERTH_AUTH=required (token flow)',
    prefix: `tok${RUN_ID}`,
    async start() {
      const registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
      await registry.addUser(USER, PASSWORD, 'writer');
      return {
        host: registry.host,
        url: registry.url,
        stop: () => registry.stop(),
        blobGets: async (repository, digest) => registry.requests('GET', new RegExp(`^/v2/${repository}/blobs/${digest}$`)).filter((l) => /^GET \S+ (200|307) /.test(l)).length,
      };
    },
  },
  {
    kind: "Debian's docker-registry with htpasswd (Basic)",
    prefix: `basic${RUN_ID}`,
    async start() {
      const registry = await startBasicRegistry(cleanup, USER, PASSWORD);
      return {
        host: registry.host,
        url: registry.url,
        stop: () => registry.stop(),
        blobGets: async (repository, digest) => {
          const log = await registry.fullLog();
          return log.split('\n').filter((l) => l.includes(`"GET /v2/${repository}/blobs/${digest} HTTP/1.1" 200`) || l.includes(`"GET /v2/${repository}/blobs/${digest} HTTP/1.1" 307`)).length;
        },
      };
    },
  },
];

/** The manifest digest Berth answers a HEAD of `name:reference` with. */
async function headDigest(name: string, reference: string): Promise<string | null> {
  const response = await fetch(`${berth.url}/v2/${name}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } });
  assert.equal(response.status, 200, `HEAD ${name}:${reference} answered ${response.status}`);
  return response.headers.get('docker-content-digest');
}

for (const { kind, prefix, start } of upstreams) {
  describe(`pull-through from ${kind}`, () => {
    let upstream: Upstream;
    let crane: Crane;
    let pushed: PushedImages;
    /** Upstream GETs of the amd64 config before Berth pulled anything (crane reads configs while pushing). */
    let configGets: number;
    const cached = `${prefix}/team/app`;
    const ref = () => `${berth.host}/${cached}:v1`;

    before(async () => {
      upstream = await start();
      crane = await Crane.create(cleanup, { [upstream.host]: { username: USER, password: PASSWORD } });
      pushed = await pushImages(crane, cleanup, upstream.host, 'team/app', 'v1');
      await berth.berthOk(['cache', 'add', prefix, upstream.url, '--username', USER, '--password-stdin', '--ttl', `${TTL_MS / 1000}s`], `${PASSWORD}\n`);
      configGets = await upstream.blobGets('team/app', pushed.amd64Config);
      // A running server reads the rules again at most every 5 s (core/cache.ts): wait for this one.
      await waitFor('the new cache rule to take effect', async () => (await fetch(`${berth.url}/v2/${cached}/manifests/v1`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } })).status === 200, 15_000, 250);
    });

    test('skopeo copies the index with both platforms through Berth: the upstream digests', async () => {
      const dir = await cleanup.tempDir('skopeo-dir');
      await skopeo.ok(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${ref()}`, `dir:${dir}`]);
      // dir: keeps the index byte for byte, and each image's manifest under its digest.
      assert.equal(sha256(await readFile(join(dir, 'manifest.json'))), pushed.index);
      for (const digest of [pushed.amd64, pushed.arm64]) assert.equal(sha256(await readFile(join(dir, `${digest.slice(7)}.manifest.json`))), digest);
      const raw = await skopeo.ok(['inspect', '--tls-verify=false', '--raw', `docker://${berth.host}/${cached}@${pushed.arm64}`]);
      assert.match(raw.stdout, /"layers"/);
      assert.equal(await upstream.blobGets('team/app', pushed.amd64Config), configGets + 1, 'the amd64 config was fetched from the upstream once');
    });

    test('docker pulls the image through Berth: same image id, same digest', async () => {
      cleanup.images(ref());
      const output = (await docker.ok(['pull', ref()], { timeoutMs: 240_000 })).output;
      assert.match(output, new RegExp(`Digest: ${pushed.index}`));
      assert.equal(await docker.imageId(ref()), pushed.amd64Config);
      // Served by Berth now, not by the upstream: each blob came from there once.
      assert.equal(await upstream.blobGets('team/app', pushed.amd64Config), configGets + 1);
    });

    test('a tag moved upstream is served by Berth after the TTL, not before', async () => {
      await sleep(TTL_MS);
      const resolvedAt = Date.now();
      assert.equal(await headDigest(cached, 'v1'), pushed.index);
      await crane.ok(['copy', `${upstream.host}/team/app:v1-amd64`, `${upstream.host}/team/app:v1`]);
      const early = await headDigest(cached, 'v1');
      if (Date.now() - resolvedAt < TTL_MS - 500) assert.equal(early, pushed.index, 'within the TTL the cached tag is served');
      await sleep(Math.max(0, resolvedAt + TTL_MS + 200 - Date.now()));
      assert.equal(await headDigest(cached, 'v1'), pushed.amd64);
    });

    test('with the upstream stopped, cached tags still pull; an uncached one fails clearly', async () => {
      await upstream.stop();
      await sleep(TTL_MS);
      await docker.ok(['rmi', ref()]);
      await docker.ok(['pull', ref()], { timeoutMs: 240_000 });
      assert.equal(await docker.imageId(ref()), pushed.amd64Config);
      const inspected = await skopeo.ok(['inspect', '--tls-verify=false', `docker://${ref()}`]);
      assert.equal(JSON.parse(inspected.stdout).Digest, pushed.amd64);
      const response = await fetch(`${berth.url}/v2/${cached}/manifests/never-pulled`, { headers: { Accept: MANIFEST_ACCEPT } });
      assert.equal(response.status, 502);
      const body = (await response.json()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0].code, 'MANIFEST_UNKNOWN');
      assert.match(body.errors[0].message, /unreachable/);
    });
  });
}

describe('ten clients pull the same uncached image at once', () => {
  test('the upstream serves each blob once', async () => {
    const registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
    await registry.addUser(USER, PASSWORD, 'writer');
    const crane = await Crane.create(cleanup, { [registry.host]: { username: USER, password: PASSWORD } });
    const pushed = await pushImages(crane, cleanup, registry.host, 'team/fresh', 'v1', 6 * 1024 * 1024);
    const prefix = `crowd${RUN_ID}`;
    await berth.berthOk(['cache', 'add', prefix, registry.url, '--username', USER, '--password-stdin'], `${PASSWORD}\n`);
    // The rules are read again at most every 5 s; a manifest HEAD fetches no blob.
    await waitFor('the new cache rule to take effect', async () => (await fetch(`${berth.url}/v2/${prefix}/team/fresh/manifests/v1`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } })).status === 200, 15_000, 250);
    const manifest = JSON.parse(await crane.ok(['manifest', `${registry.host}/team/fresh@${pushed.amd64}`])) as { config: { digest: string }; layers: Array<{ digest: string }> };
    const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
    const gets = (digest: string) => registry.requests('GET', new RegExp(`^/v2/team/fresh/blobs/${digest}$`), 200).length;
    // crane read the config while pushing: only what the pulls add counts.
    const before = new Map(blobs.map((digest) => [digest, gets(digest)]));
    const client = await Crane.create(cleanup);
    const dir = await cleanup.tempDir('crowd');
    const pulls = await Promise.all(
      Array.from({ length: 10 }, (_, i) => client.run(['pull', '--platform', 'linux/amd64', `${berth.host}/${prefix}/team/fresh:v1`, join(dir, `${i}.tar`)])),
    );
    for (const pull of pulls) assert.equal(pull.code, 0, pull.output);
    for (const digest of blobs) assert.equal(gets(digest) - before.get(digest)!, 1, `upstream GETs of ${digest} by the ten pulls`);
    await registry.stop();
  });
});
