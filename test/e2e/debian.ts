/** A real Debian root filesystem for tests and benchmarks: debootstrap once, then a cached tarball. */
import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, RUN_ID, runOk } from './helpers.js';

async function cacheDir(): Promise<string> {
  for (const dir of [process.env.BERTH_E2E_CACHE, '/var/cache/berth-e2e', join(tmpdir(), 'berth-e2e-cache')]) {
    if (!dir) continue;
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, constants.W_OK);
      return dir;
    } catch {
      // next candidate
    }
  }
  throw new Error('no writable cache folder');
}

/** Unmounts whatever debootstrap left mounted below `dir` (/proc, /sys of a failed run). */
async function unmountBelow(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await run('umount', ['-l', point]);
}

/**
 * The cached tarball of a debootstrapped bookworm (minbase), shared by the e2e suite and the
 * benchmarks (BERTH_E2E_CACHE, else /var/cache/berth-e2e, else the temporary folder); made when missing.
 */
export async function debianTarball(): Promise<string> {
  const dir = await cacheDir();
  const tarball = join(dir, 'debian-bookworm-minbase.tar');
  try {
    await access(tarball);
    return tarball;
  } catch {
    // build it below
  }
  const work = join(dir, `build-${RUN_ID}`);
  const rootfs = join(work, 'rootfs');
  await mkdir(work, { recursive: true });
  try {
    await runOk('debootstrap', ['--variant=minbase', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { timeoutMs: 1_500_000 });
    await runOk('tar', ['--numeric-owner', '-C', rootfs, '-cf', join(work, 'rootfs.tar'), '.'], { timeoutMs: 300_000 });
    await rename(join(work, 'rootfs.tar'), tarball);
  } finally {
    await unmountBelow(work);
    await rm(work, { recursive: true, force: true });
  }
  return tarball;
}
