/** Composition root: configuration → storage adapters → registry core. */
import type { KeySource } from './auth/tokens.js';
import type { Dispatch } from './core/direct.js';
import type { PathKey } from './core/signed-paths.js';
import type { Config } from './config.js';
import { createRegistry, type Registry } from './core/registry.js';
import { createDynamoClient, DynamoMetadataStore } from './storage/dynamodb.js';
import type { CopyDispatch } from './core/cache.js';
import type { AccountStore, BlobStore, MetadataStore, SpentUploads } from './storage/ports.js';
import { type AwsCaller, getSecretString, invokeAsync } from './storage/aws-calls.js';
import { countRequests } from './storage/requests.js';
import type { S3Settings } from './storage/s3.js';
import { SealedSecrets, SecretsManagerReader, type SecretReader } from './storage/secrets.js';

/**
 * Builds the registry for `config`, with adapters on the configured endpoints; `wrap` and
 * `wrapStore` stand between the core and the adapters (tests record calls or inject faults there);
 * `local`'s stores, when given, replace the DynamoDB table and the S3 bucket.
 */
export function registryFor(
  config: Config,
  wrap: (store: MetadataStore & AccountStore) => MetadataStore & AccountStore = (store) => store,
  wrapStore: (store: BlobStore) => BlobStore = (store) => store,
  /** The marks of used upload URLs (see spent-uploads.ts; the functions that write them pass it). */
  spent?: SpentUploads,
  /**
   * Stores of the local server, which it makes and passes (infra/local): the native metadata store,
   * and the file blob store of `config.blobDir` (storage/files.ts). Neither is part of the Lambda
   * bundles (where `BERTH_BLOB_DIR` is never set; the emulated deployment refuses it).
   */
  local: { metadata?: MetadataStore & AccountStore; blobs?: BlobStore } = {},
): Registry {
  const dynamo = createDynamoClient(config.dynamo);
  const dynamoRequests = countRequests(dynamo);
  const s3 = lazyBlobStore(config.s3);
  const store = wrapStore(local.blobs ?? s3.store);
  // Lambda and Secrets Manager are called as the DynamoDB client's identity (its credential chain).
  const aws: AwsCaller = { region: config.s3.region, credentials: dynamo.config.credentials };
  return createRegistry(wrap(local.metadata ?? new DynamoMetadataStore(dynamo, config.dynamo.table)), store, {
    requests: () => ({ dynamodb: dynamoRequests(), s3: s3.requests() }),
    delivery: config.delivery,
    uploads: { partSize: config.partSize },
    auth: config.auth,
    tokenKey: tokenKeySource(config, aws),
    dispatch: config.verifyFunction ? lambdaDispatch(config.verifyFunction, aws) : undefined,
    maxChunk: config.maxChunk,
    pathKey: pathKeySource(config, aws),
    spent,
    hosts: config.hosts,
    secrets: secretReader(config, aws),
    dispatchCopy: config.verifyFunction ? lambdaCopy(config.verifyFunction, aws) : undefined,
  });
}

/**
 * The S3 adapter, loaded by its first call: the S3 client is the largest part of the bundle, and
 * a cold start that reads only metadata (HEAD or GET of a manifest, a tag list) never parses it.
 * `requests` counts the S3 requests sent (0 before the first call).
 */
function lazyBlobStore(settings: S3Settings): { store: BlobStore; requests: () => number } {
  let loading: Promise<BlobStore> | undefined;
  let requests = () => 0;
  const load = () =>
    (loading ??= import('./storage/s3.js').then(({ createS3Client, S3BlobStore }) => {
      const client = createS3Client(settings);
      requests = countRequests(client);
      return new S3BlobStore(client, settings.bucket);
    }));
  // Every BlobStore method returns a promise, so each can wait for the load; `then` stays
  // undefined so that the store itself is not mistaken for a promise.
  const store = new Proxy({} as BlobStore, {
    get: (_, name) =>
      typeof name !== 'string' || name === 'then' ? undefined : async (...args: unknown[]) => ((await load()) as unknown as Record<string, (...a: unknown[]) => unknown>)[name](...args),
  });
  return { store, requests: () => requests() };
}

/** Where the credentials of cache rules are: sealed under the local key, or in Secrets Manager. */
function secretReader(config: Config, aws: AwsCaller): SecretReader {
  if (config.cacheKey) return new SealedSecrets(Buffer.from(config.cacheKey, 'base64'));
  return new SecretsManagerReader(aws);
}

/** Background copies of cached blobs run in an asynchronous invocation of the `verify` function. */
function lambdaCopy(functionName: string, aws: AwsCaller): CopyDispatch {
  return (job) => invokeAsync(aws, functionName, { cacheBlob: job });
}

/** The front door's key, inline or read once from Secrets Manager (generated there at deploy time). */
function pathKeySource(config: Config, aws: AwsCaller): (() => Promise<PathKey>) | undefined {
  const key = config.uploadKey;
  if (!key) return undefined;
  const base64 = key.kind === 'inline' ? async () => key.base64 : () => getSecretString(aws, key.id);
  return async () => ({ version: key.version, secret: Buffer.from(await base64(), 'base64') });
}

/** Verification continues in an asynchronous invocation of the `verify` function. */
function lambdaDispatch(functionName: string, aws: AwsCaller): Dispatch {
  return (uploadId) => invokeAsync(aws, functionName, { uploadId });
}

/** The signing key: inline, or read once from Secrets Manager (generated there at deploy time). */
function tokenKeySource(config: Config, aws: AwsCaller): KeySource {
  const key = config.tokenKey;
  if (key?.kind === 'inline') return async () => Buffer.from(key.base64, 'base64');
  if (key?.kind === 'secret') return async () => Buffer.from(await getSecretString(aws, key.id), 'utf8');
  return async () => {
    throw new Error('no token signing key: set BERTH_TOKEN_KEY or BERTH_TOKEN_KEY_SECRET');
  };
}

