/**
 * The `verify` Lambda function: verifies the digest of blob bytes that reached S3 without passing
 * through the registry. Two kinds of events start it:
 * - `{uploadId}`: a direct upload whose `complete` request ran out of time (invoked asynchronously by
 *   the `api` function, and by itself until done);
 * - `{cacheBlob}`: a blob of a pull-through cache rule to copy from its upstream into S3, verified
 *   (invoked asynchronously by the `api` function; core/cache.ts);
 * - S3 `ObjectCreated` notifications for `incoming/` (front-door uploads: one whole-blob PUT that
 *   the CloudFront Function sent straight to S3). Keys arrive URL-encoded, spaces as `+` (S3 event
 *   message structure, https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
 */
import middy from '@middy/core';
import type { Context, S3Event, S3EventRecord } from 'aws-lambda';
import { auditLogger } from './http/audit.js';
import type { CopyJob } from './core/cache.js';
import { loadConfig } from './config.js';
import { spentUploadsFor } from './storage/spent-uploads.js';
import { registryFor } from './wiring.js';

const config = loadConfig();
// This function marks the upload URLs whose bytes arrived, for the edge to refuse replays.
const registry = registryFor(config, undefined, undefined, spentUploadsFor(config.keyValueStore));

const audit = auditLogger();

/** Time kept back from the invocation's limit to save the hash state and re-dispatch (ms). */
const MARGIN_MS = 60_000;

/** A direct upload to continue, a cached blob to copy, or S3's notification of objects created under `incoming/`. */
export type VerifyEvent = { uploadId: string } | { cacheBlob: CopyJob } | S3Event;

/** Pause before looking again at a session that another process is verifying (ms). */
const WAIT_MS = 1000;

/** Verifies until done or near the invocation's end, then hands over to a fresh invocation. */
export const handler = middy<VerifyEvent, void>().handler(async (event, context: Context) => {
  const deadline = Date.now() + context.getRemainingTimeInMillis() - MARGIN_MS;
  if ('uploadId' in event) return void (await finish(event.uploadId, deadline));
  if ('cacheBlob' in event) return registry.cache.copy(event.cacheBlob);
  for (const record of event.Records) {
    const { size, eTag } = record.s3.object;
    const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
    await registry.frontDoor.used(key);
    const state = await registry.frontDoor.arrived(key, size, `"${eTag.replace(/"/g, '')}"`, deadline);
    const final = state === 'verifying' || state === 'busy' ? await finish(key.split('/').pop()!, deadline) : state;
    if (final === 'verified' || final === 'failed') await auditUpload(record, key, final, context);
  }
});

/**
 * A whole-blob PUT through the front door reaches no API request: its audit line is written here,
 * once its verification is decided (the account is not known: CloudFront checked a signed URL).
 */
async function auditUpload(record: S3EventRecord, key: string, outcome: 'verified' | 'failed', context: Context): Promise<void> {
  const upload = await registry.frontDoor.uploadOf(key);
  if (!upload) return;
  audit({
    time: record.eventTime ?? new Date().toISOString(),
    requestId: record.responseElements?.['x-amz-request-id'] ?? context.awsRequestId,
    sourceIp: record.requestParameters?.sourceIPAddress ?? '',
    action: 'blob.push',
    repository: upload.repository,
    digest: upload.digest,
    status: outcome === 'verified' ? 201 : 400,
    bytes: record.s3.object.size,
  });
}

/**
 * Verifies session `id` until it is decided; while a request holds it (a manifest PUT verifying
 * the same blob), waits instead of re-invoking itself in a loop. Hands over to a fresh invocation
 * when this one runs out of time.
 */
async function finish(id: string, deadline: number): Promise<string | undefined> {
  for (;;) {
    const state = await registry.sessions.verify(id, deadline);
    if (state !== 'verifying') return state;
    if (Date.now() + WAIT_MS >= deadline) return void (await registry.dispatchVerification(id));
    await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
  }
}
