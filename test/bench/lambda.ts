/**
 * Lambda cold start and size: `npm run build`, the size of dist/api/index.mjs, and its cold
 * initialisation in fresh Node processes (test/bench/coldstart.mjs: import + the first request
 * against the local back ends, an API Gateway payload 2.0 event), median of N; warm latency of
 * the handler called directly. Also the size (and cold start) of bundle variants that would
 * shrink it (test/bench/bundle.ts).
 */
import { gzipSync } from 'node:zlib';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, RUN_ID, runOk } from '../e2e/helpers.js';
import { EMULATOR_CREDENTIALS } from '../../infra/local/emulators.js';
import { startRegistry } from '../support/stack.js';
import { buildVariant, type BundleReport, codeBytes, composition, VARIANTS } from './bundle.js';
import { seedImage } from './http.js';
import { median, progress } from './report.js';

export interface ColdStart {
  nodeStartMs: number;
  importMs: number;
  firstRequestMs: number;
  warm: Record<string, { p50: number; p99: number }>;
}

export interface LambdaReport {
  /** dist/api/index.mjs and its chunks. */
  bundleBytes: number;
  /** dist/api/index.mjs alone (what a cold start parses before the chunks it imports statically). */
  entryBytes: number;
  bundleGzipBytes: number;
  runs: ColdStart[];
  median: { nodeStartMs: number; importMs: number; firstRequestMs: number; initMs: number; warm: Record<string, { p50: number; p99: number }> };
  composition: BundleReport;
  variants: Array<{ name: string; change: string; bytes: number; initMs?: number; importMs?: number }>;
  nodeVersion: string;
}

function summarise(runs: ColdStart[]): LambdaReport['median'] {
  const names = Object.keys(runs[0].warm);
  return {
    nodeStartMs: median(runs.map((r) => r.nodeStartMs)),
    importMs: median(runs.map((r) => r.importMs)),
    firstRequestMs: median(runs.map((r) => r.firstRequestMs)),
    initMs: median(runs.map((r) => r.importMs + r.firstRequestMs)),
    warm: Object.fromEntries(names.map((n) => [n, { p50: median(runs.map((r) => r.warm[n].p50)), p99: median(runs.map((r) => r.warm[n].p99)) }])),
  };
}

export async function lambdaBench(options: { coldRuns: number; variantRuns: number; build: boolean }): Promise<LambdaReport> {
  if (options.build) {
    progress('npm run build');
    await runOk('npm', ['run', 'build'], { timeoutMs: 300_000 });
  }
  const bundle = join(ROOT, 'dist/api/index.mjs');
  const bundleBytes = await codeBytes(join(ROOT, 'dist/api'));
  const entryBytes = (await stat(bundle)).size;
  const code = (await readdir(join(ROOT, 'dist/api'), { recursive: true })).filter((f) => f.endsWith('.mjs')).sort();
  const bundleGzipBytes = gzipSync(Buffer.concat(await Promise.all(code.map((f) => readFile(join(ROOT, 'dist/api', f))))), { level: 9 }).length;

  // The bundle stores blobs in S3, as deployed.
  const stack = await startRegistry({ BERTH_BLOB_DELIVERY: 'redirect' }, undefined, undefined, { blobs: 's3' });
  const scratch = join(ROOT, 'test/bench', `.variants-${RUN_ID}`);
  try {
    const repository = `bench/cold-${RUN_ID}`;
    const { layer } = await seedImage(stack.url, repository);
    const { config } = stack.backends;
    const env = {
      BERTH_TABLE: config.dynamo.table,
      BERTH_BUCKET: config.s3.bucket,
      BERTH_DYNAMODB_ENDPOINT: config.dynamo.endpoint,
      BERTH_S3_ENDPOINT: config.s3.endpoint,
      BERTH_BLOB_DELIVERY: 'redirect',
      BERTH_AUTH: 'off',
      BERTH_TOKEN_KEY: randomBytes(32).toString('base64'),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      BENCH_REPOSITORY: repository,
      BENCH_LAYER: layer,
      // No inherited NODE_OPTIONS (tsx loaders would slow the import).
      NODE_OPTIONS: '',
    };
    const coldRuns = async (file: string, count: number, warm: number): Promise<ColdStart[]> => {
      const runs: ColdStart[] = [];
      for (let i = 0; i < count; i++) {
        const result = await runOk(process.execPath, [join(ROOT, 'test/bench/coldstart.mjs')], {
          env: { ...env, BENCH_BUNDLE: file, BENCH_WARM: String(warm) },
          timeoutMs: 120_000,
        });
        runs.push(JSON.parse(result.stdout.trim().split('\n').pop()!) as ColdStart);
      }
      return runs;
    };
    progress(`cold starts of ${bundle} (${options.coldRuns} fresh processes)`);
    const runs = await coldRuns(bundle, options.coldRuns, 200);
    const summary = summarise(runs);
    progress(`cold init median ${summary.initMs.toFixed(1)} ms (import ${summary.importMs.toFixed(1)} ms + first request ${summary.firstRequestMs.toFixed(1)} ms)`);

    progress('bundle composition (esbuild metafile of infra/build.mjs) and variants');
    const built = [];
    for (const [index, variant] of VARIANTS.entries()) built.push({ variant, ...(await buildVariant(variant, join(scratch, String(index)))) });
    // Cold starts of the variants interleaved round by round, so that drifting load hits all alike.
    const variantRuns = built.map(() => [] as ColdStart[]);
    for (let round = 0; round < options.variantRuns; round++) {
      for (const [index, b] of built.entries()) variantRuns[index].push(...(await coldRuns(b.file, 1, 20)));
    }
    const variants: LambdaReport['variants'] = built.map((b, index) => {
      const s = options.variantRuns > 0 ? summarise(variantRuns[index]) : undefined;
      progress(`variant "${b.variant.name}": ${b.bytes} bytes${s ? `, cold init ${s.initMs.toFixed(1)} ms` : ''}`);
      return { name: b.variant.name, change: b.variant.change, bytes: b.bytes, initMs: s?.initMs, importMs: s?.importMs };
    });
    const report: BundleReport = composition(built[0].metafile);
    return { bundleBytes, entryBytes, bundleGzipBytes, runs, median: summary, composition: report, variants, nodeVersion: process.version };
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await stack.stop();
  }
}
