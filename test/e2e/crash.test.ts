/**
 * A crash in the middle of a push: the registry is killed with SIGKILL while docker streams a
 * 64 MiB layer into it. No partial blob may become visible, and after a restart on the same
 * data folder and port the same push must succeed and pull back intact.
 *
 * docker compresses layers while it uploads, so the layer digest is known only afterwards. A
 * first push of the same image to a separate witness registry gives it (docker's gzip output
 * is deterministic); the final manifest is checked to name that same digest, so the 404 after
 * the crash is about the very blob whose upload was cut off.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Cleanup, Docker, folderBytes, getManifest, head, importImage, MiB, RegistryProcess, RUN_ID, sleep, type RunResult } from './helpers.js';

const cleanup = new Cleanup();
let docker: Docker;

before(async () => {
  docker = await Docker.create(cleanup);
});
after(() => cleanup.run());

test('kill -9 during a layer upload: no partial blob, a restarted registry takes the push', { timeout: 900_000 }, async (t) => {
  const witness = await RegistryProcess.start(cleanup);
  let registry = await RegistryProcess.start(cleanup);
  const logs = () => `--- registry log (last lines) ---\n${registry.tail()}`;
  try {
    const repository = 'crash/big';
    const ref = `${registry.host}/${repository}:${RUN_ID}`;
    const id = await importImage(docker, cleanup, ref, { 'random.bin': 64 * MiB });

    // The layer digest docker will push, from the witness.
    const witnessRef = `${witness.host}/${repository}:${RUN_ID}`;
    cleanup.images(witnessRef);
    await docker.ok(['tag', ref, witnessRef]);
    const witnessPush = await docker.push(witnessRef);
    const witnessManifest = await getManifest(witness, repository, witnessPush.digest);
    assert.equal(witnessManifest.json.layers.length, 1);
    const layer = witnessManifest.json.layers[0];
    assert.ok(layer.size > 64 * MiB);
    await docker.ok(['rmi', witnessRef]);
    await witness.stop();

    // Push, and kill the registry once the layer's bytes are flowing into its storage.
    const before = await folderBytes(registry.dataDir);
    const pushing: Promise<RunResult> = docker.run(['push', ref], { timeoutMs: 300_000 });
    let pushEnded = false;
    void pushing.then(() => (pushEnded = true));
    const uploadStarted = () => registry.requests('POST', /^\/v2\/crash\/big\/blobs\/uploads\/$/, 202).length > 0;
    const deadline = Date.now() + 120_000;
    let grown = 0;
    for (;;) {
      if (pushEnded) assert.fail(`docker push ended before the crash:\n${(await pushing).output}\n${logs()}`);
      if (Date.now() > deadline) assert.fail(`the layer upload never got going (data folder grew by ${grown} bytes)\n${logs()}`);
      if (uploadStarted()) {
        grown = (await folderBytes(registry.dataDir)) - before;
        if (grown >= 4 * MiB) break;
      }
      await sleep(20);
    }
    await registry.crash();
    // The kill came in the middle of the upload: no request finished the blob.
    const finished = registry.requests('PATCH', /^\/v2\/crash\/big\/blobs\/uploads\//).concat(registry.requests('PUT', /^\/v2\/crash\/big\/blobs\/uploads\//));
    assert.deepEqual(finished, [], `the upload had already finished when the registry was killed\n${logs()}`);
    assert.ok(grown < layer.size, `killed after ${grown} of ${layer.size} bytes`);
    t.diagnostic(`registry killed with ${grown} of ${layer.size} layer bytes in its data folder`);

    // docker gives up (after its retries) against the dead registry.
    const crashed = await pushing;
    assert.notEqual(crashed.code, 0, `docker push cannot succeed against a killed registry:\n${crashed.output}`);
    t.diagnostic(`docker push after the crash: ${crashed.output.trim().split('\n').pop()}`);
    await assert.rejects(fetch(`${registry.url}/v2/`), 'nothing answers while the registry is down');

    // Restart on the same data folder and port: nothing of the cut-off push is visible.
    const { port, dataDir } = registry;
    registry = await RegistryProcess.start(cleanup, { port, dataDir });
    assert.equal((await head(registry, `${repository}/blobs/${layer.digest}`)).status, 404, `HEAD of the partial layer\n${logs()}`);
    const get = await fetch(`${registry.url}/v2/${repository}/blobs/${layer.digest}`);
    await get.body?.cancel();
    assert.equal(get.status, 404, 'GET of the partial layer');
    assert.equal((await head(registry, `${repository}/manifests/${RUN_ID}`)).status, 404, 'no tag from the failed push');

    // The same push again: it uploads the layer anew and succeeds.
    const again = await docker.push(ref);
    assert.match(again.output, /: Pushed$/m, again.output);
    assert.doesNotMatch(again.output, /Layer already exists/);
    const manifest = await getManifest(registry, repository, RUN_ID);
    assert.equal(manifest.status, 200);
    assert.equal(manifest.digestHeader, again.digest);
    assert.equal(manifest.json.config.digest, id);
    assert.deepEqual(manifest.json.layers, witnessManifest.json.layers, 'the layer whose upload was cut off is the one pushed now');
    const blob = await head(registry, `${repository}/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    assert.equal(Number(blob.headers.get('content-length')), layer.size);

    await docker.forget(ref);
    await docker.pull(ref, 1);
    assert.equal(await docker.imageId(ref), id, 'the pulled image has the id of the pushed one');
  } catch (error) {
    if (error instanceof Error && !error.message.includes('--- registry log')) error.message += `\n${logs()}`;
    throw error;
  }
});
