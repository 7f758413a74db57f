/**
 * The embedded back ends of the local stack: `dynalite` (DynamoDB) and `s3rver` (S3), started
 * in-process on loopback with their data under one folder, table and bucket created on first
 * start. s3rver verifies no signatures, so it must never listen beyond loopback, and blobs are
 * streamed by Berth rather than redirected to it (except in the emulated deployment, where the
 * clients and the emulated CloudFront on this machine read it; its `Range` answers are corrected
 * to S3's by {@link rangeAsS3}). In `dynalite`'s place, `npm start` runs the native metadata store
 * (native-store.ts) by default, served to other processes by store-rpc.ts.
 */
import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from '@aws-sdk/client-dynamodb';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type S3rver from 's3rver';
import type { S3rverContext } from 's3rver';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createDynamoClient } from '../../functions/storage/dynamodb.js';
import { lockDataDir } from './data-dir.js';
import { NativeMetadataStore, nativeJournal } from './native-store.js';
import { serveStore } from './store-rpc.js';

/** s3rver's error, which its error handler answers as S3's XML error (read when s3rver is started). */
type S3ErrorClass = new (code: string, message: string, detail?: Record<string, unknown>) => Error;

/** Fixed credentials: the emulators accept any, the SDK insists on some. */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** Running emulators and the environment that points Berth at them. */
export interface Emulators {
  env: Record<string, string>;
  /** The native metadata store, when it replaces the embedded DynamoDB. */
  metadata?: NativeMetadataStore;
  stop(): Promise<void>;
}

/** Creates the table layout Berth expects (pk/sk strings, on demand), unless it exists. */
export async function createTable(endpoint: string, table: string, region = 'us-east-1'): Promise<void> {
  const client = new DynamoDBClient({ endpoint, region, credentials: EMULATOR_CREDENTIALS });
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  } finally {
    client.destroy();
  }
}

/**
 * Starts both emulators with data under `dataDir` (created if missing) on ephemeral loopback
 * ports and writes their endpoints to `<dataDir>/endpoints.json`, so that other processes (the
 * `berth` CLI) can reach the same data while the server runs; with `auth`, the server's login
 * mode too, so that the CLI can say when accounts it adds are not needed for access. With
 * `metadata: 'native'`, the native metadata store (journal `<dataDir>/metadata.journal`) replaces
 * the embedded DynamoDB, and endpoints.json records its loopback endpoint (store-rpc.ts) as
 * `BERTH_METADATA_URL`. With `blobDir` blobs are files there (functions/storage/files.ts) and
 * s3rver is not started.
 * @throws DataDirInUse when another running server holds `dataDir` (see {@link lockDataDir}).
 */
export async function startEmulators(dataDir: string, options: { auth?: string; metadata?: 'native' | 'dynalite'; blobDir?: string } = {}): Promise<Emulators> {
  const names = { table: 'berth', bucket: 'berth' };
  await mkdir(dataDir, { recursive: true });
  const unlock = await lockDataDir(dataDir);
  const s3 = options.blobDir === undefined ? await startS3(join(dataDir, 's3'), names.bucket) : undefined;
  const metadata = options.metadata === 'native' ? await startNative(dataDir, names.table) : await startDynalite(dataDir, names.table);
  const env = {
    ...metadata.env,
    ...(s3 ? { BERTH_S3_ENDPOINT: s3.endpoint, BERTH_BUCKET: names.bucket } : { BERTH_BLOB_DIR: options.blobDir! }),
    BERTH_BLOB_DELIVERY: 'stream',
    AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
  };
  const record = { ...env, ...metadata.record, ...(options.auth === undefined ? {} : { BERTH_AUTH: options.auth }) };
  await writeFile(join(dataDir, 'endpoints.json'), JSON.stringify(record, null, 2));
  return {
    env,
    metadata: metadata.store,
    async stop() {
      await s3?.server.close();
      await metadata.stop();
      await unlock();
    },
  };
}

/** s3rver on an ephemeral loopback port with its data in `directory`, the bucket created. */
async function startS3(directory: string, bucket: string): Promise<{ server: S3rver; endpoint: string }> {
  await mkdir(directory, { recursive: true });
  // Both emulators load only when asked for: npm start's native back ends need neither.
  const { default: S3rver } = await import('s3rver');
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  // Before s3rver's router (the last middleware), after its error handler and XML encoder.
  s3.middleware.splice(s3.middleware.length - 1, 0, rangeAsS3);
  const address = (await s3.run()) as AddressInfo;
  return { server: s3, endpoint: `http://127.0.0.1:${address.port}` };
}

/**
 * Every item of the DynamoDB emulator's table in `dataDir`, read through the emulator: a data folder
 * from before the native store was `npm start`'s default keeps its tags, manifests and accounts
 * (its `dynamodb/` folder stays, for `BERTH_BACKEND=emulators`).
 */
async function emulatorItems(dataDir: string, table: string): Promise<Record<string, unknown>[]> {
  const emulator = await startDynalite(dataDir, table);
  try {
    const db = createDynamoClient({ table, region: 'us-east-1', endpoint: emulator.env.BERTH_DYNAMODB_ENDPOINT, credentials: EMULATOR_CREDENTIALS });
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await db.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  } finally {
    await emulator.stop();
  }
}

/** A running metadata back end: its variables for the server, and for endpoints.json. */
interface MetadataBackEnd {
  env: Record<string, string>;
  record: Record<string, string>;
  store?: NativeMetadataStore;
  stop(): Promise<void>;
}

