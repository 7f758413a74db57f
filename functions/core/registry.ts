/**
 * The registry core: one object that owns every service, built from the two storage ports.
 * Transports (the Lambda entry, the local server) hold a `Registry` and nothing else.
 */
import { Blobs, type BlobDelivery } from './blobs.js';
import { Catalog } from './catalog.js';
import { Manifests } from './manifests.js';
import { DEFAULT_UPLOAD_SETTINGS, Uploads, type UploadSettings } from './uploads.js';
import type { BlobStore, MetadataStore } from '../storage/ports.js';

export interface Registry {
  uploads: Uploads;
  blobs: Blobs;
  manifests: Manifests;
  catalog: Catalog;
}

/** Wires the services onto `metadata` and `store`. */
export function createRegistry(
  metadata: MetadataStore,
  store: BlobStore,
  options: { delivery: BlobDelivery; uploads?: Partial<UploadSettings> },
): Registry {
  return {
    uploads: new Uploads(metadata, store, { ...DEFAULT_UPLOAD_SETTINGS, ...options.uploads }),
    blobs: new Blobs(metadata, store, options.delivery),
    manifests: new Manifests(metadata, store),
    catalog: new Catalog(metadata),
  };
}
