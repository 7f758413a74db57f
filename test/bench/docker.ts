/**
 * `docker push` and `docker pull` wall times against both registries. Every round makes a fresh
 * image (new random bytes, or a new stamp file in the Debian tarball) and pushes it to a fresh
 * repository, so pushes really upload (docker would otherwise mount or skip known layers), then
 * removes the image locally and pulls it from each registry in turn into an empty cache.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { debianTarball } from '../e2e/debian.js';
import { buildImage, type Cleanup, type Docker, importImage, RUN_ID, runOk } from '../e2e/helpers.js';
import { MiB, ordered, progress, type Row, type Target } from './report.js';

/** An image kind: how to make a fresh image of it as `ref`. */
export interface ImageKind {
  slug: string;
  title: string;
  make(docker: Docker, cleanup: Cleanup, ref: string): Promise<void>;
}

export const RANDOM_64: ImageKind = {
  slug: 'random64',
  title: 'one 64 MiB random layer',
  make: async (docker, cleanup, ref) => void (await importImage(docker, cleanup, ref, { 'data.bin': 64 * MiB })),
};

export const TEN_LAYERS: ImageKind = {
  slug: 'ten5',
  title: 'ten 5 MiB layers',
  make: async (docker, cleanup, ref) =>
    void (await buildImage(
      docker,
      cleanup,
      ref,
      Array.from({ length: 10 }, (_, i) => ({ [`data${i}.bin`]: 5 * MiB })),
    )),
};

export const DEBIAN: ImageKind = {
  slug: 'debian',
  title: 'Debian bookworm minbase',
  async make(docker, cleanup, ref) {
    const tarball = await debianTarball();
    // A copy with a stamp file appended: a new layer digest every round, same Debian inside.
    const dir = await cleanup.tempDir('debian');
    const copy = join(dir, 'rootfs.tar');
    await runOk('cp', [tarball, copy], { timeoutMs: 300_000 });
    await mkdir(join(dir, 'stamp', 'etc'), { recursive: true });
    await writeFile(join(dir, 'stamp', 'etc', 'berth-bench'), `${RUN_ID} ${ref} ${randomBytes(16).toString('hex')}\n`);
    await runOk('tar', ['--numeric-owner', '-rf', copy, '-C', join(dir, 'stamp'), './etc/berth-bench']);
    cleanup.images(ref);
    await docker.ok(['import', '--change', `LABEL berth-bench=${RUN_ID}`, '--change', 'CMD ["/bin/bash"]', copy, ref], { timeoutMs: 600_000 });
    await rm(dir, { recursive: true, force: true });
  },
};


/** Wall time of `fn` in seconds. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

/** Removes every tag of the image `ref` (they all carry RUN_ID) and checks the image is gone. */
export async function forget(docker: Docker, ref: string): Promise<void> {
  await docker.forget(ref);
}

/**
 * `rounds` rounds of: fresh image; push to both (alternating which goes first); remove it
 * locally; pull from each (alternating), removing it after each pull.
 */
export async function dockerRounds(
  docker: Docker,
  cleanup: Cleanup,
  targets: [Target, Target],
  kind: ImageKind,
  rounds: number,
): Promise<Row[]> {
  const push: Row = { operation: `docker push ${kind.title}`, metric: 'wall time (s)', better: 'lower', berth: [], reference: [] };
  const pull: Row = { operation: `docker pull ${kind.title}`, metric: 'wall time (s), empty cache', better: 'lower', berth: [], reference: [] };
  for (let round = 0; round < rounds; round++) {
    const source = `berth-bench/${kind.slug}:${RUN_ID}-r${round}`;
    await kind.make(docker, cleanup, source);
    const layers = await docker.layerCount(source);
    const refs = new Map<Target, string>();
    for (const target of targets) {
      const ref = `${target.host}/bench/${kind.slug}-${RUN_ID}-r${round}:latest`;
      refs.set(target, ref);
      cleanup.images(ref);
      await docker.ok(['tag', source, ref]);
    }
    for (const target of ordered(targets, round)) {
      const seconds = await timed(() => docker.push(refs.get(target)!, 900_000));
      (target.label === 'Berth' ? push.berth : push.reference).push(seconds);
      progress(`${push.operation} → ${target.label}: ${seconds.toFixed(2)} s (round ${round + 1}/${rounds}, ${layers} layer(s))`);
    }
    await forget(docker, source);
    for (const target of ordered(targets, round)) {
      const ref = refs.get(target)!;
      const seconds = await timed(() => docker.pull(ref, layers, 900_000));
      (target.label === 'Berth' ? pull.berth : pull.reference).push(seconds);
      progress(`${pull.operation} ← ${target.label}: ${seconds.toFixed(2)} s (round ${round + 1}/${rounds})`);
      await forget(docker, ref);
    }
  }
  return [push, pull];
}
