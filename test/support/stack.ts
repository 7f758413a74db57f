/**
 * Test back ends and servers over real sockets. By default the embedded emulators in a fresh
 * temporary folder; with `BERTH_TEST_S3_ENDPOINT` and `BERTH_TEST_DYNAMODB_ENDPOINT` set, a real
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
import { createS3Client } from '../../functions/storage/s3.js';
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
  stop(): Promise<void>;
}

/** Test defaults: anonymous access as `npm start` has it, and a fresh signing key. */
const TEST_DEFAULTS = () => ({ BERTH_AUTH: 'off', BERTH_TOKEN_KEY: randomBytes(32).toString('base64') });

/** The metadata store and account store both ports name. */
export type Metadata = MetadataStore & AccountStore;

/**
 * Starts (or connects to) the back ends; extra config variables may override defaults. `metadata:
 * 'native'` (default: `BERTH_TEST_METADATA=native`) starts the embedded S3 with the native metadata
 * store, as `npm start` does by default (whatever the external back ends configured).
 */
export async function startBackends(
  extra: Record<string, string> = {},
  options: { metadata?: 'native' } = { metadata: process.env.BERTH_TEST_METADATA === 'native' ? 'native' : undefined },
): Promise<Backends> {
  const overrides = { ...TEST_DEFAULTS(), ...extra };
  const s3 = process.env.BERTH_TEST_S3_ENDPOINT;
  const dynamo = process.env.BERTH_TEST_DYNAMODB_ENDPOINT;
  if (s3 && dynamo && options.metadata !== 'native') {
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
    return { config, label: 'external S3 + DynamoDB', dataDir, stop: () => rm(dataDir, { recursive: true, force: true }) };
  }
  const dir = await mkdtemp(join(tmpdir(), 'berth-test-'));
  const emulators = await startEmulators(dir, { auth: overrides.BERTH_AUTH, metadata: options.metadata ?? 'dynalite' });
  const config = withCredentials(loadConfig({ ...emulators.env, ...overrides }));
  return {
    config,
    label: emulators.metadata ? 'embedded S3 emulator + native metadata store' : 'embedded emulators',
    dataDir: dir,
    metadata: emulators.metadata,
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
  backends: Backends;
  /** Request log lines, for assertions on what reached the server. */
  log: string[];
  /** The audit trail's records (http/audit.ts), kept here rather than printed. */
  audit: AuditRecord[];
  stop(): Promise<void>;
}

/** Metadata store for the registry, to stand between it and the real adapter (counting calls). */
export type StoreWrapper = (store: MetadataStore & AccountStore) => MetadataStore & AccountStore;

/** Starts back ends and a registry server on them; `wrap` sees every metadata store call, `wrapStore` every blob store call. */
export async function startRegistry(
  overrides: Record<string, string> = {},
  wrap: StoreWrapper = (store) => store,
  wrapStore: (store: BlobStore) => BlobStore = (store) => store,
): Promise<TestRegistry> {
  const backends = await startBackends(overrides);
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
  const registry = registryFor(backends.config, wrap, wrapStore, undefined, backends.metadata);
  const log: string[] = [];
  const audit: AuditRecord[] = [];
  const server = createRegistryServer(registry, { log: (line) => log.push(line), audit: (record) => audit.push(record) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    registry,
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
