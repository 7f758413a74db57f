/**
 * Garbage collection under stress: runs that fail at every store call (faults injected by wrapping
 * the real adapters) leave nothing reachable missing and the next run finishes the job; collection
 * looping while clients push and pull images that share layers over HTTP; and a closing PUT that
 * publishes a whole blob (written by a streamed PATCH, possibly days before) while a run that read
 * the blob keys before it lists its object.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GarbageCollector } from '../../functions/core/gc.js';
import { UploadSessions } from '../../functions/core/sessions.js';
import type { BlobStore, MetadataStore } from '../../functions/storage/ports.js';
import { startRegistry, type TestRegistry, type Metadata } from '../support/stack.js';
import { Api, imageManifest, randomBlob, sha256, uniqueRepo } from '../http/helpers.js';
import { assertConsistent, storesOf } from './helpers.js';
import { faulty, InjectedFault } from '../support/faults.js';

let stack: TestRegistry;
let api: Api;
let metadata: Metadata;
let blobs: BlobStore;
before(async () => {
  stack = await startRegistry();
  api = new Api(stack);
  ({ metadata, blobs } = storesOf(stack));
});
after(() => stack.stop());

const DAY = 24 * 3600 * 1000;

const WRITES = ['collect', 'deleteReferrer', 'deleteRepository', 'deleteUpload', 'deleteBlobLink', 'put', 'delete', 'abortMultipart'];

describe('garbage collection under faults and load', () => {
  test('a run failing at any store write leaves everything reachable intact; the next run finishes', async () => {
    const repo = uniqueRepo('faults');
    const other = uniqueRepo('faults');
    const kept = await api.pushImage(repo, 'kept');
    const dropped = await api.pushImage(repo, 'dropped');
    await api.pushImage(repo, 'dropped-too');
    await api.delete(`/v2/${repo}/manifests/dropped`);
    await api.delete(`/v2/${repo}/manifests/dropped-too`);
    // A blob both repositories link, dropped in one of them.
    const shared = randomBytes(2000);
    const config = Buffer.from('{"architecture":"arm64","os":"linux"}');
    for (const r of [repo, other]) {
      await api.pushBlob(r, shared);
      await api.pushBlob(r, config);
    }
    const sharedManifest = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(shared), size: shared.length }]);
    await api.pushManifest(other, 'v1', sharedManifest);
    await api.pushManifest(repo, 'shared', sharedManifest);
    await api.delete(`/v2/${repo}/manifests/${sha256(JSON.stringify(sharedManifest))}`);
    const { location } = await api.startUpload(repo);
    await api.patch(location, randomBytes(500));

    const later = Date.now() + 8 * DAY;
    let failures = 0;
    for (let failAt = 1; ; failAt++) {
      const counter = { calls: 0, failAt, methods: WRITES };
      const wrappedMetadata = faulty(metadata as MetadataStore, counter);
      const wrappedBlobs = faulty(blobs, counter);
      const collector = new GarbageCollector(wrappedMetadata, wrappedBlobs, new UploadSessions(wrappedMetadata, wrappedBlobs));
      try {
        const report = await collector.run({ graceMs: 0, now: () => later });
        if (report.finished && counter.calls < failAt) break;
      } catch (error) {
        if (!(error instanceof InjectedFault)) throw error;
        failures++;
      }
      await assertConsistent(metadata, blobs, `after a fault at write ${failAt}`);
      assert.ok(failAt < 500, 'the runs come to an end');
    }
    assert.ok(failures >= 5, `faults were injected at ${failures} writes`);
    // Whatever the faults left behind, one more run finishes it.
    await new GarbageCollector(metadata, blobs, new UploadSessions(metadata, blobs)).run({ graceMs: 0, now: () => later });
    await assertConsistent(metadata, blobs, 'after the final run');
    assert.equal((await api.get(`/v2/${repo}/manifests/kept`)).status, 200);
    assert.deepEqual(Buffer.from(await (await api.getBlob(repo, kept.layer.digest)).content.arrayBuffer()), kept.layer.bytes);
    assert.equal(await metadata.getBlob(dropped.layer.digest), undefined, 'the dropped image is collected');
    assert.deepEqual(Buffer.from(await (await api.getBlob(other, sha256(shared))).content.arrayBuffer()), shared, 'the shared blob stays for the other repository');
    assert.equal(await metadata.getBlobLink(repo, sha256(shared)), undefined);
  });

  test('20 clients push and pull images sharing layers while collection loops: every push and pull succeeds', async () => {
    const base = [randomBytes(64 * 1024), randomBytes(32 * 1024)];
    const until = Date.now() + 12_000;
    let running = true;
    const runs: Awaited<ReturnType<GarbageCollector['run']>>[] = [];
    const collecting = (async () => {
      while (running) runs.push(await stack.registry.gc.run({ graceMs: 3000 }));
    })();
    const failures: string[] = [];
    let pushes = 0;
    const client = async (n: number) => {
      const repo = uniqueRepo(`load${n % 3}`);
      // Three rounds at least, so that every client replaces its image even on a slow machine.
      for (let round = 0; round < 3 || Date.now() < until; round++) {
        const own = randomBytes(16 * 1024);
        const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', client: n, at: Date.now() }));
        const layers = [...base, own];
        try {
          // As docker does: HEAD each blob, upload only the missing ones.
          for (const bytes of [config, ...layers]) {
            if ((await api.head(`/v2/${repo}/blobs/${sha256(bytes)}`)).status !== 200) await api.pushBlob(repo, bytes);
          }
          const manifest = imageManifest({ digest: sha256(config), size: config.length }, layers.map((l) => ({ digest: sha256(l), size: l.length })));
          await api.pushManifest(repo, 'latest', manifest);
          pushes++;
          const pulled = (await (await api.get(`/v2/${repo}/manifests/latest`, { Accept: 'application/vnd.oci.image.manifest.v1+json' })).json()) as { layers: { digest: string }[] };
          for (const layer of pulled.layers) {
            const { content } = await api.getBlob(repo, layer.digest);
            assert.equal(content.status, 200, `pull ${repo} ${layer.digest}`);
            assert.equal(sha256(Buffer.from(await content.arrayBuffer())), layer.digest);
          }
        } catch (error) {
          failures.push(`${repo}: ${(error as Error).message.slice(0, 300)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 20 }, (_, n) => client(n)));
    running = false;
    await collecting;
    assert.deepEqual(failures, []);
    const deleted = runs.reduce((sum, r) => sum + r.deleted.manifests, 0);
    console.log(`# ${pushes} pushes and pulls, ${runs.length} collections during them, ${deleted} manifests collected`);
    assert.ok(pushes >= 60 && runs.length >= 2, `${pushes} pushes, ${runs.length} runs`);
    assert.ok(deleted > 0, 'collection deleted replaced images while pushes went on');
    await assertConsistent(metadata, blobs, 'after the load');
  });

  test('npx berth gc killed with SIGKILL mid-run leaves everything reachable intact; the next run finishes', async (t) => {
    if (stack.backends.label.startsWith('external')) return t.skip('the CLI reaches the blobs only through the embedded back ends\' endpoints.json');
    const repo = uniqueRepo('killed');
    const kept = await api.pushImage(repo, 'kept');
    const dropped = [];
    for (let i = 0; i < 25; i++) dropped.push(await api.pushImage(repo, `tmp-${i}`));
    for (let i = 0; i < 25; i++) await api.delete(`/v2/${repo}/manifests/tmp-${i}`);
    const gc = () => spawn(process.execPath, ['cli/berth.mjs', 'gc', '--grace', '0s'], { env: { ...process.env, BERTH_DATA_DIR: stack.backends.dataDir }, stdio: 'pipe' });
    // Killed as soon as a run has saved a state (it is then mid-run), three times: each continues the last.
    let kills = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const child = gc();
      let exited = false;
      const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
      const before = (await blobs.size('gc/state.json')) !== undefined ? (await blobs.read('gc/state.json')).toString() : undefined;
      while (!exited) {
        const now = (await blobs.size('gc/state.json')) !== undefined ? (await blobs.read('gc/state.json').catch(() => undefined))?.toString() : undefined;
        if (now !== undefined && now !== before) {
          child.kill('SIGKILL');
          kills++;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await exit;
      await assertConsistent(metadata, blobs, `after SIGKILL ${attempt + 1}`);
    }
    console.log(`# killed mid-run ${kills} times`);
    assert.ok(kills >= 1, 'at least one run was killed mid-run');
    const last = gc();
    let out = '';
    last.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    assert.equal(await new Promise((resolve) => last.once('exit', resolve)), 0, out);
    assert.match(out, /gc finished/);
    await assertConsistent(metadata, blobs, 'after the run that finished');
    for (const image of dropped) assert.equal(await metadata.getBlob(image.layer.digest), undefined, 'every dropped layer is collected');
    assert.deepEqual(Buffer.from(await (await api.getBlob(repo, kept.layer.digest)).content.arrayBuffer()), kept.layer.bytes);
  });
});

/**
 * `store` with one pause: the first read of blob items once `blobs/` was listed (the objects
 * phase) answers only after `paused` resolved and `resume` was called.
 */
