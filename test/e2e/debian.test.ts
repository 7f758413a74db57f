/**
 * docker push / pull of a real Debian root filesystem (debootstrap minbase, bookworm). The
 * tarball is built once and cached (BERTH_E2E_CACHE, else /var/cache/berth-e2e, else the
 * temporary folder), since debootstrap takes minutes.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Cleanup, Docker, getManifest, RegistryProcess, run, RUN_ID, runOk, sha256 } from './helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;

before(async () => {
  docker = await Docker.create(cleanup);
  registry = await RegistryProcess.start(cleanup);
});
after(() => cleanup.run());

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

/** The cached tarball of a debootstrapped bookworm (minbase), made when missing. */
async function debianTarball(): Promise<string> {
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

test('docker push/pull: Debian bookworm root filesystem (debootstrap, docker import)', { timeout: 2_400_000 }, async () => {
  try {
    const tarball = await debianTarball();
    const ref = `${registry.host}/e2e/debian:bookworm-${RUN_ID}`;
    cleanup.images(ref);
    // The label keeps this image id apart from any other import of the same cached tarball.
    await docker.ok(['import', '--change', `LABEL berth-e2e=${RUN_ID}`, '--change', 'CMD ["/bin/bash"]', tarball, ref], { timeoutMs: 600_000 });
    const id = await docker.imageId(ref);

    const { digest, output } = await docker.push(ref, 900_000);
    assert.match(output, /: Pushed$/m);
    const manifest = await getManifest(registry, 'e2e/debian', digest);
    assert.equal(manifest.status, 200);
    assert.equal(sha256(manifest.bytes), digest);
    assert.equal(manifest.json.config.digest, id);
    assert.equal(manifest.json.layers.length, 1);
    assert.ok(manifest.json.layers[0].size > 20 * 1024 * 1024, `a Debian layer of ${manifest.json.layers[0].size} bytes is too small`);

    await docker.forget(ref);
    await docker.pull(ref, 1, 900_000);
    assert.equal(await docker.imageId(ref), id, 'the pulled image has the id of the pushed one');

    // The pulled file system is a working Debian.
    const release = await docker.ok(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/debian_version'], { timeoutMs: 300_000 });
    assert.match(release.stdout.trim(), /^12(\.\d+)?$/);
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- registry log (last lines) ---\n${registry.tail()}`;
    throw error;
  }
});
