/**
 * Measures the `api` bundle: its size, and its cold-start init time as a fresh Node process sees
 * it — process start, import of dist/api/index.mjs (configuration, SDK clients), and the first
 * request answered against the local back ends (the embedded DynamoDB and S3) — median of 10.
 *
 *   npm run build && npm run measure:cold-start        # or: node --import tsx test/deploy/cold-start.ts [runs]
 *
 * This is the part of a Lambda cold start the code controls; on AWS the runtime's own start and
 * the download of the zip come on top (and arm64 Graviton cores differ from this machine's).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import { EMULATOR_CREDENTIALS, startEmulators } from '../../infra/local/emulators.js';
import { API_BUNDLE, ensureBundle } from '../../infra/local/lambda-emulator.js';

const run = promisify(execFile);
const runs = Number(process.argv[2] ?? 10);

/** Runs in the fresh process: timestamps are ms since that process started (performance.timeOrigin). */
const CHILD = `
const bundle = process.env.BUNDLE_URL;
const imported = await import(bundle).then((m) => { globalThis.h = m.handler; return performance.now(); });
const event = {
  version: '2.0', routeKey: 'ANY /v2/{proxy+}', rawPath: '/v2/cold/start/manifests/latest', rawQueryString: '',
  headers: { host: 'localhost', accept: 'application/vnd.oci.image.manifest.v1+json' },
  requestContext: { http: { method: 'GET', path: '/v2/cold/start/manifests/latest', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'cold-start' }, requestId: 'x', routeKey: 'ANY /v2/{proxy+}', stage: '$default', timeEpoch: Date.now() },
  isBase64Encoded: false,
};
const result = await globalThis.h(event, { getRemainingTimeInMillis: () => 29000, awsRequestId: 'cold-start' });
const answered = performance.now();
process.stdout.write(JSON.stringify({ status: result.statusCode, imported, answered }));
`;

async function main(): Promise<void> {
  ensureBundle();
  const code = await readFile(API_BUNDLE);
  const map = await readFile(`${API_BUNDLE}.map`);
  const dir = await mkdtemp(join(tmpdir(), 'berth-cold-start-'));
  const emulators = await startEmulators(dir);
  try {
    const env = {
      ...process.env,
      ...emulators.env,
      BERTH_AUTH: 'off',
      BERTH_TOKEN_KEY: randomBytes(32).toString('base64'),
      AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      NODE_OPTIONS: '--enable-source-maps',
      BUNDLE_URL: pathToFileURL(API_BUNDLE).href,
    };
    const samples: Array<{ imported: number; answered: number }> = [];
    for (let i = 0; i < runs; i++) {
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', CHILD], { env });
      const sample = JSON.parse(stdout) as { status: number; imported: number; answered: number };
      if (sample.status !== 404) throw new Error(`unexpected answer ${sample.status} (expected 404 MANIFEST_UNKNOWN)`);
      samples.push(sample);
    }
    const median = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    };
    const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
    const report = {
      bundle: API_BUNDLE,
      bundleBytes: code.length,
      sourceMapBytes: map.length,
      compressedBytes: deflateRawSync(code).length + deflateRawSync(map).length,
      runs,
      node: process.version,
      cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
      medianImportMs: Number(median(samples.map((s) => s.imported)).toFixed(1)),
      medianFirstAnswerMs: Number(median(samples.map((s) => s.answered)).toFixed(1)),
      samplesFirstAnswerMs: samples.map((s) => Number(s.answered.toFixed(1))),
    };
    console.log(JSON.stringify(report, null, 2));
    console.log(
      `api bundle: ${kib(report.bundleBytes)} (+ ${kib(report.sourceMapBytes)} source map, ${kib(report.compressedBytes)} compressed in the zip); ` +
        `cold start, median of ${runs} fresh node ${process.version} processes: import ${report.medianImportMs} ms, ` +
        `first answer (a DynamoDB read) ${report.medianFirstAnswerMs} ms after process start`,
    );
    await stat(API_BUNDLE);
  } finally {
    await emulators.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
