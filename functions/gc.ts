/**
 * The `gc` Lambda function: garbage collection (core/gc.ts) on an EventBridge schedule (daily by
 * default: deploy parameter `gcSchedule`), with the grace period of the deploy parameter `gcGrace`
 * (`BERTH_GC_GRACE`, default 24h). A registry too big for one invocation is collected over several:
 * the run saves its state a minute before the invocation's end and invokes this function again,
 * asynchronously, to continue (as the `verify` function does).
 *
 * Events: the schedule's (`{}`), a continuation (`{continue: true}`), or an operator's
 * (`npx berth gc --stage <stage>`: `{graceMs, dryRun}`, invoked synchronously; answers the report).
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadConfig } from './config.js';
import { DEFAULT_GRACE_MS, parseDuration, type GcReport } from './core/gc.js';
import { spentUploadsFor } from './storage/spent-uploads.js';
import { registryFor } from './wiring.js';

const config = loadConfig();
// A finished run drops the marks of upload URLs that expired.
const registry = registryFor(config, undefined, undefined, spentUploadsFor(config.keyValueStore));
const lambda = new LambdaClient({ region: config.s3.region });
/** Checked at cold start: a bad deploy parameter fails the first invocation loudly. */
const GRACE_MS = process.env.BERTH_GC_GRACE ? parseDuration(process.env.BERTH_GC_GRACE) : DEFAULT_GRACE_MS;

/** Time kept back from the invocation's limit to save the run's state and hand over (ms). */
const MARGIN_MS = 60_000;

/** What starts a run: the schedule, a continuation, or an operator. */
export interface GcEvent {
  graceMs?: number;
  dryRun?: boolean;
  continue?: boolean;
}

export const handler = middy<GcEvent, GcReport>().handler(async (event, context: Context) => {
  const dryRun = event.dryRun === true;
  const graceMs = typeof event.graceMs === 'number' && event.graceMs >= 0 ? event.graceMs : GRACE_MS;
  const report = await registry.gc.run({ graceMs, dryRun, deadline: Date.now() + context.getRemainingTimeInMillis() - MARGIN_MS });
  const { planned, ...summary } = report;
  console.log(JSON.stringify({ gc: summary, planned: planned.length }));
  if (!report.finished) {
    await lambda.send(new InvokeCommand({ FunctionName: context.functionName, InvocationType: 'Event', Payload: JSON.stringify({ continue: true }) }));
  }
  return report;
});
