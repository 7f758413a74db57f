/** Composition root: configuration → storage adapters → registry core. */
import type { Config } from './config.js';
import { createRegistry, type Registry } from './core/registry.js';
import { createDynamoClient, DynamoMetadataStore } from './storage/dynamodb.js';
import { createS3Client, S3BlobStore } from './storage/s3.js';

/** Builds the registry for `config`, with adapters on the configured endpoints. */
export function registryFor(config: Config): Registry {
  const metadata = new DynamoMetadataStore(createDynamoClient(config.dynamo), config.dynamo.table);
  const store = new S3BlobStore(createS3Client(config.s3), config.s3.bucket);
  return createRegistry(metadata, store, { delivery: config.delivery, uploads: { partSize: config.partSize } });
}
