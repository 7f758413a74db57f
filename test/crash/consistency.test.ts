/**
 * Crash consistency: a blob push (POST, a PATCH of a multipart part, a PATCH of a tail, PUT
 * ?digest), docker's blob push (POST, one streamed PATCH, an empty PUT), a manifest push (PUT by tag) and the deletes (a manifest by digest, a tag, a
 * blob), each with a fault at every storage call it makes. A clean run counts the calls; then for each call N:
 * - `fail`: call N throws before reaching the back end,
 * - `fail-after`: call N takes effect, then throws (the answer lost on the way back),
 * - `kill`: call N and everything after it never happen, and the server's connections are cut
 *   (a process killed there; the next process serves the same back ends).
 * After each fault, read through the public API and by scanning the stores: no tag names a
 * missing manifest, no visible manifest names a missing blob, no visible blob has wrong bytes,
 * and a failed request answers OCI error JSON without internals. Then the client's retry (a new
 * upload session, the same manifest PUT, the same DELETE) succeeds and leaves the intended state.
 *
 * The registry core runs against the embedded DynamoDB and S3 emulators over sockets, with the
 * stores wrapped (test/support/faults.ts) between the core and the adapters.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { BlobStore } from '../../functions/storage/ports.js';
import { assertConsistent, storesOf } from '../gc/helpers.js';
import { Api, imageManifest, MiB, randomBlob, sha256, uniqueRepo, type Digest } from '../http/helpers.js';
import { faulty, InjectedFault, type FaultMode, type FaultPlan } from '../support/faults.js';
import { serveRegistry, startBackends, type Backends, type TestRegistry, type Metadata } from '../support/stack.js';

let backends: Backends;
/** The registry without faults: preparation, checks and retries go through it. */
let clean: TestRegistry;
let api: Api;
let metadata: Metadata;
let blobs: BlobStore;

/** Unexpected errors the server reported (route() hands them to console.error): the injected ones. */
let reported = 0;
const consoleError = console.error;
const injected = (value: unknown) => value instanceof InjectedFault || (value instanceof Error && value.cause instanceof InjectedFault);

before(async () => {
  console.error = (...args: unknown[]) => (args.some(injected) ? reported++ : consoleError(...args));
  // The smallest part S3 takes: the least bytes held back while a PATCH streams.
  backends = await startBackends({ BERTH_PART_SIZE: String(5 * MiB) });
  clean = await serveRegistry(backends);
  api = new Api(clean);
  ({ metadata, blobs } = storesOf(clean));
});
after(async () => {
  console.error = consoleError;
  await clean.stop();
  await backends.stop();
});

/** Bytes the test knows, by digest. */
type Known = Map<Digest, Buffer>;

/** One request of an operation and the status that means it went through. */
interface Step<C> {
  name: string;
  expect: number;
  send(api: Api, context: C): Promise<Response>;
}

/** An operation under test: its steps, what it works on, and the state it leaves when done. */
interface Operation<C> {
  name: string;
  /** Fresh data for one attempt (pushed through the clean registry), and the request context. */
  prepare(repository: string): Promise<{ context: () => C; manifests: Known; blobs: Known }>;
  steps: Step<C>[];
  /** Asserts the state a finished operation leaves (read through the clean registry). */
  done(repository: string, manifests: Known, blobs: Known): Promise<void>;
  /** Whether a step's other answer is still success on a retry (a DELETE of what is gone). */
  alreadyDone?(step: string, response: Response): boolean;
}

/** Where an attempt stopped: after every step, at a step's unexpected answer, or at a cut connection. */
type Outcome = { finished: true } | { finished: false; step: string; response?: Response; error?: unknown };

async function perform<C>(operation: Operation<C>, through: Api, context: C): Promise<Outcome> {
  for (const step of operation.steps) {
    let response: Response;
    try {
      response = await step.send(through, context);
    } catch (error) {
      return { finished: false, step: step.name, error };
    }
    if (response.status !== step.expect) return { finished: false, step: step.name, response };
  }
  return { finished: true };
}

const hex = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function readAll(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer());
}

/** A blob as the public API shows it: absent, or present with exactly its bytes (then true). */
async function assertBlobVisibleWhole(repository: string, digest: Digest, bytes: Buffer | undefined, what: string, mustExist: boolean): Promise<boolean> {
  const head = await api.head(`/v2/${repository}/blobs/${digest}`);
  if (head.status === 404 && !mustExist) return false;
  assert.equal(head.status, 200, `${what}: HEAD blob ${digest}`);
  if (bytes) assert.equal(head.headers.get('content-length'), String(bytes.length), `${what}: blob ${digest} size`);
  const { registry, content } = await api.getBlob(repository, digest);
  assert.equal(registry.headers.get('docker-content-digest'), digest);
  const got = await readAll(content);
  assert.equal(hex(got), digest, `${what}: blob ${digest} served with other bytes`);
  return true;
}