function pausingAtBlobKeys(store: MetadataStore, listed: () => boolean): { store: MetadataStore; paused: Promise<void>; resume: () => void } {
  let pause!: () => void;
  let resume!: () => void;
  const paused = new Promise<void>((resolve) => (pause = resolve));
  const resumed = new Promise<void>((resolve) => (resume = resolve));
  let done = false;
  const wrapped = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'scanBlobs') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<MetadataStore['scanBlobs']>) => {
        const page = await target.scanBlobs(...args);
        if (listed() && !done) {
          done = true;
          pause();
          await resumed;
        }
        return page;
      };
    },
  });
  return { store: wrapped, paused, resume };
}

test('a whole blob published (its object older than the grace) while a run reads the blob keys and then lists its object keeps its bytes', async () => {
  const repo = uniqueRepo('publish');
  const bytes = randomBlob(300_000);
  const digest = sha256(bytes);
  const { location, uuid } = await api.startUpload(repo);
  const patched = await api.patch(location, bytes);
  assert.equal(patched.status, 202, await patched.text());
  assert.ok((await blobs.list(`blobs/${uuid}.`, 10)).length === 1, 'the PATCH wrote the whole blob under its session');

  let listed = false;
  const listing: BlobStore = new Proxy(blobs, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'list') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<BlobStore['list']>) => {
        const page = await target.list(...args);
        if (args[0] === 'blobs/') listed = true;
        return page;
      };
    },
  });
  const pausing = pausingAtBlobKeys(metadata, () => listed);
  // A minute on, with a grace of a second: the PATCH's object is older than the grace.
  const later = Date.now() + 60_000;
  const run = new GarbageCollector(pausing.store, listing, new UploadSessions(pausing.store, listing)).run({ graceMs: 1000, now: () => later });
  await pausing.paused;
  const closed = await api.put(location, digest);
  assert.equal(closed.status, 201, await closed.text());
  pausing.resume();
  await run;

  assert.ok((await api.blobBytes(repo, digest)).equals(bytes), 'the published blob keeps its bytes');
  await assertConsistent(metadata, blobs, 'after the run');
});
