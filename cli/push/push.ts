/**
 * `berth push`: checks that the registry answers, reads the image (compressing layers while a
 * tarball is still being read: layers.ts), gets every layer into the repository, then the
 * config, then PUTs the manifest by tag and prints docker's final line
 * `<tag>: digest: <digest> size: <manifest bytes>`.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobCache } from './blob-cache.js';
import { BlobPusher } from './blobs.js';
import { repositoryScope } from './challenge.js';
import { DEFAULT_LEVEL, sha256 } from './compress.js';
import { lookupCredentials, readDockerConfig } from './docker-config.js';
import { header } from './http.js';
import { imageFromLayout, imageFromSaveTarball, type LocalImage } from './image.js';
import { idOf, LayerPipeline } from './layers.js';
import { buildManifest } from './manifest.js';
import { Progress, type LayerLine, type Output } from './progress.js';
import { formatReference, registryBaseUrl, type ImageReference } from './reference.js';
import { RegistryClient } from './registry.js';
import { engineEndpoint, exportFromEngine, openArchive, openLayoutFolder } from './sources.js';
import { readTarball } from './tarball.js';

export type SourceKind = 'docker' | 'oci-layout' | 'docker-archive';

export interface PushOptions {
  reference: ImageReference;
  from: SourceKind;
  /** Archive file or layout folder (not for `docker`). */
  path?: string;
  /** Plain HTTP to a registry that is not on this machine. */
  insecure?: boolean;
  /** gzip level 1…9. */
  level?: number;
  out?: Output;
}

/** Pushes the image; returns the manifest digest and size. @throws Error (RegistryError, SourceError, …) */
export async function push(options: PushOptions): Promise<{ digest: string; size: number }> {
  const { reference } = options;
  const out = options.out ?? process.stdout;
  const progress = new Progress(out);
  const temp = await mkdtemp(join(tmpdir(), 'berth-push-'));
  const onSignal = () => {
    rmSync(temp, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  const cache = await BlobCache.load();
  const client = new RegistryClient(registryBaseUrl(reference.registry, options.insecure), async () =>
    lookupCredentials(await readDockerConfig(), reference.registry),
  );
  const blobs = new BlobPusher(client, reference.registry, reference.repository, cache);
  const layers = new LayerPipeline({ blobs, cache, progress, temp, level: options.level ?? DEFAULT_LEVEL });
  try {
    progress.note(`The push refers to repository [${reference.registry}/${reference.repository}]`);
    await client.ping();
    // Fails early (before any export or compression) when the login is missing or may not push.
    await client.call('HEAD', `/v2/${reference.repository}/manifests/${reference.tag}`, { scopes: [repositoryScope(reference.repository, ['pull', 'push'])] });
    const image = await readImage(options, temp, progress, layers, cache);
    const descriptors = await Promise.all(image.layers.map((layer) => layers.push(layer, image.format)));
    const config = { digest: image.config.digest, size: image.config.bytes.length };
    if (!(await blobs.place(config))) await blobs.upload(config, { bytes: image.config.bytes }, { onBytes: () => undefined, onVerifying: () => undefined });
    const manifest =
      image.original && image.layers.every((layer) => layer.asIs)
        ? { bytes: image.original.bytes, mediaType: image.original.mediaType, digest: sha256(image.original.bytes) }
        : buildManifest(image.format, image.config, descriptors, image.annotations);
    const answer = await client.call('PUT', `/v2/${reference.repository}/manifests/${reference.tag}`, {
      scopes: [repositoryScope(reference.repository, ['pull', 'push'])],
      headers: { 'Content-Type': manifest.mediaType },
      body: manifest.bytes,
    });
    RegistryClient.expect(answer, `PUT manifest ${formatReference(reference)}`, 201);
    const digest = header(answer.headers, 'docker-content-digest') ?? manifest.digest;
    progress.stop();
    out.write(`${reference.tag}: digest: ${digest} size: ${manifest.bytes.length}\n`);
    return { digest, size: manifest.bytes.length };
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    await layers.settle();
    await cache.save();
    await rm(temp, { recursive: true, force: true });
  }
}

/** Reads the image from its source, handing tarball layers to `layers` as they stream in. */
async function readImage(options: PushOptions, temp: string, progress: Progress, layers: LayerPipeline, cache: BlobCache): Promise<LocalImage> {
  const wanted = formatReference(options.reference);
  if (options.from === 'oci-layout') {
    const { layout, tag } = await openLayoutFolder(options.path ?? '.');
    return imageFromLayout(layout, tag ?? options.reference.tag);
  }
  let tarball;
  let inline = true;
  if (options.from === 'docker') {
    const exported = await exportFromEngine(wanted, engineEndpoint());
    tarball = exported.tarball;
    // Every layer known from an earlier push: spool rather than start compressing what is likely there already.
    inline = !exported.diffIds.every((diffId) => cache.compressedOf(diffId));
  } else tarball = await openArchive(options.path!);
  const reading = new Map<string, { line: LayerLine; read: number; size: number }>();
  const claimed = new Set<string>();
  const contents = await readTarball(tarball, temp, {
    claim: (name, size, head) => {
      const sink = inline ? layers.claim(name, size, head) : undefined;
      if (sink) claimed.add(name);
      return sink;
    },
    onStart: (name, size) => {
      if (size > 64 * 1024 && (name.endsWith('/layer.tar') || name.startsWith('blobs/'))) reading.set(name, { line: progress.line(idOf(name)), read: 0, size });
    },
    onBytes: (name, bytes) => {
      const entry = reading.get(name);
      if (entry && !claimed.has(name)) entry.line.count('Reading', (entry.read += bytes), entry.size);
    },
    onFile: (file) => {
      const entry = reading.get(file.name);
      if (entry && file.bytes && 'bytes' in file.bytes) progress.remove(entry.line.id);
      else if (entry?.line.status === 'Reading') entry.line.set('Waiting');
      layers.spooled(file);
    },
  });
  const image = await imageFromSaveTarball(contents, wanted, options.reference.tag);
  const ids = new Set(image.layers.map((layer) => layer.id));
  for (const { line } of reading.values()) if (!ids.has(line.id)) progress.remove(line.id);
  return image;
}