/**
 * The invariants, through the API: every listed tag resolves; every visible manifest (by tag or
 * by digest) has its exact bytes and all its blobs visible and whole; every visible blob is whole.
 * Then the stores themselves: the repository's tags, manifests and links reach existing items and
 * bytes, and each blob item's object holds bytes of its digest.
 */
async function assertInvariants(repository: string, manifests: Known, known: Known, what: string): Promise<void> {
  const list = await api.get(`/v2/${repository}/tags/list`);
  assert.ok(list.status === 200 || list.status === 404, `${what}: tags list answered ${list.status}`);
  const tags: string[] = list.status === 200 ? ((await list.json()) as { tags: string[] | null }).tags ?? [] : [];
  const visible = new Set<Digest>();
  for (const tag of tags) {
    const response = await api.get(`/v2/${repository}/manifests/${tag}`, { Accept: '*/*' });
    assert.equal(response.status, 200, `${what}: listed tag ${tag} does not resolve`);
    const bytes = await readAll(response);
    assert.equal(hex(bytes), response.headers.get('docker-content-digest'), `${what}: tag ${tag} served with other bytes`);
    visible.add(response.headers.get('docker-content-digest') as Digest);
  }
  for (const [digest, bytes] of manifests) {
    const response = await api.get(`/v2/${repository}/manifests/${digest}`, { Accept: '*/*' });
    if (response.status === 404) {
      assert.ok(!visible.has(digest), `${what}: a tag resolves to ${digest}, which is gone by digest`);
      continue;
    }
    assert.equal(response.status, 200, `${what}: GET manifest ${digest}`);
    assert.deepEqual(await readAll(response), bytes, `${what}: manifest ${digest} served with other bytes`);
    visible.add(digest);
  }
  for (const digest of visible) {
    const manifest = JSON.parse(manifests.get(digest)!.toString('utf8')) as { config: { digest: Digest }; layers: { digest: Digest }[] };
    for (const blob of [manifest.config, ...manifest.layers]) await assertBlobVisibleWhole(repository, blob.digest, known.get(blob.digest), `${what}: manifest ${digest}`, true);
  }
  const served = new Set<Digest>();
  for (const [digest, bytes] of known) if (await assertBlobVisibleWhole(repository, digest, bytes, what, false)) served.add(digest);

  await assertConsistent(metadata, blobs, what, { repositories: [repository], digests: [...known.keys()] });
  // Blob items the API did not serve (not linked here yet) must hold their digest's bytes too.
  for (const digest of known.keys()) {
    const item = served.has(digest) ? undefined : await metadata.getBlob(digest);
    if (item) assert.equal(hex(await blobs.read(item.key)), digest, `${what}: the stored object of blob ${digest} has other bytes`);
  }
}

/** A failed request's answer: OCI error JSON with a 5xx status, nothing of the fault or a stack. */
async function assertCleanFailure(outcome: Outcome, what: string): Promise<void> {
  if (outcome.finished || !outcome.response) return;
  const { response } = outcome;
  const body = await response.text();
  assert.ok(response.status >= 500, `${what}: step ${outcome.step} answered ${response.status} ${body}`);
  const errors = (JSON.parse(body) as { errors: { code: string; message: string }[] }).errors;
  assert.ok(errors.length >= 1 && typeof errors[0].code === 'string' && typeof errors[0].message === 'string', `${what}: ${body}`);
  assert.doesNotMatch(body, /injected|\n\s+at /i, `${what}: the answer shows internals`);
}

/** One attempt with the fault `mode` at call `failAt`, the checks, the retry and the checks again. */
async function attempt<C>(operation: Operation<C>, failAt: number, mode: FaultMode): Promise<FaultPlan> {
  const what = `${operation.name}: ${mode} at call ${failAt}`;
  const repository = uniqueRepo(`crash-${operation.name}`);
  const { context, manifests, blobs: known } = await operation.prepare(repository);
  const plan: FaultPlan = { calls: 0, failAt, mode, trace: [] };
  const killed = new Promise<void>((resolve) => (plan.onFault = mode === 'kill' ? resolve : undefined));
  const reportedBefore = reported;
  const server = await serveRegistry(backends, (store) => faulty(store, plan), (store) => faulty(store, plan));
  const performing = perform(operation, new Api(server), context());
  // A kill leaves the request hanging: the process is gone, its connections with it.
  const outcome = mode === 'kill' ? await Promise.race([performing, killed.then(() => undefined)]) : await performing;
  await server.stop();
  if (outcome) await assertCleanFailure(outcome, what);
  else await performing;
  if (outcome && !outcome.finished && outcome.response) assert.ok(reported > reportedBefore, `${what}: the server reported the failure`);

  await assertInvariants(repository, manifests, known, `${what}, after the fault`);
  for (const step of operation.steps) {
    const response = await step.send(api, context());
    if (response.status === step.expect || operation.alreadyDone?.(step.name, response)) continue;
    assert.fail(`${what}, the retry: ${step.name} answered ${response.status} ${await response.text()}`);
  }
  await operation.done(repository, manifests, known);
  await assertInvariants(repository, manifests, known, `${what}, after the retry`);
  return plan;
}

