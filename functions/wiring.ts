/** Composition root: configuration → storage adapters → registry core. */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { KeySource } from './auth/tokens.js';
import type { Dispatch } from './core/direct.js';
import type { PathKey } from './core/signed-paths.js';
import type { Config } from './config.js';
import { createRegistry, type Registry } from './core/registry.js';
import { createDynamoClient, DynamoMetadataStore } from './storage/dynamodb.js';
import type { CopyDispatch } from './core/cache.js';
import type { AccountStore, BlobStore, MetadataStore, SpentUploads } from './storage/ports.js';
import { countRequests } from './storage/requests.js';
import { createS3Client, S3BlobStore } from './storage/s3.js';
import { SealedSecrets, SecretsManagerReader, type SecretReader } from './storage/secrets.js';

/**
 * Builds the registry for `config`, with adapters on the configured endpoints; `wrap` and
 * `wrapStore` stand between the core and the adapters (tests record calls or inject faults there).
 */
export function registryFor(
  config: Config,
  wrap: (store: MetadataStore & AccountStore) => MetadataStore & AccountStore = (store) => store,
  wrapStore: (store: BlobStore) => BlobStore = (store) => store,
  /** The marks of used upload URLs (see spent-uploads.ts; the functions that write them pass it). */
  spent?: SpentUploads,
  /**
   * The blob store of `config.blobDir` (storage/files.ts), which the local server makes and passes:
   * it is no part of the Lambda bundles (where `BERTH_BLOB_DIR` is never set; the emulated
   * deployment refuses it).
   */
  files?: BlobStore,
): Registry {
  const dynamo = createDynamoClient(config.dynamo);
  const s3 = createS3Client(config.s3);
  const dynamoRequests = countRequests(dynamo);
  const s3Requests = countRequests(s3);
  const store = wrapStore(files ?? new S3BlobStore(s3, config.s3.bucket));
  return createRegistry(wrap(new DynamoMetadataStore(dynamo, config.dynamo.table)), store, {
    requests: () => ({ dynamodb: dynamoRequests(), s3: s3Requests() }),
    delivery: config.delivery,
    uploads: { partSize: config.partSize },
    auth: config.auth,
    tokenKey: tokenKeySource(config),
    dispatch: config.verifyFunction ? lambdaDispatch(config.verifyFunction, config.s3.region) : undefined,
    maxChunk: config.maxChunk,
    pathKey: pathKeySource(config),
    spent,
    hosts: config.hosts,
    secrets: secretReader(config),
    dispatchCopy: config.verifyFunction ? lambdaCopy(config.verifyFunction, config.s3.region) : undefined,
  });
}

/** Where the credentials of cache rules are: sealed under the local key, or in Secrets Manager. */
function secretReader(config: Config): SecretReader {
  if (config.cacheKey) return new SealedSecrets(Buffer.from(config.cacheKey, 'base64'));
  return new SecretsManagerReader(new SecretsManagerClient({ region: config.s3.region }));
}

/** Background copies of cached blobs run in an asynchronous invocation of the `verify` function. */
function lambdaCopy(functionName: string, region: string): CopyDispatch {
  const client = new LambdaClient({ region });
  return async (job) => {
    await client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: JSON.stringify({ cacheBlob: job }) }));
  };
}

/** The front door's key, inline or read once from Secrets Manager (generated there at deploy time). */
function pathKeySource(config: Config): (() => Promise<PathKey>) | undefined {
  const key = config.uploadKey;
  if (!key) return undefined;
  const base64 = key.kind === 'inline' ? async () => key.base64 : () => readSecret(config, key.id);
  return async () => ({ version: key.version, secret: Buffer.from(await base64(), 'base64') });
}

async function readSecret(config: Config, id: string): Promise<string> {
  const client = new SecretsManagerClient({ region: config.s3.region });
  return (await client.send(new GetSecretValueCommand({ SecretId: id }))).SecretString!;
}

/** Verification continues in an asynchronous invocation of the `verify` function. */
function lambdaDispatch(functionName: string, region: string): Dispatch {
  const client = new LambdaClient({ region });
  return async (uploadId) => {
    await client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: JSON.stringify({ uploadId }) }));
  };
}

/** The signing key: inline, or read once from Secrets Manager (generated there at deploy time). */
function tokenKeySource(config: Config): KeySource {
  const key = config.tokenKey;
  if (key?.kind === 'inline') return async () => Buffer.from(key.base64, 'base64');
  if (key?.kind === 'secret') return async () => Buffer.from(await readSecret(config, key.id), 'utf8');
  return async () => {
    throw new Error('no token signing key: set BERTH_TOKEN_KEY or BERTH_TOKEN_KEY_SECRET');
  };
}

