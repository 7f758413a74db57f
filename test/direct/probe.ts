/** Looks at the S3 back end of a test registry directly. */
import { createS3Client, S3BlobStore } from '../../functions/storage/s3.js';
import type { TestRegistry } from '../support/stack.js';

export class BlobStoreProbe extends S3BlobStore {
  constructor(stack: TestRegistry) {
    super(createS3Client(stack.backends.config.s3), stack.backends.config.s3.bucket);
  }
}