/** Store methods that change nothing. */
const READS = ['getUpload', 'read', 'open', 'size', 'list', 'getBlob', 'getBlobLink', 'getManifest', 'getTag', 'listTags', 'listImmutableRules', 'readRepository'];

/** A clean run's storage calls, then every call with every kind of fault; the calls and the number of faults. */
async function exercise<C>(operation: Operation<C>): Promise<{ calls: string[]; faults: number }> {
  const counting = await attempt(operation, Infinity, 'fail');
  const calls = counting.calls;
  let faults = 0;
  assert.ok(calls >= 1, `${operation.name}: no storage calls in a clean run`);
  for (let failAt = 1; failAt <= calls; failAt++) {
    // A read that fails after taking effect is one that fails.
    const modes = READS.includes(counting.trace![failAt - 1]) ? (['fail', 'kill'] as const) : (['fail', 'fail-after', 'kill'] as const);
    for (const mode of modes) {
      const plan = await attempt(operation, failAt, mode);
      assert.ok(plan.calls >= failAt, `${operation.name}: ${mode} at call ${failAt} was reached (${plan.calls} calls)`);
      faults++;
    }
  }
  return { calls: counting.trace!, faults };
}

/** POST, a PATCH of one part (multipart upload), a PATCH of a tail, PUT ?digest (the tail read back as the last part). */
const blobPush: Operation<{ repository: string; location: string; bytes: Buffer; digest: Digest }> = {
  name: 'blob-push',
  async prepare(repository) {
    const bytes = randomBlob(5 * MiB + 3000);
    const digest = sha256(bytes);
    const shared = { repository, location: '', bytes, digest };
    return { context: () => shared, manifests: new Map(), blobs: new Map([[digest, bytes]]) };
  },
  steps: [
    {
      name: 'POST',
      expect: 202,
      async send(a, c) {
        const response = await a.fetch(`/v2/${c.repository}/blobs/uploads/`, { method: 'POST', headers: { 'Content-Length': '0' } });
        c.location = response.headers.get('location') ?? '';
        return response;
      },
    },
    ...[0, 1].map((i) => ({
      name: `PATCH ${i + 1}`,
      expect: 202,
      async send(a: Api, c: { location: string; bytes: Buffer }) {
        const [start, end] = i === 0 ? [0, 5 * MiB + 1000] : [5 * MiB + 1000, c.bytes.length];
        const response = await a.patch(c.location, c.bytes.subarray(start, end), [start, end - 1]);
        c.location = response.headers.get('location') ?? c.location;
        return response;
      },
    })),
    { name: 'PUT', expect: 201, send: (a, c) => a.put(c.location, c.digest) },
  ],
  async done(repository, _manifests, known) {
    for (const digest of known.keys()) assert.equal((await api.head(`/v2/${repository}/blobs/${digest}`)).status, 200, `blob-push done: ${digest}`);
  },
};

/** docker's pattern: POST, one streamed PATCH of the whole blob (kept as one object), an empty PUT ?digest. */
const dockerBlobPush: Operation<{ repository: string; location: string; bytes: Buffer; digest: Digest }> = {
  name: 'docker-blob-push',
  async prepare(repository) {
    const bytes = randomBlob(MiB + 3000);
    const shared = { repository, location: '', bytes, digest: sha256(bytes) };
    return { context: () => shared, manifests: new Map(), blobs: new Map([[shared.digest, bytes]]) };
  },
  steps: [
    blobPush.steps[0],
    {
      name: 'PATCH',
      expect: 202,
      async send(a, c) {
        const response = await a.patch(c.location, c.bytes);
        c.location = response.headers.get('location') ?? c.location;
        return response;
      },
    },
    { name: 'PUT', expect: 201, send: (a, c) => a.put(c.location, c.digest) },
  ],
  done: blobPush.done,
};

