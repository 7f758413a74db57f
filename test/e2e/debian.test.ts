/**
 * docker push / pull of a real Debian root filesystem (debootstrap minbase, bookworm). The
 * tarball is built once and cached (BERTH_E2E_CACHE, else /var/cache/berth-e2e, else the
 * temporary folder), since debootstrap takes minutes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { debianTarball } from './debian.js';
import { Cleanup, Docker, getManifest, RegistryProcess, RUN_ID, sha256 } from './helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;

before(async () => {
  docker = await Docker.create(cleanup);
  registry = await RegistryProcess.start(cleanup);
});
after(() => cleanup.run());

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
