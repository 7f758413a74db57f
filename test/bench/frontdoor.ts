/**
 * Pushes of one image with a single random layer (300 MiB; 64 MiB with `--quick`) through the
 * emulated AWS deployment (`BERTH_EMULATE_LAMBDA=1 npm start`: emulated CloudFront front door,
 * emulated API Gateway + Lambda, the `verify` function), side by side with the classic path:
 *
 *  (a) Docker Engine 29 (containerd image store, private containerd 2.4 + dockerd from
 *      test/frontdoor/tools.sh' cache) `docker push` to the emulated deployment: one whole-blob
 *      `PUT` straight to S3 through the front door, checked in the registry log;
 *  (b) `npx berth push` of the same image (read from the system docker) to the same deployment;
 *  (c) the system docker (Debian dockerd 20.10, classic store) `docker push` to the reference
 *      registry;
 *  (d) the same system docker `docker push` to the emulated deployment (`POST`, one `PATCH` of the
 *      whole layer, `PUT ?digest=`: the front door sends the bytes to S3),
 * then the image is removed locally and the system docker pulls (d)'s image from the emulated
 * deployment and (c)'s from the reference, alternating which goes first. The registry's request
 * log gives the Lambda path's cost per request: how many requests reached API Gateway + Lambda
 * for (d)'s push and pull and the median time of each.
 *
 * Every round makes a fresh image (new random bytes) and every push goes to a fresh repository,
 * so nothing is skipped or mounted; the order of the three rotates per round. When the Docker 29
 * binaries are not in the cache, (a) is skipped (nothing is built here).
 */
import { access, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ensureBundle } from '../../infra/local/lambda-emulator.js';
import { buildImage, type Cleanup, Docker, importImage, RegistryProcess, run, RUN_ID, waitFor } from '../e2e/helpers.js';
import { frontdoorTools, startContainerd, startDocker29 } from '../frontdoor/daemons.js';
import { timed } from './docker.js';
import { ensureReferenceInstalled, ReferenceRegistry } from './reference.js';
import { median, MiB, progress, type Row } from './report.js';

/** Where test/frontdoor/tools.sh caches the Docker 29 daemon and containerd 2.4 (its pinned versions). */
function cachedToolPaths(): string[] {
  const cache = process.env.BERTH_TOOLS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'berth');
  return [
    join(cache, `containerd-${process.env.CONTAINERD_VERSION ?? 'v2.4.2'}`, 'bin', 'containerd'),
    join(cache, `containerd-${process.env.CONTAINERD_VERSION ?? 'v2.4.2'}`, 'bin', 'ctr'),
    join(cache, `dockerd-${process.env.MOBY_VERSION ?? 'v2.0.0-beta.24'}`, 'bin', 'dockerd'),
  ];
}

async function docker29Cached(): Promise<boolean> {
  for (const path of cachedToolPaths()) {
    try {
      await access(path);
    } catch {
      return false;
    }
  }
  return true;
}

/** Starts the execution environments and the verify function before the first timed push (see test/frontdoor/clients.test.ts). */
async function warmUp(registry: RegistryProcess): Promise<void> {
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      const response = await fetch(`${registry.url}/v2/`);
      await response.body?.cancel();
    }),
  );
  const blob = Buffer.from(`warm-up ${RUN_ID}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const post = await fetch(`${registry.url}/v2/bench/fd-warm-up/blobs/uploads/`, { method: 'POST' });
  await post.body?.cancel();
  if (post.status !== 202) throw new Error(`warm-up POST answered ${post.status}:\n${registry.tail()}`);
  const put = await fetch(`${registry.url}${post.headers.get('location')}?digest=${digest}`, { method: 'PUT', body: blob });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`warm-up PUT answered ${put.status} ${text}:\n${registry.tail()}`);
  await waitFor(
    'the verify function to publish the warm-up blob',
    async () => {
      const response = await fetch(`${registry.url}/v2/bench/fd-warm-up/blobs/${digest}`, { method: 'HEAD' });
      return response.status === 200;
    },
    30_000,
    200,
  );
}

/** The largest whole-blob upload PUT of `repository` that the front door sent to S3 since log line `mark` (bytes), or 0. */
function frontDoorPutBytes(registry: RegistryProcess, mark: number, repository: string): number {
  const pattern = new RegExp(`^PUT /v2/${repository.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/blobs/uploads/\\S+ 201 \\S+ in=(\\d+) origin=blobs`);
  let largest = 0;
  for (const line of registry.lines.slice(mark)) {
    const match = pattern.exec(line);
    if (match) largest = Math.max(largest, Number(match[1]));
  }
  return largest;
}

/** `<mediaType> (<size> bytes)` of each layer of `<url>/v2/<repository>/manifests/latest`, as the registry serves it. */
async function layerTypes(url: string, repository: string): Promise<string> {
  const accept = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');
  const response = await fetch(`${url}/v2/${repository}/manifests/latest`, { headers: { accept } });
  if (response.status !== 200) return `manifest ${response.status}`;
  const manifest = (await response.json()) as { layers?: Array<{ mediaType: string; size: number }> };
  return (manifest.layers ?? []).map((layer) => `\`${layer.mediaType}\` (${layer.size.toLocaleString('en-US')} bytes)`).join(', ');
}

