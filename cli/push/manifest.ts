/**
 * Image manifests and media types. A Docker source (Engine, `docker save` archive) is pushed as
 * a Docker image manifest v2 schema 2 with gzip layers; an OCI layout keeps OCI media types.
 * The config is always pushed byte for byte, so the image id (the config digest) is preserved.
 */
import { sha256 } from './compress.js';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

export type ManifestFormat = 'docker' | 'oci';

/** A content descriptor (image-spec "Descriptor"); `size` in bytes. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A serialised manifest ready to PUT. */
export interface BuiltManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** The media type of a gzip layer in `format`. */
export function gzipLayerType(format: ManifestFormat): string {
  return format === 'docker' ? MEDIA.dockerLayerGzip : MEDIA.ociLayerGzip;
}

/** Whether a layer media type says its bytes are compressed (gzip or zstd), i.e. are pushed as they are. */
export function isCompressedLayerType(mediaType: string): boolean {
  return /(\+gzip|\+zstd|\.tar\.gzip|\.tar\.zstd)$/.test(mediaType) || mediaType.includes('foreign');
}

/** Whether a layer media type is an uncompressed tar (to be gzip-compressed before the push). */
export function isUncompressedLayerType(mediaType: string): boolean {
  return mediaType === MEDIA.ociLayerTar || mediaType === 'application/vnd.docker.image.rootfs.diff.tar';
}

/**
 * The manifest of an image whose config is `config` and whose layers are `layers` (in order),
 * with `annotations` (OCI only).
 */
export function buildManifest(format: ManifestFormat, config: Descriptor, layers: Descriptor[], annotations?: Record<string, string>): BuiltManifest {
  const mediaType = format === 'docker' ? MEDIA.dockerManifest : MEDIA.ociManifest;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(config),
    layers: layers.map(descriptor),
  };
  if (format === 'oci' && annotations && Object.keys(annotations).length > 0) manifest.annotations = annotations;
  const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
  return { bytes, mediaType, digest: sha256(bytes) };
}

function descriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.annotations && Object.keys(d.annotations).length ? { annotations: d.annotations } : {}) };
}
