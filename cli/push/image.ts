/**
 * The local image to push, whatever it was read from: its config (bytes, pushed unchanged) and
 * its layers in order, each either to be pushed as it is (already compressed) or to be
 * gzip-compressed first. Built from a `docker save` tarball (legacy layout: `manifest.json` with
 * `Config` and `Layers` paths to uncompressed `layer.tar` files; newer engines: the same
 * `manifest.json` pointing into an OCI layout's `blobs/`) or from an OCI image layout
 * (`index.json` → manifest → blobs).
 */
import { posix } from 'node:path';
import { sha256 } from './compress.js';
import { gzipLayerType, isUncompressedLayerType, MEDIA, type Descriptor, type ManifestFormat } from './manifest.js';
import type { LocalBytes } from './parts.js';
import type { TarContents, TarFile } from './tarball.js';

export interface LocalLayer {
  /** Identifies the bytes (a layer repeated in an image is pushed once). */
  key: string;
  /** 12 characters shown in progress lines. */
  id: string;
  /** Undefined when the bytes went straight into compression while the tarball was read. */
  bytes?: LocalBytes;
  /** Bytes as stored locally. */
  size: number;
  /** `sha256:` of the bytes as stored locally (the diffID when uncompressed). */
  digest: string;
  /** Set when the bytes are pushed as they are, with this media type; else they are gzip-compressed. */
  asIs?: { mediaType: string };
  annotations?: Record<string, string>;
}

export interface LocalImage {
  format: ManifestFormat;
  config: Descriptor & { bytes: Buffer };
  layers: LocalLayer[];
  /** The source's own manifest, pushed unchanged when every layer is pushed as it is. */
  original?: { bytes: Buffer; mediaType: string };
  annotations?: Record<string, string>;
}

/** Access to the blobs of an OCI image layout (a folder, or inside a tarball). */
export interface Layout {
  /** `index.json`. */
  index(): Promise<Buffer>;
  /** The bytes of a blob (`key` identifies them, default the digest). @throws Error when missing. */
  blob(digest: string): Promise<{ bytes?: LocalBytes; size: number; key?: string }>;
}

/** A problem with the image source, printed without a stack. */
export class SourceError extends Error {}

/**
 * The image of a docker-save tarball named `wanted` (`registry/repo:tag`), or its only image.
 * @throws SourceError when the tarball has no such image or is not an image tarball.
 */
export async function imageFromSaveTarball(contents: TarContents, wanted: string, tag: string): Promise<LocalImage> {
  if (!contents.get('manifest.json')) {
    if (contents.get('index.json')) return imageFromLayout(tarLayout(contents), tag);
    throw new SourceError('not an image tarball: it has neither manifest.json nor index.json');
  }
  const entries = JSON.parse(contents.text('manifest.json')) as { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
  const entry = entries.find((e) => e.RepoTags?.includes(wanted)) ?? (entries.length === 1 ? entries[0] : undefined);
  if (!entry) {
    const names = entries.flatMap((e) => e.RepoTags ?? []).join(', ');
    throw new SourceError(`the tarball holds ${entries.length} images (${names}) and none is ${wanted}`);
  }
  const config = Buffer.from(contents.text(entry.Config));
  let format: ManifestFormat = 'docker';
  const layers = entry.Layers.map((path): LocalLayer => {
    const file = contents.get(path);
    if (!file) throw new SourceError(`the tarball lacks layer ${path}`);
    if (file.kind === 'zstd') format = 'oci';
    return layerOfFile(file);
  });
  for (const layer of layers) if (layer.asIs?.mediaType === MEDIA.dockerLayerGzip) layer.asIs.mediaType = gzipLayerType(format);
  return { format, config: { mediaType: format === 'docker' ? MEDIA.dockerConfig : MEDIA.ociConfig, digest: sha256(config), size: config.length, bytes: config }, layers };
}

function layerOfFile(file: TarFile): LocalLayer {
  const base = posix.basename(file.name) === 'layer.tar' ? posix.basename(posix.dirname(file.name)) : posix.basename(file.name);
  const asIs = file.kind === 'gzip' ? { mediaType: MEDIA.dockerLayerGzip } : file.kind === 'zstd' ? { mediaType: MEDIA.ociLayerZstd } : undefined;
  return { key: file.name, id: base.slice(0, 12), bytes: file.bytes, size: file.size, digest: file.sha256, asIs };
}

/**
 * The image of an OCI layout: the manifest of `index.json` whose `org.opencontainers.image.ref.name`
 * is `tag`, or its only manifest.
 * @throws SourceError for no or several matching manifests, an image index, or a missing blob.
 */
export async function imageFromLayout(layout: Layout, tag: string): Promise<LocalImage> {
  const index = JSON.parse((await layout.index()).toString('utf8')) as { manifests?: Descriptor[] };
  const manifests = index.manifests ?? [];
  const named = manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const chosen = named.length === 1 ? named[0] : manifests.length === 1 ? manifests[0] : undefined;
  if (!chosen) {
    const names = manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? m.digest).join(', ');
    throw new SourceError(`the OCI layout has ${manifests.length} manifests (${names}); tag the one to push as ${tag}`);
  }
  if (chosen.mediaType === MEDIA.ociIndex || chosen.mediaType === MEDIA.dockerManifestList) {
    throw new SourceError('the OCI layout names an image index (several platforms); push one platform\'s manifest');
  }
  const manifestBytes = await readSmall(layout, chosen.digest);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { mediaType?: string; config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> };
  const mediaType = manifest.mediaType ?? chosen.mediaType ?? MEDIA.ociManifest;
  const format: ManifestFormat = mediaType === MEDIA.dockerManifest ? 'docker' : 'oci';
  const config = await readSmall(layout, manifest.config.digest);
  const layers: LocalLayer[] = [];
  for (const descriptor of manifest.layers) {
    const { bytes, size, key } = await layout.blob(descriptor.digest);
    const hex = descriptor.digest.split(':')[1] ?? descriptor.digest;
    const asIs = isUncompressedLayerType(descriptor.mediaType) ? undefined : { mediaType: descriptor.mediaType };
    layers.push({ key: key ?? descriptor.digest, id: hex.slice(0, 12), bytes, size, digest: descriptor.digest, asIs, annotations: descriptor.annotations });
  }
  return {
    format,
    config: { ...manifest.config, bytes: config },
    layers,
    original: { bytes: manifestBytes, mediaType },
    annotations: manifest.annotations,
  };
}

async function readSmall(layout: Layout, digest: string): Promise<Buffer> {
  const { bytes } = await layout.blob(digest);
  if (!bytes) throw new SourceError(`blob ${digest} is not a JSON document`);
  if ('bytes' in bytes) return bytes.bytes;
  const { readFile } = await import('node:fs/promises');
  return readFile(bytes.path);
}

/** The OCI layout inside a tarball (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`). */
export function tarLayout(contents: TarContents): Layout {
  return {
    index: async () => Buffer.from(contents.text('index.json')),
    blob: async (digest) => {
      const file = contents.get(`blobs/${digest.replace(':', '/')}`);
      if (!file) throw new SourceError(`the tarball lacks blob ${digest}`);
      return { bytes: file.bytes, size: file.size, key: file.name };
    },
  };
}