/** An image whose every request fits through API Gateway and Lambda (each layer ≤ ~4.4 MiB), so that docker 20.10 can push it to the deployment. */
const SMALL = { title: 'four 1 MiB layers', layers: 4 };

/** The rows of the small image, and the requests its pushes and pulls sent to the Lambda path. */
function smallImageRows() {
  const row = (verb: string, metric: string): Row => ({
    operation: `docker ${verb} ${SMALL.title} ${verb === 'push' ? 'to' : 'from'} \`BERTH_EMULATE_LAMBDA=1\` (docker 20.10 with both)`,
    metric,
    better: 'lower',
    berth: [],
    reference: [],
  });
  return { push: row('push', 'wall time (s)'), pull: row('pull', 'wall time (s), empty cache'), requests: { push: [] as LambdaRequest[], pull: [] as LambdaRequest[] } };
}

/** A fresh image of {@link SMALL} pushed by docker 20.10 to both registries, then pulled from both (alternating), timed. */
async function smallImageRound(
  docker: Docker,
  cleanup: Cleanup,
  registry: RegistryProcess,
  reference: ReferenceRegistry,
  round: number,
  rows: ReturnType<typeof smallImageRows>,
): Promise<void> {
  const source = `berth-bench/fd-small:${RUN_ID}-r${round}`;
  await buildImage(docker, cleanup, source, Array.from({ length: SMALL.layers }, (_, i) => ({ [`data${i}.bin`]: MiB })));
  const targets = [
    { berth: true, ref: `${registry.host}/bench/fd-small-${RUN_ID}-r${round}:latest` },
    { berth: false, ref: `${reference.host}/bench/fd-small-${RUN_ID}-r${round}:latest` },
  ];
  const order = round % 2 === 0 ? targets : [...targets].reverse();
  for (const { berth, ref } of order) {
    cleanup.images(ref);
    await docker.ok(['tag', source, ref]);
    const mark = registry.lines.length;
    const seconds = await timed(() => docker.push(ref, 600_000));
    (berth ? rows.push.berth : rows.push.reference).push(seconds);
    if (berth) rows.requests.push.push(...lambdaRequests(registry, mark));
  }
  await docker.forget(source);
  for (const { berth, ref } of order) {
    const mark = registry.lines.length;
    const seconds = await timed(() => docker.pull(ref, SMALL.layers, 600_000));
    (berth ? rows.pull.berth : rows.pull.reference).push(seconds);
    if (berth) rows.requests.pull.push(...lambdaRequests(registry, mark));
    await docker.forget(ref);
  }
  progress(`frontdoor ${SMALL.title}: push ${rows.push.berth.at(-1)!.toFixed(2)} s / ${rows.push.reference.at(-1)!.toFixed(2)} s, pull ${rows.pull.berth.at(-1)!.toFixed(2)} s / ${rows.pull.reference.at(-1)!.toFixed(2)} s (deployment / reference, round ${round + 1})`);
}

/** One request that reached the emulated API Gateway + Lambda: its method and time to answer (ms). */
interface LambdaRequest {
  method: string;
  ms: number;
}

/**
 * The requests the API Gateway + Lambda emulator logged since line `mark`
 * (`<method> <path> <status> <ms>ms in=<bytes> out=<bytes>`; the front door's own lines carry
 * `origin=` instead of `out=`).
 */
function lambdaRequests(registry: RegistryProcess, mark: number): LambdaRequest[] {
  const requests: LambdaRequest[] = [];
  for (const line of registry.lines.slice(mark)) {
    const match = /^([A-Z]+) \/\S* \d{3} ([\d.]+)ms in=\d+ out=\d+/.exec(line);
    if (match) requests.push({ method: match[1], ms: Number(match[2]) });
  }
  return requests;
}

/** `N requests a round (HEAD n, …), median X ms` */
function describeRequests(requests: LambdaRequest[], rounds: number): string {
  const byMethod = new Map<string, number>();
  for (const { method } of requests) byMethod.set(method, (byMethod.get(method) ?? 0) + 1);
  const perRound = (n: number) => Number((n / rounds).toFixed(1));
  const counts = [...byMethod].map(([method, n]) => `${method} ${perRound(n)}`).join(', ');
  return `${perRound(requests.length)} requests a round (${counts}), median ${median(requests.map((r) => r.ms)).toFixed(1)} ms each`;
}