async function startDynalite(dataDir: string, table: string): Promise<MetadataBackEnd> {
  const { default: dynalite } = await import('dynalite');
  const dynamo: Server = dynalite({ path: join(dataDir, 'dynamodb'), createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => dynamo.once('error', reject).listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(dynamo.address() as AddressInfo).port}`;
  await createTable(endpoint, table);
  return {
    env: { BERTH_DYNAMODB_ENDPOINT: endpoint, BERTH_TABLE: table },
    record: {},
    stop: () => new Promise<void>((resolve) => dynamo.close(() => resolve())),
  };
}

async function startNative(dataDir: string, table: string): Promise<MetadataBackEnd> {
  const journal = nativeJournal(dataDir);
  const emulatorFolder = join(dataDir, 'dynamodb');
  const { store, imported } = await NativeMetadataStore.openOrImport(journal, async () => (existsSync(emulatorFolder) ? emulatorItems(dataDir, table) : []));
  if (imported > 0) console.log(`berth: copied ${imported} items of the DynamoDB emulator (${emulatorFolder}) into ${journal}`);
  const endpoint = await serveStore(store, dataDir);
  return {
    env: {},
    record: { BERTH_METADATA: 'native', BERTH_METADATA_URL: endpoint.url },
    store,
    async stop() {
      await endpoint.close();
      NativeMetadataStore.close(store);
    },
  };
}

/**
 * The local token signing key (base64 of 32 random bytes), made on first start and kept in
 * `<dataDir>/token-key` (mode 0600) so tokens survive restarts; never part of the repository.
 */
export function localTokenKey(dataDir: string): Promise<string> {
  return localSecret(dataDir, 'token-key');
}

/**
 * The key that seals the upstream credentials of cache rules (base64 of 32 random bytes), kept in
 * `<dataDir>/cache-key` (mode 0600): `npx berth cache add` seals with it, the server unseals.
 */
export function localCacheKey(dataDir: string): Promise<string> {
  return localSecret(dataDir, 'cache-key');
}

/**
 * The key that signs the file store's presigned URLs (base64 of 32 random bytes), kept in
 * `<dataDir>/object-url-key` (mode 0600) so that URLs handed out survive a restart, as S3's do.
 */
export function localObjectUrlKey(dataDir: string): Promise<string> {
  return localSecret(dataDir, 'object-url-key');
}

/**
 * The emulated front door's key of signed paths (base64 of 32 random bytes): `given` (the
 * environment's `BERTH_UPLOAD_KEY`), else the one kept in `<dataDir>/upload-key` (mode 0600); and
 * the emulated CloudFront KeyValueStore that holds it as `upload-key-1`, in the KeyValueStore
 * import format, at `<dataDir>/cloudfront-kvs.json`.
 */
export async function localUploadKey(dataDir: string, given?: string): Promise<{ base64: string; kvsFile: string }> {
  const base64 = given ?? (await localSecret(dataDir, 'upload-key'));
  const kvsFile = join(dataDir, 'cloudfront-kvs.json');
  // The marks of used upload URLs (spent-<id>) outlive a restart, as they would on AWS.
  const kept = await readFile(kvsFile, 'utf8')
    .then((text) => (JSON.parse(text) as { data: { key: string; value: string }[] }).data.filter((item) => item.key.startsWith('spent-')))
    .catch(() => []);
  await writeFile(kvsFile, JSON.stringify({ data: [{ key: 'upload-key-1', value: base64 }, ...kept] }), { mode: 0o600 });
  return { base64, kvsFile };
}

/** 32 random bytes, base64, made once under `<dataDir>/<name>` (mode 0600); concurrent first starts agree. */
async function localSecret(dataDir: string, name: string): Promise<string> {
  const file = join(dataDir, name);
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    await mkdir(dataDir, { recursive: true });
    const key = randomBytes(32).toString('base64');
    await writeFile(file, key, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
    return (await readFile(file, 'utf8')).trim();
  }
}

/**
 * What S3 does with `header` on an object of `size` bytes: the byte range to answer (206), that no
 * range of it can be answered (416 InvalidRange), or nothing, for a header S3 ignores (the whole
 * object, 200): other units, several ranges, first byte after last.
 */
export function s3Range(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    // A suffix: the last n bytes.
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const last = match[2] === '' ? Infinity : Number(match[2]);
  if (last < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) };
}

/**
 * s3rver reads `Range` wrongly (`bytes=0-0` gives the whole object labelled as a range, `bytes=-5`
 * the first 6 bytes), and blob GETs reach it through presigned URLs and the emulated CloudFront.
 * This middleware hides the header from s3rver, lets it answer the whole object (its ETag,
 * metadata and conditional requests stay its own), and then answers the range as S3 does.
 */
async function rangeAsS3(ctx: S3rverContext, next: () => Promise<void>): Promise<void> {
  const header = ctx.req.headers.range;
  if (header === undefined || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
  delete ctx.req.headers.range;
  await next();
  const { bucket, key, queryMethod } = ctx.params ?? {};
  if (ctx.status !== 200 || !bucket || !key || queryMethod !== undefined) return;
  const size = ctx.length ?? 0;
  const range = s3Range(header, size);
  if (range === undefined) return;
  (ctx.body as Readable | undefined)?.destroy();
  if (range === 'unsatisfiable') throw new (createRequire(import.meta.url)('s3rver/lib/models/error') as S3ErrorClass)('InvalidRange', 'The requested range is not satisfiable', { RangeRequested: header, ActualObjectSize: size });
  // A HEAD has no body to replace (and Koa would answer 204 without Content-Type for an empty one).
  if (ctx.method === 'GET') ctx.body = createReadStream(ctx.store.getResourcePath(bucket, key, 'object'), range);
  ctx.status = 206;
  ctx.length = range.end - range.start + 1;
  ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
}
