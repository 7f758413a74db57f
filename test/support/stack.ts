/**
 * Test back ends and servers over real sockets. By default the back ends of `npm start` in a fresh
 * temporary folder: the embedded DynamoDB and blobs as files (`BERTH_TEST_BLOBS=s3rver`: the
 * embedded S3 instead); with `BERTH_TEST_S3_ENDPOINT` and `BERTH_TEST_DYNAMODB_ENDPOINT` set, a real
 * S3-compatible server and DynamoDB (MinIO and moto_server in CI: test/backends/start.sh), each
 * test stack on its own fresh table and bucket.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../functions/config.js';
import type { Registry } from '../../functions/core/registry.js';
import type { AuditRecord } from '../../functions/http/audit.js';
import type { AccountStore, BlobStore, MetadataStore } from '../../functions/storage/ports.js';
import { createDynamoClient, DynamoMetadataStore } from '../../functions/storage/dynamodb.js';
import { FileBlobStore } from '../../functions/storage/files.js';
import { createS3Client, S3BlobStore } from '../../functions/storage/s3.js';
import { registryFor } from '../../functions/wiring.js';
import { createTable, EMULATOR_CREDENTIALS, startEmulators } from '../../infra/local/emulators.js';
import { createRegistryServer } from '../../infra/local/server.js';
import { remoteStore } from '../../infra/local/store-rpc.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Back ends for one test file. */
export interface Backends {
  config: Config;
  /** Which back end this is, for test names. */
  label: string;
  /** A data folder whose endpoints.json leads `npx berth` (BERTH_DATA_DIR) to these back ends. */
  dataDir: string;
  /** The native metadata store (`npm start`'s default), when it replaces DynamoDB. */
  metadata?: MetadataStore & AccountStore;
  /** Signs the presigned URLs of a file store (the same for every server on these back ends). */
  objectUrlKey: Buffer;
  stop(): Promise<void>;
}

/** Where blobs go: the file store (as `npm start`), or S3 (the embedded s3rver, or the external S3). */
export type BlobBackend = 'files' | 's3';

/** The blob store of `backends`, as another process sees it (no presigned URLs from a file store). */
export function blobStoreOf(backends: Backends): BlobStore {
  const { config } = backends;
  return config.blobDir ? new FileBlobStore(config.blobDir) : new S3BlobStore(createS3Client(config.s3), config.s3.bucket);
}

/** Test defaults: anonymous access as `npm start` has it, and a fresh signing key. */
const TEST_DEFAULTS = () => ({ BERTH_AUTH: 'off', BERTH_TOKEN_KEY: randomBytes(32).toString('base64') });

/** The metadata store and account store both ports name. */
export type Metadata = MetadataStore & AccountStore;

/** Which embedded back ends a test stack gets (see {@link startBackends}). */
export interface BackendChoice {
  /** `native`: the native metadata store, as `npm start` has it; default `BERTH_TEST_METADATA`, else the DynamoDB emulator. */
  metadata?: 'native' | 'dynalite';
  /** Where blob bytes go: files (as `npm start`; the default) or S3 (`BERTH_TEST_BLOBS=s3rver`; the bundled Lambda handlers need S3). */
  blobs?: BlobBackend;
}

/**
 * Starts (or connects to) the back ends; extra config variables may override defaults. With
 * `BERTH_TEST_S3_ENDPOINT` and `BERTH_TEST_DYNAMODB_ENDPOINT` set, those (unless `metadata:
 * 'native'` is asked for); otherwise the embedded back ends of `choice`.
 */
