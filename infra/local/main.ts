/**
 * `npm start`: the registry at http://localhost:5000 on embedded DynamoDB and S3, like
 * `docker run -p 5000:5000 registry:2`. With `BERTH_S3_ENDPOINT` and `BERTH_DYNAMODB_ENDPOINT`
 * set it serves those back ends instead (MinIO and DynamoDB Local, or AWS).
 *
 * With `BERTH_EMULATE_LAMBDA=1` it serves the deployment as AWS would: an emulated CloudFront
 * distribution (infra/local/cloudfront-emulator.ts) runs the front door's CloudFront Function
 * (infra/aws/frontdoor/function.js) and sends whole-blob upload PUTs and blob GETs to S3, and
 * everything else to the bundled Lambda handler (dist/api/index.mjs, built when missing or stale)
 * behind an emulated API Gateway HTTP API with AWS's limits (infra/local/lambda-emulator.ts).
 * Objects created under `incoming/` start the bundled `verify` function, as S3's event
 * notification does. `BERTH_FRONT_DOOR=0` leaves CloudFront out (a deployment without the front door).
 *
 * Environment: `PORT` (5000), `HOST` (0.0.0.0), `BERTH_DATA_DIR` (./.berth),
 * `BERTH_EMULATE_LAMBDA`, `BERTH_FRONT_DOOR`, and the variables of functions/config.ts. Mistakes a person can fix (a
 * bad value, a port in use, a data folder another server holds) end it with one line on stderr.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type Config } from '../../functions/config.js';
import { DEFAULT_GRACE_MS, parseDuration } from '../../functions/core/gc.js';
import { registryFor } from '../../functions/wiring.js';
import { createCloudFrontEmulator } from './cloudfront-emulator.js';
import { DataDirInUse, EMULATOR_CREDENTIALS, localTokenKey, localUploadKey, startEmulators, type Emulators } from './emulators.js';
import { asyncInvoker, bundleLoader, createLambdaEmulator, ensureBundle, maxChunkBytes, VERIFY_BUNDLE } from './lambda-emulator.js';
import { createRegistryServer } from './server.js';

// The local stack runs on the machine's Node 20 by design; the SDK's notice about Node 22 is for Lambda.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage: npm start            (npm start -- --help: this text)
Serves the registry, by default at http://localhost:5000 on embedded DynamoDB and S3. Environment:
  PORT, HOST                 where to listen (5000, 0.0.0.0)
  BERTH_DATA_DIR             the data folder (./.berth); one server at a time
  BERTH_AUTH                 off (anonymous full access, like registry:2; the default) or required
  BERTH_S3_ENDPOINT, BERTH_DYNAMODB_ENDPOINT   other back ends instead of the embedded ones (both)
  BERTH_TABLE, BERTH_BUCKET, AWS_REGION, BERTH_BLOB_DELIVERY, BERTH_PART_SIZE, BERTH_MAX_CHUNK
  BERTH_GC_INTERVAL          how often garbage collection runs (24h; first run 10 minutes after start, or
                             after the interval when shorter); off: never (npx berth gc runs it by hand)
  BERTH_GC_GRACE             how old unreferenced data must be before gc deletes it (24h)
  BERTH_EMULATE_LAMBDA=1     the deployment: emulated CloudFront front door, bundled Lambda handler
                             behind an emulated API Gateway HTTP API (BERTH_FRONT_DOOR=0: no CloudFront)
README.md ("Local server") explains each.`;

/** Ends the process with one line a person can act on, no stack trace. */
function fatal(message: string, exitCode: number): never {
  console.error(`berth: ${message}`);
  process.exit(exitCode);
}

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
if (args.length > 0) fatal(`unknown argument ${args[0]}: npm start takes its settings from the environment (see npm start -- --help)`, 2);

const port = Number(process.env.PORT ?? 5000);
if (!/^\d{1,5}$/.test(process.env.PORT ?? '5000') || port > 65535) fatal(`invalid configuration: PORT: not a port number: ${process.env.PORT}`, 2);
const host = process.env.HOST ?? '0.0.0.0';
const dataDir = resolve(process.env.BERTH_DATA_DIR ?? '.berth');
// Like registry:2, anonymous full access unless BERTH_AUTH=required.
process.env.BERTH_AUTH ??= 'off';
const emulateLambda = process.env.BERTH_EMULATE_LAMBDA === '1';
const frontDoor = emulateLambda && process.env.BERTH_FRONT_DOOR !== '0';
let kvsFile = '';

const external = Boolean(process.env.BERTH_S3_ENDPOINT && process.env.BERTH_DYNAMODB_ENDPOINT);
let emulators: Emulators | undefined;
let config: Config;
let gcTimer: { intervalMs: number; graceMs: number } | undefined;