export interface FrontdoorResult {
  rows: Row[];
  notes: string[];
  /** The reference registry's version (`docker-registry --version`). */
  version: string;
}

export async function frontdoorRounds(cleanup: Cleanup, rounds: number, layerMiB: number): Promise<FrontdoorResult> {
  const title = `one ${layerMiB} MiB random layer`;
  const notes: string[] = [];
  const version = await ensureReferenceInstalled(progress);
  const docker = await Docker.create(cleanup);
  ensureBundle(undefined, progress);
  const registry = await RegistryProcess.start(cleanup, { env: { BERTH_EMULATE_LAMBDA: '1', BERTH_FRONT_DOOR: '1' } });
  await waitFor('the registry to say it runs behind the front door', () => registry.lines.some((line) => line.includes('emulated CloudFront front door')), 10_000);
  await warmUp(registry);
  const reference = await ReferenceRegistry.start(cleanup);
  progress(`emulated deployment on ${registry.url} (pid ${registry.pid}), reference ${version} on ${reference.url} (pid ${reference.pid})`);

  // Docker 29 on containerd 2.4, only when test/frontdoor/tools.sh has already built them.
  let docker29: ((args: string[], timeoutMs?: number) => ReturnType<Docker['ok']>) | undefined;
  let stopDocker29 = async () => {};
  if (await docker29Cached()) {
    const tools = await frontdoorTools(['containerd', 'docker']);
    const containerd = await startContainerd(tools.CONTAINERD!, { cleanup });
    const daemon = await startDocker29({ dockerd: tools.DOCKERD!, containerd, cleanup });
    stopDocker29 = async () => {
      await daemon.stop();
      await containerd.stop();
    };
    docker29 = (args, timeoutMs = 900_000) => docker.ok(args, { env: daemon.env, timeoutMs });
    const v = (await docker29(['version', '--format', 'dockerd {{.Server.Version}}, docker CLI {{.Client.Version}}'])).stdout.trim();
    progress(`Docker 29: ${v} (dockerd pid ${daemon.pid}) on containerd ${containerd.version} (pid ${containerd.pid})`);
    notes.push(`Docker 29 row: ${v} (containerd image store, overlayfs snapshotter) on containerd ${containerd.version}, private daemons from test/frontdoor/tools.sh.`);
  } else {
    progress(`Docker 29 tools not cached (${cachedToolPaths().join(', ')}): the Docker 29 row is skipped; build them with bash test/frontdoor/tools.sh containerd docker`);
    notes.push('_Docker 29 row skipped: its binaries are not in the cache of `test/frontdoor/tools.sh` (run `bash test/frontdoor/tools.sh containerd docker`)._');
  }

  const a: Row = {
    operation: `Docker 29 docker push ${title} to \`BERTH_EMULATE_LAMBDA=1\` (front door; reference: docker 20.10 push)`,
    metric: 'wall time (s)',
    better: 'lower',
    berth: [],
    reference: [],
  };
  const b: Row = {
    operation: `berth push ${title} to \`BERTH_EMULATE_LAMBDA=1\` (reference: docker 20.10 push)`,
    metric: 'wall time (s)',
    better: 'lower',
    berth: [],
    reference: [],
  };
  const pull: Row = {
    operation: `docker pull ${title} from \`BERTH_EMULATE_LAMBDA=1\` (\`berth push\`'s image; reference: docker 20.10's; docker 20.10 pulls both)`,
    metric: 'wall time (s), empty cache',
    better: 'lower',
    berth: [],
    reference: [],
  };
  const small = smallImageRows();
  const cTimes: number[] = [];
  /** What each client pushed as the layer in round 1 (media type, size). */
  const layers: string[] = [];
  const blobCache = await cleanup.tempDir('fd-blob-sources');
  try {
    for (let round = 0; round < rounds; round++) {
      const source = `berth-bench/frontdoor:${RUN_ID}-r${round}`;
      const made = performance.now();
      await importImage(docker, cleanup, source, { 'data.bin': layerMiB * MiB });
      if (docker29) {
        const dir = await cleanup.tempDir('fd-save');
        const archive = join(dir, 'image.tar');
        await docker.ok(['save', '-o', archive, source], { timeoutMs: 900_000 });
        await docker29(['load', '-i', archive]);
        await rm(dir, { recursive: true, force: true });
      }
      progress(`frontdoor round ${round + 1}/${rounds}: image made${docker29 ? ' and loaded into Docker 29' : ''} in ${((performance.now() - made) / 1000).toFixed(1)} s`);
      const slug = (client: string) => `bench/fd-${client}-${RUN_ID}-r${round}`;
      const pushes: Array<{ label: string; push: () => Promise<number> }> = [];
      if (docker29) {
        const push29 = docker29;
        pushes.push({
          label: 'Docker 29 → emulated deployment',
          push: async () => {
            const ref = `${registry.host}/${slug('docker29')}:latest`;
            await push29(['tag', source, ref]);
            const mark = registry.lines.length;
            const seconds = await timed(() => push29(['push', ref]));
            // The layer (gzip of random bytes: a little over its size) went up as one PUT to S3.
            const bytes = await waitFor(`the front door's whole-blob PUT for ${slug('docker29')}`, () => frontDoorPutBytes(registry, mark, slug('docker29')) || false, 10_000).catch(() => 0);
            if (bytes < layerMiB * MiB) throw new Error(`Docker 29's push of ${ref} did not go through the front door as one PUT (largest: ${bytes} bytes):\n${registry.tail()}`);
            a.berth.push(seconds);
            if (round === 0) layers.push(`Docker 29: ${await layerTypes(registry.url, slug('docker29'))}`);
            return seconds;
          },
        });
      }
      pushes.push({
        label: 'berth push → emulated deployment',
        push: async () => {
          const ref = `${registry.host}/${slug('berthpush')}:latest`;
          cleanup.images(ref);
          await docker.ok(['tag', source, ref]);
          const seconds = await timed(async () => {
            const result = await run('npx', ['berth', 'push', ref], {
              env: { ...docker.env, BERTH_DATA_DIR: registry.dataDir, BERTH_CACHE_DIR: blobCache },
              timeoutMs: 1_800_000,
            });
            if (result.code !== 0) throw new Error(`npx berth push ${ref} failed:\n${result.output}`);
          });
          b.berth.push(seconds);
          if (round === 0) layers.push(`berth push: ${await layerTypes(registry.url, slug('berthpush'))}`);
          return seconds;
        },
      });
      pushes.push({
        label: 'docker 20.10 → reference',
        push: async () => {
          const ref = `${reference.host}/${slug('docker20')}:latest`;
          cleanup.images(ref);
          await docker.ok(['tag', source, ref]);
          const seconds = await timed(() => docker.push(ref, 1_800_000));
          cTimes.push(seconds);
          if (round === 0) layers.push(`docker 20.10: ${await layerTypes(reference.url, slug('docker20'))}`);
          return seconds;
        },
      });
      // Rotate the order: round 0 a, b, c; round 1 b, c, a; round 2 c, a, b; …
      const shift = round % pushes.length;
      for (const { label, push } of [...pushes.slice(shift), ...pushes.slice(0, shift)]) {
        const seconds = await push();
        progress(`frontdoor ${title}: ${label}: ${seconds.toFixed(2)} s (round ${round + 1}/${rounds})`);
      }
      await docker.forget(source);
      // Both gzip-compressed by the pusher: (b)'s image from the deployment, (c)'s from the reference.
      const pulls = [
        { times: pull.berth, ref: `${registry.host}/${slug('berthpush')}:latest` },
        { times: pull.reference, ref: `${reference.host}/${slug('docker20')}:latest` },
      ];
      for (const { times, ref } of round % 2 === 0 ? pulls : pulls.reverse()) {
        const seconds = await timed(() => docker.pull(ref, 1, 900_000));
        times.push(seconds);
        progress(`frontdoor docker pull ${title} ← ${ref.split('/')[0]}: ${seconds.toFixed(2)} s (round ${round + 1}/${rounds})`);
        await docker.forget(ref);
      }
      await smallImageRound(docker, cleanup, registry, reference, round, small);
      if (docker29) {
        const tags = (await docker29(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n').filter((tag) => tag.includes(RUN_ID));
        if (tags.length > 0) await docker29(['rmi', ...tags]);
      }
    }
  } finally {
    await stopDocker29();
    await reference.stop();
    await registry.stop();
  }
  a.reference = [...cTimes];
  b.reference = [...cTimes];
  notes.push(
    `Lambda path per request (docker 20.10 and ${SMALL.title} through the emulated deployment, ${rounds} round(s); the API Gateway + Lambda emulator's time from request to answer, handler included): push ${describeRequests(small.requests.push, rounds)}; pull ${describeRequests(small.requests.pull, rounds)}.`,
  );
  notes.push(
    `Front-door pushes: ${rounds} round(s) of a fresh image with ${title}, each push to a fresh repository; layers pushed in round 1: ${layers.join('; ')}. (c) docker 20.10 → reference took ${median(cTimes).toFixed(2)} s (median). \`berth push\` times include the CLI's start (\`npx\` and the bundled CLI).`,
  );
  return { rows: [...(docker29 ? [a] : []), b, pull, small.push, small.pull], notes, version };
}
