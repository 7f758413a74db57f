/**
 * Test back ends and servers over real sockets. By default the embedded emulators in a fresh
 * temporary folder; with `BERTH_TEST_S3_ENDPOINT` and `BERTH_TEST_DYNAMODB_ENDPOINT` set, a real
 * S3-compatible server and DynamoDB (MinIO and moto_server in CI: test/backends/start.sh), each
 * test stack on its own fresh table and bucket.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../functions/config.js';
import type { Registry } from '../../functions/core/registry.js';
import { createS3Client } from '../../functions/storage/s3.js';
import { registryFor } from '../../functions/wiring.js';
import { createTable, EMULATOR_CREDENTIALS, startEmulators } from '../../infra/local/emulators.js';
import { createRegistryServer } from '../../infra/local/server.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Back ends for one test file. */
export interface Backends {
  config: Config;
  /** Which back end this is, for test names. */
  label: string;
  stop(): Promise<void>;
}

/** Test defaults: anonymous access as `npm start` has it, and a fresh signing key. */
const TEST_DEFAULTS = () => ({ BERTH_AUTH: 'off', BERTH_TOKEN_KEY: randomBytes(32).toString('base64') });

/** Starts (or connects to) the back ends; extra config variables may override defaults. */
export async function startBackends(extra: Record<string, string> = {}): Promise<Backends> {
  const overrides = { ...TEST_DEFAULTS(), ...extra };
  const s3 = process.env.BERTH_TEST_S3_ENDPOINT;
  const dynamo = process.env.BERTH_TEST_DYNAMODB_ENDPOINT;
  if (s3 && dynamo) {
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
    return { config, label: 'external S3 + DynamoDB', stop: async () => undefined };
  }
  const dir = await mkdtemp(join(tmpdir(), 'berth-test-'));
  const emulators = await startEmulators(dir);
  const config = withCredentials(loadConfig({ ...emulators.env, ...overrides }));
  return {
    config,
    label: 'embedded emulators',
    async stop() {
      await emulators.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

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
  stop(): Promise<void>;
}

/** Starts back ends and a registry server on them. */
export async function startRegistry(overrides: Record<string, string> = {}): Promise<TestRegistry> {
  const backends = await startBackends(overrides);
  const registry = registryFor(backends.config);
  const log: string[] = [];
  const server = createRegistryServer(registry, (line) => log.push(line));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    registry,
    backends,
    log,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await backends.stop();
    },
  };
}
