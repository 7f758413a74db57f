/**
 * `npm start`: the registry at http://localhost:5000 on the native metadata store
 * (infra/local/native-store.ts) and blobs as files under the data folder
 * (functions/storage/files.ts; `BERTH_BLOB_DIR` elsewhere), like `docker run -p 5000:5000
 * registry:2`; `BERTH_BACKEND=emulators` puts the embedded DynamoDB emulator in the store's place.
 * With `BERTH_S3_ENDPOINT` and `BERTH_DYNAMODB_ENDPOINT` set it serves those back ends instead
 * (MinIO and DynamoDB Local, or AWS). A data folder that holds the embedded S3's objects (s3rver,
 * before blobs were files) keeps using it.
 *
 * With `BERTH_EMULATE_LAMBDA=1` it serves the deployment as AWS would: an emulated CloudFront
 * distribution (infra/local/cloudfront-emulator.ts) runs the front door's CloudFront Function
 * (infra/aws/frontdoor/function.js) and sends whole-blob upload PUTs and blob GETs to S3, and
 * everything else to the bundled Lambda handler (dist/api/index.mjs, built when missing or stale)
 * behind an emulated API Gateway HTTP API with AWS's limits (infra/local/lambda-emulator.ts).
 * Objects created under `incoming/` start the bundled `verify` function, as S3's event
 * notification does. Blobs are then in the embedded S3 (s3rver), as deployed they are in S3. `BERTH_FRONT_DOOR=0` leaves CloudFront out (a deployment without the front door).
 * The bundled handlers reach DynamoDB as on AWS, so this mode always runs the embedded DynamoDB emulator.
 *
 * Environment: `PORT` (5000), `HOST` (127.0.0.1; 0.0.0.0 with `BERTH_AUTH=required`; any other
 * address without logins needs `BERTH_OPEN=1`), `BERTH_DATA_DIR` (./.berth),
 * `BERTH_EMULATE_LAMBDA`, `BERTH_FRONT_DOOR`, `BERTH_TLS_CERT` and `BERTH_TLS_KEY` (HTTPS, infra/local/tls.ts), and the variables of functions/config.ts. Mistakes a person can fix (a
 * bad value, a port in use, a data folder another server holds) end it with one line on stderr.
 */
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRedirectTarget, ConfigError, loadConfig, type Config } from '../../functions/config.js';
import { DEFAULT_GRACE_MS, parseDuration } from '../../functions/core/gc.js';
import { registryFor } from '../../functions/wiring.js';
import { createCloudFrontEmulator } from './cloudfront-emulator.js';
import { originProof } from '../../functions/core/signed-paths.js';
import { DataDirInUse } from './data-dir.js';
import { nativeJournal } from './native-store.js';
import { EMULATOR_CREDENTIALS, localCacheKey, localObjectUrlKey, localTokenKey, localUploadKey, startEmulators, type Emulators } from './emulators.js';
import { FileBlobStore } from '../../functions/storage/files.js';
import { asyncInvoker, bundleLoader, createLambdaEmulator, ensureBundle, maxChunkBytes, VERIFY_BUNDLE } from './lambda-emulator.js';
import { BODY_IDLE_MS, createRegistryServer, currentRequestHost } from './server.js';
import { loadTls, TlsError, type TlsFiles } from './tls.js';

// The local stack runs on the machine's Node 20 by design; the SDK's notice about Node 22 is for Lambda.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage: npm start            (npm start -- --help: this text)
Serves the registry, by default at http://127.0.0.1:5000, keeping metadata and blobs in the data folder. Environment:
  PORT, HOST                 where to listen (5000; 127.0.0.1, or 0.0.0.0 with BERTH_AUTH=required)
  BERTH_BODY_IDLE_TIMEOUT    seconds a request body may send nothing before it fails (60)
  BERTH_OPEN=1               serve anonymous full access beyond this machine (HOST other than loopback)
  BERTH_DATA_DIR             the data folder (./.berth); one server at a time
  BERTH_AUTH                 off (anonymous full access, like registry:2; the default) or required
  BERTH_HOSTS                host names clients use (registry.example.com,…): tokens only for these
  BERTH_TLS_CERT, BERTH_TLS_KEY   PEM certificate (chain) and key: HTTPS on the same port
  BERTH_BACKEND              native (the default: metadata in memory, journaled to the data folder) or
                             emulators (the embedded DynamoDB emulator, as BERTH_EMULATE_LAMBDA=1 uses)
  BERTH_BLOB_DIR             the folder of blob files (<data folder>/blobs)
  BERTH_S3_ENDPOINT, BERTH_DYNAMODB_ENDPOINT   other back ends instead of the embedded ones (both)
  BERTH_TABLE, BERTH_BUCKET, AWS_REGION, BERTH_BLOB_DELIVERY, BERTH_PART_SIZE, BERTH_MAX_CHUNK
  BERTH_GC_INTERVAL          how often garbage collection runs (24h; first run 10 minutes after start, or
                             after the interval when shorter); off: never (npx berth gc runs it by hand)
  BERTH_GC_GRACE             how old unreferenced data must be before gc deletes it (24h)
  BERTH_EMULATE_LAMBDA=1     the deployment: emulated CloudFront front door, bundled Lambda handler
                             behind an emulated API Gateway HTTP API (BERTH_FRONT_DOOR=0: no CloudFront)