export async function startBackends(extra: Record<string, string> = {}, choice: BackendChoice = {}): Promise<Backends> {
  const metadata = choice.metadata ?? (process.env.BERTH_TEST_METADATA === 'native' ? 'native' : 'dynalite');
  const blobs = choice.blobs ?? (process.env.BERTH_TEST_BLOBS === 's3rver' ? 's3' : 'files');
  const overrides = { ...TEST_DEFAULTS(), ...extra };
  const s3 = process.env.BERTH_TEST_S3_ENDPOINT;
  const dynamo = process.env.BERTH_TEST_DYNAMODB_ENDPOINT;
  const objectUrlKey = randomBytes(32);
  if (s3 && dynamo && metadata !== 'native') {
    const names = { table: `berth-${randomBytes(4).toString('hex')}`, bucket: `berth-${randomBytes(4).toString('hex')}` };
    const env = {
      BERTH_S3_ENDPOINT: s3,
      BERTH_DYNAMODB_ENDPOINT: dynamo,
      BERTH_TABLE: names.table,
      BERTH_BUCKET: names.bucket,
      BERTH_BLOB_DELIVERY: 'redirect',
      ...overrides,
    };
    const config = withCredentials(loadConfig(env), process.env.BERTH_TEST_S3_ACCESS_KEY, process.env.BERTH_TEST_S3_SECRET_KEY);
    await createTable(dynamo, names.table);
    await createS3Client(config.s3).send(new CreateBucketCommand({ Bucket: names.bucket }));
    // What the embedded emulators write, for the CLI (as test/conformance/run.sh does).
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-test-'));
    const record = { BERTH_DYNAMODB_ENDPOINT: dynamo, BERTH_TABLE: names.table, ...EMULATOR_ENV_CREDENTIALS, BERTH_AUTH: overrides.BERTH_AUTH };
    await writeFile(join(dataDir, 'endpoints.json'), JSON.stringify(record));
    return { config, label: 'external S3 + DynamoDB', dataDir, objectUrlKey, stop: () => rm(dataDir, { recursive: true, force: true }) };
  }
  const dir = await mkdtemp(join(tmpdir(), 'berth-test-'));
  const files = blobs === 'files';
  const emulators = await startEmulators(dir, { auth: overrides.BERTH_AUTH, metadata, blobDir: files ? join(dir, 'blobs') : undefined });
  const config = withCredentials(loadConfig({ ...emulators.env, ...overrides }));
  return {
    config,
    label: `${emulators.metadata ? 'native metadata store' : 'embedded DynamoDB'}, ${files ? 'blobs as files' : 'embedded S3'}`,
    dataDir: dir,
    metadata: emulators.metadata,
    objectUrlKey,
    async stop() {
      await emulators.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The metadata store of `backends`, as the test reaches it: the native store itself, or the table. */
export function metadataOf(backends: Backends): Metadata {
  const { dynamo } = backends.config;
  return backends.metadata ?? new DynamoMetadataStore(createDynamoClient(dynamo), dynamo.table);
}

/**
 * The metadata store of the server running on `dataDir`, as `npx berth` reaches it through
 * endpoints.json: the native store's endpoint, or the table.
 */
export async function serverMetadata(dataDir: string): Promise<Metadata> {
  const env = JSON.parse(await readFile(join(dataDir, 'endpoints.json'), 'utf8')) as Record<string, string>;
  if (env.BERTH_METADATA === 'native') return remoteStore(env.BERTH_METADATA_URL, dataDir);
  const client = createDynamoClient({ table: env.BERTH_TABLE, region: 'us-east-1', endpoint: env.BERTH_DYNAMODB_ENDPOINT, credentials: EMULATOR_CREDENTIALS });
  return new DynamoMetadataStore(client, env.BERTH_TABLE);
}

const EMULATOR_ENV_CREDENTIALS = { AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey };

function withCredentials(config: Config, accessKeyId?: string, secretAccessKey?: string): Config {
  const s3Credentials = accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : EMULATOR_CREDENTIALS;
  return { ...config, s3: { ...config.s3, credentials: s3Credentials }, dynamo: { ...config.dynamo, credentials: EMULATOR_CREDENTIALS } };
}

/** A registry server on an ephemeral loopback port over fresh back ends. */
export interface TestRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`, as clients name the registry. */
  host: string;
  port: number;
  registry: Registry;
  /** The blob store the registry uses, before any `wrapStore`. */
  blobs: BlobStore;
  backends: Backends;
  /** Request log lines, for assertions on what reached the server. */
  log: string[];
  /** The audit trail's records (http/audit.ts), kept here rather than printed. */
  audit: AuditRecord[];
  stop(): Promise<void>;
}

/** Metadata store for the registry, to stand between it and the real adapter (counting calls). */
export type StoreWrapper = (store: MetadataStore & AccountStore) => MetadataStore & AccountStore;

/**
 * Starts back ends and a registry server on them; `wrap` sees every metadata store call, `wrapStore`
 * every blob store call; `choice` picks the embedded back ends (see startBackends).
 */
export async function startRegistry(
  overrides: Record<string, string> = {},
  wrap: StoreWrapper = (store) => store,
  wrapStore: (store: BlobStore) => BlobStore = (store) => store,
  choice: BackendChoice = {},
): Promise<TestRegistry> {
  const backends = await startBackends(overrides, choice);
  const served = await serveRegistry(backends, wrap, wrapStore);
  return {
    ...served,
    async stop() {
      await served.stop();
      await backends.stop();
    },
  };
}

/**
 * A registry server on back ends that are already running (another process of the same
 * deployment, or the one started after a crash); `stop` closes the server and leaves the back ends.
 */
export async function serveRegistry(
  backends: Backends,
  wrap: StoreWrapper = (store) => store,
  wrapStore: (store: BlobStore) => BlobStore = (store) => store,
): Promise<TestRegistry> {
  let url = '';
  const { config } = backends;
  // As npm start: this server answers the file store's presigned URLs.
  const files = config.blobDir ? new FileBlobStore(config.blobDir, { key: { version: 1, secret: backends.objectUrlKey }, origin: () => url }) : undefined;
  const registry = registryFor(config, wrap, wrapStore, undefined, { metadata: backends.metadata, blobs: files });
  const log: string[] = [];
  const audit: AuditRecord[] = [];
  const server = createRegistryServer(registry, { log: (line) => log.push(line), audit: (record) => audit.push(record), objects: files });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  url = `http://127.0.0.1:${port}`;
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    registry,
    blobs: files ?? blobStoreOf(backends),
    backends,
    log,
    audit,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Calls of one store method: its name, its arguments and what it answered. */
export interface StoreCall {
  method: string;
  args: unknown[];
  result: unknown;
}

/**
 * A {@link StoreWrapper} that passes every call through to the real store and records each
 * completed one in `calls` (for timing-free assertions on the work a request did).
 */
export function recordingStore(calls: StoreCall[]): <T extends object>(store: T) => T {
  return (store) =>
    new Proxy(store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const result = await value.apply(target, args);
          calls.push({ method: String(property), args, result });
          return result;
        };
      },
    });
}