/** The local garbage collection timer (as the deployment's daily schedule); undefined: off. */
function gcSettings(): { intervalMs: number; graceMs: number } | undefined {
  const read = (name: string, fallback: number) => {
    const value = process.env[name];
    try {
      return value === undefined ? fallback : parseDuration(value);
    } catch (error) {
      throw new ConfigError(`invalid configuration: ${name}: ${(error as Error).message}`);
    }
  };
  if (process.env.BERTH_GC_INTERVAL === 'off') return undefined;
  const intervalMs = read('BERTH_GC_INTERVAL', 24 * 3600 * 1000);
  if (intervalMs < 1000) throw new ConfigError('invalid configuration: BERTH_GC_INTERVAL: at least 1s, or off');
  return { intervalMs, graceMs: read('BERTH_GC_GRACE', DEFAULT_GRACE_MS) };
}
try {
  // The login mode goes to endpoints.json with the endpoints: `npx berth user add` warns when it is off.
  emulators = external ? undefined : await startEmulators(dataDir, { auth: process.env.BERTH_AUTH });
  if (emulators) Object.assign(process.env, emulators.env);
  process.env.BERTH_TOKEN_KEY ??= await localTokenKey(dataDir);
  if (emulateLambda) {
    // As deployed: blob GETs answer 307 (Lambda responses stop at 6 MB), to the front door's signed
    // paths or to presigned S3 URLs, and the POST that starts an upload advertises the largest
    // chunk a request through API Gateway can carry.
    process.env.BERTH_BLOB_DELIVERY = frontDoor ? 'frontdoor' : 'redirect';
    process.env.BERTH_MAX_CHUNK ??= String(maxChunkBytes());
  }
  if (frontDoor) {
    const key = await localUploadKey(dataDir);
    process.env.BERTH_UPLOAD_KEY ??= key.base64;
    kvsFile = key.kvsFile;
  }
  // Checked in both modes: the bundled handler reads the same variables, but only on its first request.
  config = loadConfig();
  gcTimer = gcSettings();
} catch (error) {
  await emulators?.stop();
  if (error instanceof DataDirInUse) fatal(error.message, 1);
  if (error instanceof ConfigError) fatal(error.message, 2);
  throw error;
}
if (emulateLambda) ensureBundle();

/** The front end the clients talk to: CloudFront before API Gateway, API Gateway alone, or the plain server. */
async function frontEnd(): Promise<Server> {
  if (!emulateLambda) return createRegistryServer(registryFor(config));
  const gateway = createLambdaEmulator({ loadHandler: bundleLoader() });
  if (!frontDoor) return gateway;
  await new Promise<void>((done) => gateway.listen(0, '127.0.0.1', done));
  const verify = asyncInvoker(bundleLoader(VERIFY_BUNDLE));
  return createCloudFrontEmulator({
    functionFile: fileURLToPath(new URL('../aws/frontdoor/function.js', import.meta.url)),
    kvsFile,
    origins: {
      api: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`,
      blobs: {
        endpoint: config.s3.endpoint!,
        bucket: config.s3.bucket,
        region: config.s3.region,
        credentials: {
          accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? EMULATOR_CREDENTIALS.accessKeyId,
          secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? EMULATOR_CREDENTIALS.secretAccessKey,
        },
      },
    },
    onObjectCreated: (record) => verify({ Records: [record] }),
  });
}

const server = await frontEnd();
server.once('error', (error: NodeJS.ErrnoException) => {
  const reasons: Record<string, string> = {
    EADDRINUSE: 'the port is in use (another registry? set PORT to a free port)',
    EACCES: 'permission denied (set PORT to 1024 or above)',
    EADDRNOTAVAIL: 'this machine has no such address (set HOST)',
  };
  const message = `cannot listen on ${host}:${port}: ${reasons[error.code ?? ''] ?? error.message}`;
  void (emulators?.stop() ?? Promise.resolve()).finally(() => fatal(message, 1));
});
server.listen(port, host, () => {
  const where = emulators ? `embedded DynamoDB and S3 under ${dataDir}` : `${process.env.BERTH_S3_ENDPOINT} and ${process.env.BERTH_DYNAMODB_ENDPOINT}`;
  const how = frontDoor
    ? ', emulated CloudFront front door before the bundled Lambda handler behind an emulated API Gateway HTTP API'
    : emulateLambda
      ? ', bundled Lambda handler behind an emulated API Gateway HTTP API'
      : '';
  console.log(`berth: registry listening on http://${host === '0.0.0.0' ? 'localhost' : host}:${port} (${where}${how})`);
});

if (gcTimer) {
  // In this process whatever serves the requests (the bundled handler too): one registry for the timer.
  const collector = registryFor(config).gc;
  const { intervalMs, graceMs } = gcTimer;
  let running = false;
  const collect = async () => {
    if (running) return;
    running = true;
    try {
      const report = await collector.run({ graceMs });
      const d = report.deleted;
      console.log(
        `berth: gc finished: deleted ${d.manifests} manifests, ${d.tags} tags, ${d.links} links, ${d.blobs} blobs, ${d.uploads} uploads, ${d.repositories} repositories; ${report.bytesReclaimed} bytes reclaimed (${report.requests?.dynamodb ?? 0} DynamoDB, ${report.requests?.s3 ?? 0} S3 requests)`,
      );
    } catch (error) {
      console.error('berth: gc failed (the next run continues):', error);
    } finally {
      running = false;
    }
  };
  setTimeout(() => {
    void collect();
    setInterval(() => void collect(), intervalMs).unref();
  }, Math.min(10 * 60_000, intervalMs)).unref();
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void emulators?.stop().finally(() => process.exit(0));
    if (!emulators) process.exit(0);
  });
}
