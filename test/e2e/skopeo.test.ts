/**
 * skopeo against the local server: docker-daemon → registry → OCI layout → docker-daemon, and
 * the OCI layout pushed back as an OCI manifest that docker pulls. skopeo's blob-info cache
 * (/var/lib/containers/cache for root) changes what it sends, so every run here gets its own:
 * a private mount namespace with a temporary folder bound over that path.
 */
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildImage, Cleanup, Docker, getManifest, readJson, RegistryProcess, RUN_ID, sha256, Skopeo, type RunResult } from './helpers.js';

const cleanup = new Cleanup();
let registry: RegistryProcess;
let docker: Docker;
let skopeoCli: Skopeo;

before(async () => {
  docker = await Docker.create(cleanup);
  registry = await RegistryProcess.start(cleanup);
  skopeoCli = await Skopeo.create(cleanup);
});
after(() => cleanup.run());

/** skopeo in its own mount namespace, with this file's blob-info cache bound over the system one. */
function skopeo(args: string[]): Promise<RunResult> {
  return skopeoCli.ok(args);
}

interface OciManifest {
  mediaType?: string;
  config: { digest: string; mediaType: string };
  layers: Array<{ digest: string; mediaType: string; size: number }>;
}

/** The manifest of `tag` in the OCI layout at `dir`, with its digest. */
async function ociLayoutManifest(dir: string, tag: string): Promise<{ digest: string; manifest: OciManifest }> {
  const index = await readJson<{ manifests: Array<{ digest: string; annotations?: Record<string, string> }> }>(join(dir, 'index.json'));
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `tag ${tag} in ${JSON.stringify(index)}`);
  const bytes = await readFile(join(dir, 'blobs', ...entry.digest.split(':')));
  assert.equal(sha256(bytes), entry.digest);
  return { digest: entry.digest, manifest: JSON.parse(bytes.toString('utf8')) as OciManifest };
}

test('skopeo: docker-daemon → registry → oci layout → docker-daemon keeps digests, layers and image ids', { timeout: 600_000 }, async () => {
  try {
    const local = `berth-e2e/skopeo:${RUN_ID}`;
    const id = await buildImage(docker, cleanup, local, [{ 's/one.bin': 1_000_000 }, { 's/two.txt': 'skopeo layer two\n' }, { 's/three.bin': 3_000_000 }]);
    const work = await cleanup.tempDir('skopeo');

    // docker-daemon → registry
    const remote = `${registry.host}/sk/img:${RUN_ID}`;
    await skopeo(['copy', '--dest-tls-verify=false', '--digestfile', join(work, 'pushed.digest'), `docker-daemon:${local}`, `docker://${remote}`]);
    const pushed = (await readFile(join(work, 'pushed.digest'), 'utf8')).trim();
    assert.match(pushed, /^sha256:[0-9a-f]{64}$/);
    await access(join(skopeoCli.blobInfoCache, 'blob-info-cache-v1.boltdb')); // the cache really was the private one
    const served = await getManifest(registry, 'sk/img', RUN_ID);
    assert.equal(served.status, 200);
    assert.equal(served.digestHeader, pushed);
    assert.equal(sha256(served.bytes), pushed);
    assert.equal(served.json.config.digest, id, 'config bytes unchanged: its digest is the image id');
    assert.equal(served.json.layers.length, 3);
    const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', `docker://${remote}`])).stdout) as { Digest: string; Layers: string[] };
    assert.equal(inspected.Digest, pushed);
    assert.deepEqual(inspected.Layers, served.json.layers.map((l) => l.digest));

    // registry → OCI layout. The OCI layout holds only OCI manifests, so skopeo converts the
    // manifest and the config (new bytes, new digests) but keeps the compressed layers.
    const layout = join(work, 'layout');
    await skopeo(['copy', '--src-tls-verify=false', `docker://${remote}`, `oci:${layout}:${RUN_ID}`]);
    const oci = await ociLayoutManifest(layout, RUN_ID);
    assert.equal(oci.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(oci.manifest.layers.map((l) => l.digest), served.json.layers.map((l) => l.digest), 'the same compressed layers');
    for (const layer of oci.manifest.layers) {
      assert.equal(sha256(await readFile(join(layout, 'blobs', ...layer.digest.split(':')))), layer.digest);
    }
    const ociConfigBytes = await readFile(join(layout, 'blobs', ...oci.manifest.config.digest.split(':')));
    assert.equal(sha256(ociConfigBytes), oci.manifest.config.digest);
    const diffIds = JSON.parse((await docker.ok(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', local])).stdout) as string[];
    assert.equal(diffIds.length, 3);
    assert.deepEqual(JSON.parse(ociConfigBytes.toString('utf8')).rootfs.diff_ids, diffIds, 'the same file system layers');
    const ociId = oci.manifest.config.digest;

    // OCI layout → docker-daemon: the image of that config, with the original layers
    const back = `berth-e2e/skopeo-back:${RUN_ID}`;
    cleanup.images(back);
    await skopeo(['copy', `oci:${layout}:${RUN_ID}`, `docker-daemon:${back}`]);
    assert.equal(await docker.imageId(back), ociId, 'docker-daemon keeps the config of the OCI image');
    assert.deepEqual(JSON.parse((await docker.ok(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', back])).stdout), diffIds);

    // OCI layout → registry as an OCI manifest, pulled by docker
    const ociRemote = `${registry.host}/sk/oci:${RUN_ID}`;
    await skopeo(['copy', '--dest-tls-verify=false', '--digestfile', join(work, 'oci.digest'), `oci:${layout}:${RUN_ID}`, `docker://${ociRemote}`]);
    const ociPushed = (await readFile(join(work, 'oci.digest'), 'utf8')).trim();
    assert.equal(ociPushed, oci.digest, 'the OCI manifest is stored byte for byte');
    const ociServed = await getManifest(registry, 'sk/oci', RUN_ID);
    assert.equal(ociServed.contentType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(ociServed.digestHeader, oci.digest);
    assert.equal(sha256(ociServed.bytes), oci.digest);

    await docker.forget(local);
    await docker.forget(back);
    cleanup.images(ociRemote);
    await docker.pull(ociRemote, 3);
    assert.equal(await docker.imageId(ociRemote), ociId);
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- registry log (last lines) ---\n${registry.tail()}`;
    throw error;
  }
});
