/**
 * The `verify` Lambda function: continues verifying a direct upload's digest where a request ran
 * out of time (invoked asynchronously by the `api` function, and by itself until done).
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadConfig } from './config.js';
import { registryFor } from './wiring.js';

const registry = registryFor(loadConfig());

/** Time kept back from the invocation's limit to save the hash state and re-dispatch (ms). */
const MARGIN_MS = 60_000;

/** `{uploadId}` → verify until done or near the invocation's end, then hand over to a fresh invocation. */
export const handler = middy<{ uploadId: string }, void>().handler(async (event, context: Context) => {
  const state = await registry.direct.verify(event.uploadId, Date.now() + context.getRemainingTimeInMillis() - MARGIN_MS);
  if (state === 'verifying') await registry.dispatchVerification(event.uploadId);
});
