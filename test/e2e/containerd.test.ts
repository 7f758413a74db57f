/**
 * containerd's `ctr` against the local server: a private containerd imports a `docker save`
 * archive and pushes it (containerd uploads each blob in one monolithic PUT); a second
 * containerd with a fresh root (so that nothing is in its content store) pulls it back and
 * unpacks it with the native snapshotter.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildImage, Cleanup, Containerd, Docker, getManifest, RegistryProcess, RUN_ID } from './helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;

before(async () => {
  docker = await Docker.create(cleanup);
  registry = await RegistryProcess.start(cleanup);
});
after(() => cleanup.run());

test('ctr: import a docker save archive, push it, pull it into a fresh containerd', { timeout: 600_000 }, async () => {
  const work = await cleanup.tempDir('ctr');
  let current: Containerd | undefined;
  try {
    const local = `berth-e2e/ctr:${RUN_ID}`;
    const id = await buildImage(docker, cleanup, local, [{ 'c/one.bin': 2_000_000 }, { 'c/two.txt': 'ctr layer two\n' }]);
    const diffIds = JSON.parse((await docker.ok(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', local])).stdout) as string[];
    const archive = join(work, 'x.tar');
    await docker.ok(['save', '-o', archive, local]);

    // First containerd: import and push.
    const first = await Containerd.start(cleanup, join(work, 'a'));
    current = first;
    await first.ctr(['images', 'import', '--no-unpack', archive]);
    const imported = await first.images();
    assert.equal(imported.size, 1, `one imported image: ${JSON.stringify([...imported])}`);
    const [[localRef, digest]] = [...imported];
    assert.match(localRef, new RegExp(`berth-e2e/ctr:${RUN_ID}$`));
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);

    const remote = `${registry.host}/ctr/img:${RUN_ID}`;
    await first.ctr(['images', 'push', '--plain-http', remote, localRef]);
    const blobPuts = registry.requests('PUT', /^\/v2\/ctr\/img\/blobs\/uploads\/[0-9a-f-]+$/, 201);
    assert.equal(blobPuts.length, 3, `config and two layers uploaded:\n${blobPuts.join('\n')}`);
    const served = await getManifest(registry, 'ctr/img', RUN_ID);
    assert.equal(served.status, 200);
    assert.equal(served.digestHeader, digest, 'the registry serves the manifest containerd pushed');
    assert.equal(served.json.config.digest, id, 'the config blob is the docker image id');
    await first.stop();
    current = undefined;

    // Second containerd, fresh root: pull and unpack.
    const second = await Containerd.start(cleanup, join(work, 'b'));
    current = second;
    const pulled = await second.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'native', remote]);
    assert.match(pulled.output, new RegExp(`unpacking \\S+ ${digest}`), pulled.output);
    const images = await second.images();
    assert.equal(images.get(remote), digest, 'the pulled manifest digest is the pushed one');
    const manifest = JSON.parse((await second.ctr(['content', 'get', digest])).stdout) as { config: { digest: string } };
    assert.equal(manifest.config.digest, id);
    const config = JSON.parse((await second.ctr(['content', 'get', id])).stdout) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.rootfs.diff_ids, diffIds);
    const snapshots = (await second.ctr(['snapshots', '--snapshotter', 'native', 'ls'])).stdout.trim().split('\n').slice(1);
    assert.equal(snapshots.length, diffIds.length, `one unpacked snapshot per layer:\n${snapshots.join('\n')}`);
    await second.stop();
    current = undefined;
  } catch (error) {
    if (error instanceof Error) {
      error.message += `\n--- registry log (last lines) ---\n${registry.tail()}`;
      if (current) error.message += `\n--- containerd log (last lines) ---\n${await current.log()}`;
    }
    throw error;
  }
});