README.md ("Local server") explains each.`;

/** Whether `host` is this machine only (an IPv4 127.x address, ::1 or localhost). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The names and addresses clients may use for a server listening on `host`: itself, and on every
 * interface also `localhost` and this machine's name and addresses.
 */
function registryHostNames(host: string): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [host];
  return [host, 'localhost', hostname(), ...Object.values(networkInterfaces()).flat().flatMap((a) => (a ? [a.address] : []))];
}

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
const dataDir = resolve(process.env.BERTH_DATA_DIR ?? '.berth');
const idleSeconds = Number(process.env.BERTH_BODY_IDLE_TIMEOUT ?? BODY_IDLE_MS / 1000);
if (!(idleSeconds > 0)) fatal(`invalid configuration: BERTH_BODY_IDLE_TIMEOUT: not a positive number of seconds: ${process.env.BERTH_BODY_IDLE_TIMEOUT}`, 2);
// Told its host names, the server still answers to this machine's own (the CLI, a local client).
if (process.env.BERTH_HOSTS) process.env.BERTH_HOSTS += ',localhost,127.0.0.1,[::1]';
// Like registry:2, anonymous full access unless BERTH_AUTH=required.
process.env.BERTH_AUTH ??= 'off';
const loginsRequired = process.env.BERTH_AUTH === 'required';
// Anonymous full access (push and delete included) stays on this machine unless a person asks
// for more in so many words; with logins required, every interface, as a team server wants.
const host = process.env.HOST ?? (loginsRequired ? '0.0.0.0' : '127.0.0.1');
const openToNetwork = !loginsRequired && !isLoopback(host);
if (openToNetwork && process.env.BERTH_OPEN !== '1') {
  fatal(`HOST=${host} would give anyone who can reach it anonymous full access (push and delete included): set BERTH_AUTH=required, or BERTH_OPEN=1 to serve it anyway`, 2);
}
const emulateLambda = process.env.BERTH_EMULATE_LAMBDA === '1';
const backend = process.env.BERTH_BACKEND ?? 'native';
if (backend !== 'native' && backend !== 'emulators') fatal(`invalid configuration: BERTH_BACKEND: native or emulators, not ${backend}`, 2);
// The bundled Lambda handlers reach DynamoDB as deployed: the emulated deployment keeps the emulator.
const metadataBackEnd = backend === 'native' && !emulateLambda ? 'native' : 'dynalite';
// The two metadata back ends keep separate files: say so rather than show an empty registry silently.
if (metadataBackEnd === 'dynalite' && existsSync(nativeJournal(dataDir))) {
  console.warn(`berth: warning: ${dataDir} holds the native store's metadata (metadata.journal), which ${emulateLambda ? 'the emulated deployment' : 'BERTH_BACKEND=emulators'} does not read: it serves the embedded DynamoDB emulator's own data (dynamodb/)`);
}
const frontDoor = emulateLambda && process.env.BERTH_FRONT_DOOR !== '0';
let tls: TlsFiles | undefined;
try {
  tls = await loadTls();
} catch (error) {
  if (error instanceof TlsError) fatal(error.message, 2);
  throw error;
}
if (tls && emulateLambda) fatal('BERTH_TLS_CERT and BERTH_TLS_KEY serve the plain server; the emulated deployment (BERTH_EMULATE_LAMBDA=1) speaks HTTP, as CloudFront\'s TLS is not emulated', 2);
let kvsFile = '';

const external = Boolean(process.env.BERTH_S3_ENDPOINT && process.env.BERTH_DYNAMODB_ENDPOINT);
if (emulateLambda && process.env.BERTH_BLOB_DIR) fatal('BERTH_BLOB_DIR serves the plain server; the emulated deployment (BERTH_EMULATE_LAMBDA=1) keeps blobs in the embedded S3, as deployed', 2);

/** Whether the data folder holds objects of the embedded S3 (s3rver), which served `npm start` before blobs were files. */
async function holdsS3Objects(): Promise<boolean> {
  return (await readdir(join(dataDir, 's3', 'berth')).catch(() => [])).length > 0;
}
// Blobs as files, unless the deployment is emulated (S3, as on AWS) or the data folder is an older one.
const blobDir = process.env.BERTH_BLOB_DIR || (emulateLambda || external || (await holdsS3Objects()) ? undefined : join(dataDir, 'blobs'));
// The emulated deployment's S3 would not have the blobs the data folder's metadata names.
if (emulateLambda && !external && (await readdir(join(dataDir, 'blobs')).catch(() => [])).length > 0) {
  fatal(`the data folder ${dataDir} keeps its blobs as files (npm start); the emulated deployment (BERTH_EMULATE_LAMBDA=1) keeps them in its embedded S3: set BERTH_DATA_DIR to another folder`, 2);
}
let files: FileBlobStore | undefined;
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
  emulators = external ? undefined : await startEmulators(dataDir, { auth: process.env.BERTH_AUTH, metadata: metadataBackEnd, blobDir });
  // The embedded back ends' delivery ('stream') is a default: BERTH_BLOB_DELIVERY=redirect npm start stays redirect.
  if (emulators) Object.assign(process.env, emulators.env, process.env.BERTH_BLOB_DELIVERY ? { BERTH_BLOB_DELIVERY: process.env.BERTH_BLOB_DELIVERY } : {});
  process.env.BERTH_TOKEN_KEY ??= await localTokenKey(dataDir);
  process.env.BERTH_CACHE_KEY ??= await localCacheKey(dataDir);
  if (emulateLambda) {
    // As deployed: blob GETs answer 307 (Lambda responses stop at 6 MB), to the front door's signed
    // paths or to presigned S3 URLs, and the POST that starts an upload advertises the largest
    // chunk a request through API Gateway can carry.
    process.env.BERTH_BLOB_DELIVERY = frontDoor ? 'frontdoor' : 'redirect';
    process.env.BERTH_MAX_CHUNK ??= String(maxChunkBytes());
  }
  if (frontDoor) {
    const key = await localUploadKey(dataDir, process.env.BERTH_UPLOAD_KEY || undefined);
    process.env.BERTH_UPLOAD_KEY = key.base64;
    kvsFile = key.kvsFile;
    // As deployed: the registry marks used upload URLs in the store the function reads.
    process.env.BERTH_KEY_VALUE_STORE = `file:${kvsFile}`;
  }
  // Checked in both modes: the bundled handler reads the same variables, but only on its first request.
  config = loadConfig();
  // The embedded S3 is part of this process; another S3 server on this host name would see passwords.
  if (external) checkRedirectTarget(config, registryHostNames(host));
  gcTimer = gcSettings();
  if (config.blobDir) {
    const secret = Buffer.from(await localObjectUrlKey(dataDir), 'base64');
    // Presigned URLs (redirects, direct uploads) are answered by this server, at the name clients use for it.
    files = new FileBlobStore(config.blobDir, { key: { version: 1, secret }, origin: () => objectOrigin() });
    await files.sweep();
  }
} catch (error) {
  await emulators?.stop();
  if (error instanceof DataDirInUse) fatal(error.message, 1);
  if (error instanceof ConfigError) fatal(error.message, 2);
  // Everything this block writes is under the data folder: a folder that cannot be made or written.
  const { code, path } = error as NodeJS.ErrnoException;
  if (code && path) fatal(`cannot use the data folder ${dataDir}: ${code} on ${path}; set BERTH_DATA_DIR to a folder this user can write`, 2);
  throw error;
}
if (emulateLambda) ensureBundle();

/** The front end the clients talk to: CloudFront before API Gateway, API Gateway alone, or the plain server. */
async function frontEnd(): Promise<Server> {
  if (!emulateLambda) return createRegistryServer(registryFor(config, undefined, undefined, undefined, { metadata: emulators?.metadata, blobs: files }), { bodyIdleMs: idleSeconds * 1000, tls, objects: files });
  const gateway = createLambdaEmulator({ loadHandler: bundleLoader() });
  if (!frontDoor) return gateway;
  await new Promise<void>((done) => gateway.listen(0, '127.0.0.1', done));
  const verify = asyncInvoker(bundleLoader(VERIFY_BUNDLE));
  return createCloudFrontEmulator({
    // From infra/local/ and from its bundle in dist/local/ alike.
    functionFile: fileURLToPath(new URL('../../infra/aws/frontdoor/function.js', import.meta.url)),
    kvsFile,
    origins: {
      api: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`,
      // As the deployed distribution: its proof that a request came through it (see originProof).
      apiHeaders: { 'x-berth-origin': originProof({ version: config.uploadKey!.version, secret: Buffer.from(process.env.BERTH_UPLOAD_KEY!, 'base64') }) },
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