/** An image manifest over blobs already pushed, PUT by tag. */
const manifestPush: Operation<{ repository: string; bytes: Buffer }> = {
  name: 'manifest-push',
  async prepare(repository) {
    const { manifest, known } = await pushBlobsOf(repository);
    const bytes = Buffer.from(JSON.stringify(manifest));
    return { context: () => ({ repository, bytes }), manifests: new Map([[sha256(bytes), bytes]]), blobs: known };
  },
  steps: [
    {
      name: 'PUT manifest',
      expect: 201,
      send: (a, c) => a.fetch(`/v2/${c.repository}/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: c.bytes }),
    },
  ],
  async done(repository, manifests) {
    const [[digest, bytes]] = manifests;
    for (const reference of ['v1', digest]) {
      const response = await api.get(`/v2/${repository}/manifests/${reference}`, { Accept: '*/*' });
      assert.equal(response.status, 200, `manifest-push done: ${reference}`);
      assert.deepEqual(await readAll(response), bytes);
    }
  },
};

/** DELETE by digest of a tagged image manifest. */
const manifestDelete: Operation<{ repository: string; digest: Digest }> = {
  name: 'manifest-delete',
  async prepare(repository) {
    const { manifest, known } = await pushBlobsOf(repository);
    const { bytes, digest } = await api.pushManifest(repository, 'v1', manifest);
    return { context: () => ({ repository, digest }), manifests: new Map([[digest, bytes]]), blobs: known };
  },
  steps: [{ name: 'DELETE manifest', expect: 202, send: (a, c) => a.delete(`/v2/${c.repository}/manifests/${c.digest}`) }],
  alreadyDone: (_step, response) => response.status === 404,
  async done(repository, manifests) {
    const [[digest]] = manifests;
    for (const reference of ['v1', digest]) assert.equal((await api.get(`/v2/${repository}/manifests/${reference}`)).status, 404, `manifest-delete done: ${reference}`);
  },
};

/** DELETE by tag: the tag goes, the manifest stays. */
const tagDelete: Operation<{ repository: string }> = {
  name: 'tag-delete',
  async prepare(repository) {
    const { manifest, known } = await pushBlobsOf(repository);
    const { bytes, digest } = await api.pushManifest(repository, 'v1', manifest);
    return { context: () => ({ repository }), manifests: new Map([[digest, bytes]]), blobs: known };
  },
  steps: [{ name: 'DELETE tag', expect: 202, send: (a, c) => a.delete(`/v2/${c.repository}/manifests/v1`) }],
  alreadyDone: (_step, response) => response.status === 404,
  async done(repository, manifests) {
    const [[digest]] = manifests;
    assert.equal((await api.get(`/v2/${repository}/manifests/v1`)).status, 404, 'tag-delete done: the tag');
    assert.equal((await api.get(`/v2/${repository}/manifests/${digest}`)).status, 200, 'tag-delete done: the manifest stays');
  },
};

/** DELETE of a blob no manifest names. */
const blobDelete: Operation<{ repository: string; digest: Digest }> = {
  name: 'blob-delete',
  async prepare(repository) {
    const bytes = randomBlob(3000);
    const digest = await api.pushBlob(repository, bytes);
    return { context: () => ({ repository, digest }), manifests: new Map(), blobs: new Map([[digest, bytes]]) };
  },
  steps: [{ name: 'DELETE blob', expect: 202, send: (a, c) => a.delete(`/v2/${c.repository}/blobs/${c.digest}`) }],
  alreadyDone: (_step, response) => response.status === 404,
  async done(repository, _manifests, known) {
    for (const digest of known.keys()) assert.equal((await api.head(`/v2/${repository}/blobs/${digest}`)).status, 404, `blob-delete done: ${digest}`);
  },
};

/** A config and a layer pushed through the clean registry, and a manifest naming them. */
async function pushBlobsOf(repository: string): Promise<{ manifest: Record<string, unknown>; known: Known }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, repository }));
  const layer = randomBlob(2048);
  const known: Known = new Map();
  for (const bytes of [config, layer]) known.set(await api.pushBlob(repository, bytes), bytes);
  return { manifest: imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]), known };
}

/** The test of one operation. */
function faultTest<C>(operation: Operation<C>): void {
  test(`${operation.name}: fail, fail after taking effect, or kill at each call; the invariants hold and the retry succeeds`, async (t) => {
    const { calls, faults } = await exercise(operation);
    t.diagnostic(`${operation.name}: ${calls.length} storage calls (${calls.join(', ')}), ${faults} faults`);
  });
}

describe('crash consistency: a fault at every storage call', () => {
  faultTest(blobPush);
  faultTest(dockerBlobPush);
  faultTest(manifestPush);
  faultTest(manifestDelete);
  faultTest(tagDelete);
  faultTest(blobDelete);
});