/**
 * `http(s)://name:port` of this server for presigned URLs of the file store: the first of
 * BERTH_HOSTS; else, listening on every interface, the host the client named in its request (the
 * name it reaches this server by; loopback outside a request); else the address it listens on.
 */
function objectOrigin(): string {
  const listening = ['0.0.0.0', '::'].includes(host) ? (currentRequestHost() ?? '127.0.0.1') : host.includes(':') ? `[${host}]` : host;
  const name = config.hosts?.[0] ?? listening;
  return `${tls ? 'https' : 'http'}://${/:\d+$/.test(name) ? name : `${name}:${(server.address() as AddressInfo).port}`}`;
}
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
  const blobs = config.blobDir ? `blobs in ${config.blobDir}` : `blobs in ${emulators ? 'embedded S3' : process.env.BERTH_S3_ENDPOINT}`;
  const metadata = emulators?.metadata ? 'native metadata store' : emulators ? 'embedded DynamoDB' : process.env.BERTH_DYNAMODB_ENDPOINT;
  const where = emulators ? `data folder ${dataDir} (${metadata}; ${blobs})` : `back ends ${metadata}; ${blobs}`;
  const how = frontDoor
    ? '; emulated CloudFront front door before the bundled Lambda handler behind an emulated API Gateway HTTP API'
    : emulateLambda
      ? '; bundled Lambda handler behind an emulated API Gateway HTTP API'
      : '';
  const mode = loginsRequired ? 'logins required' : 'anonymous full access (no logins; BERTH_AUTH=required asks for them)';
  const address = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}${isLoopback(host) ? ' (this machine only)' : ['0.0.0.0', '::'].includes(host) ? ' (every interface)' : ''}`;
  console.log(`berth: registry listening on ${address}; ${mode}; ${where}${how}`);
  if (tls && tls.validTo.getTime() < Date.now()) console.error(`berth: WARNING: the certificate in BERTH_TLS_CERT expired on ${tls.validTo.toISOString()}: clients will refuse it`);
  if (openToNetwork) console.error(`berth: WARNING: BERTH_OPEN=1: anyone who can reach ${address} can pull, push and delete without logging in`);
});

if (gcTimer) {
  // In this process whatever serves the requests (the bundled handler too): one registry for the timer.
  const collector = registryFor(config, undefined, undefined, undefined, { metadata: emulators?.metadata, blobs: files }).gc;
  const { intervalMs, graceMs } = gcTimer;
  let running = false;
  const collect = async () => {
    if (running) return;
    running = true;
    try {
      // The file store's share of what the bucket's lifecycle rules do on AWS.
      await files?.sweep();
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

/** Requests being answered, so that a stop can let them finish. */
let inFlight = 0;
server.on('request', (_req, res: ServerResponse) => {
  inFlight += 1;
  res.once('close', () => (inFlight -= 1));
});

/** How long a stop waits for requests in flight before cutting them off; all of it stays under 10 s. */
const STOP_GRACE_MS = 5_000;

/**
 * SIGTERM (a container or supervisor) or SIGINT (Ctrl-C, or npm passing either on: the start script
 * `exec`s node so that npm's child is this process): stop listening, let requests in flight end
 * for up to STOP_GRACE_MS, cut off the rest, close the embedded stores (they flush and release the
 * data folder's lock), exit. A stop that hangs exits anyway before 10 s. Ctrl-C under npm
 * delivers SIGINT twice (from the terminal and from npm), hence one stop for all signals.
 */
async function stop(signal: NodeJS.Signals): Promise<void> {
  console.log(`berth: ${signal}: stopping (${inFlight} request${inFlight === 1 ? '' : 's'} in flight)`);
  setTimeout(() => process.exit(1), 9_000).unref();
  const closed = new Promise<void>((done) => server.close(() => done()));
  server.closeIdleConnections();
  const deadline = Date.now() + STOP_GRACE_MS;
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  server.closeAllConnections();
  await closed;
  await emulators?.stop();
  process.exit(0);
}
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void stop(signal).catch(() => process.exit(1));
  });
}
