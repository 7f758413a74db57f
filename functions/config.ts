/**
 * Configuration, read and validated once from the environment. The same variables point the
 * Lambda functions at AWS and the local server or tests at emulators, MinIO or DynamoDB Local.
 *
 * | variable                   | meaning                                                   | default      |
 * |----------------------------|-----------------------------------------------------------|--------------|
 * | `BERTH_TABLE`              | DynamoDB table                                            | `berth`      |
 * | `BERTH_BUCKET`             | S3 bucket                                                 | `berth`      |
 * | `AWS_REGION`               | region of both                                            | `us-east-1`  |
 * | `BERTH_DYNAMODB_ENDPOINT`  | DynamoDB endpoint URL (unset: AWS)                        |              |
 * | `BERTH_S3_ENDPOINT`        | S3 endpoint URL (unset: AWS)                              |              |
 * | `BERTH_BLOB_DELIVERY`      | `redirect` (307 to presigned S3), `stream`, or `frontdoor` (307 to a signed path CloudFront serves from S3) | `redirect` |
 * | `BERTH_PART_SIZE`          | bytes per S3 multipart part (5 MiB … 5 GiB)               | 8 MiB        |
 * | `BERTH_AUTH`               | `required` (tokens or credentials) or `off` (anonymous)   | `required`   |
 * | `BERTH_TOKEN_KEY`          | token signing key, base64 of ≥ 32 random bytes            |              |
 * | `BERTH_TOKEN_KEY_SECRET`   | …or the Secrets Manager secret (ARN or name) holding it   |              |
 * | `BERTH_VERIFY_FUNCTION`    | Lambda function that verifies direct uploads (unset: in process) |       |
 * | `BERTH_MAX_CHUNK`          | largest chunk per request, advertised as OCI-Chunk-Max-Length (unset: none) | |
 * | `BERTH_UPLOAD_KEY`         | front door: key of signed upload and blob paths, base64 of 32 random bytes (unset: no front door) | |
 * | `BERTH_UPLOAD_KEY_SECRET`  | …or the Secrets Manager secret (ARN or name) holding it   |              |
 * | `BERTH_UPLOAD_KEY_VERSION` | its version, `upload-key-<version>` in the CloudFront KeyValueStore | `1` |
 * | `BERTH_KEY_VALUE_STORE`    | front door: the distribution's KeyValueStore (ARN), or `file:<path>` (the emulated one), where used upload URLs are marked (unset: not marked) | |
 * | `BERTH_HOSTS`              | comma-separated host names (`name` or `name:port`) clients may use; tokens are issued and accepted for these only (unset: any) | |
 * | `BERTH_CACHE_KEY`          | key sealing the upstream credentials of cache rules, base64 of 32 bytes (unset: Secrets Manager) | |
 * | `BERTH_BLOB_DIR`           | local server only: blobs are files in this folder instead of S3 objects (storage/files.ts) | |
 */
import * as z from './zod.js';
import type { AuthMode } from './auth/service.js';
import { hostName } from './http/realm.js';
import type { BlobDelivery } from './core/blobs.js';
import type { DynamoSettings } from './storage/dynamodb.js';
import type { S3Settings } from './storage/s3.js';

const MiB = 1024 * 1024;
/** A host name or address, with an optional port, as a `Host` header names it. */
const HOST_NAME = /^([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$/;

const schema = z.object({
  BERTH_TABLE: z._default(z.string().check(z.minLength(3)), 'berth'),
  BERTH_BUCKET: z._default(z.string().check(z.minLength(3)), 'berth'),
  AWS_REGION: z._default(z.string().check(z.minLength(1)), 'us-east-1'),
  BERTH_DYNAMODB_ENDPOINT: z.optional(z.url()),
  BERTH_S3_ENDPOINT: z.optional(z.url()),
  BERTH_BLOB_DELIVERY: z._default(z.enum(['redirect', 'stream', 'frontdoor']), 'redirect'),
  BERTH_PART_SIZE: z._default(integer(z.minimum(5 * MiB), z.maximum(5 * 1024 * MiB)), 8 * MiB),
  BERTH_AUTH: z._default(z.enum(['required', 'off']), 'required'),
  BERTH_TOKEN_KEY: z.optional(z.base64()),
  BERTH_TOKEN_KEY_SECRET: z.optional(z.string().check(z.minLength(1))),
  BERTH_VERIFY_FUNCTION: z.optional(z.string().check(z.minLength(1))),
  BERTH_MAX_CHUNK: z.optional(integer(z.positive())),
  BERTH_UPLOAD_KEY: z.optional(z.base64()),
  BERTH_UPLOAD_KEY_SECRET: z.optional(z.string().check(z.minLength(1))),
  BERTH_UPLOAD_KEY_VERSION: z._default(integer(z.minimum(1), z.maximum(9999)), 1),
  BERTH_KEY_VALUE_STORE: z.optional(z.string().check(z.regex(/^(arn:aws[a-z-]*:cloudfront::\d{12}:key-value-store\/[0-9a-f-]+|file:.+)$/, 'a KeyValueStore ARN or file:<path>'))),
  BERTH_HOSTS: z.optional(
    z.pipe(
      z.pipe(z.string(), z.transform((list: string) => list.split(',').map((host) => host.trim().toLowerCase()).filter((host) => host !== ''))),
      z.array(z.string().check(z.regex(HOST_NAME, 'a host name, or name:port'))).check(z.minLength(1)),
    ),
  ),
  BERTH_CACHE_KEY: z.optional(z.base64()),
  BERTH_BLOB_DIR: z.optional(z.string().check(z.minLength(1))),
});

/** An environment variable holding an integer, with `checks` on its value. */
function integer(...checks: Parameters<ReturnType<typeof z.int>['check']>) {
  return z.pipe(z.coerce.number(), z.int().check(...checks));
}

/** Everything the registry needs to reach its storage. */
export interface Config {
  dynamo: DynamoSettings;
  s3: S3Settings;
  delivery: BlobDelivery;
  partSize: number;
  auth: AuthMode;
  /** The token signing key: inline (base64) or a Secrets Manager secret id. */
  tokenKey: { kind: 'inline'; base64: string } | { kind: 'secret'; id: string } | undefined;
  /** Lambda function name for background verification, or undefined for in-process. */
  verifyFunction?: string;
  /** Largest chunk a request can carry, bytes, where the deployment limits it. */
  maxChunk?: number;
  /** The front door's path key: inline (base64) or a Secrets Manager secret id, and its version; undefined: no front door. */
  uploadKey?: { kind: 'inline'; base64: string; version: number } | { kind: 'secret'; id: string; version: number };
  /** Where used upload URLs are marked for the edge: a KeyValueStore ARN or `file:<path>`. */
  keyValueStore?: string;
  /** The host names (lower case, `name` or `name:port`) the registry answers to; undefined: any. */
  hosts?: string[];
  /** The key sealing cache rules' credentials (base64; the local server), or undefined: they are in Secrets Manager. */
  cacheKey?: string;
  /** The folder of the local server's file store, or undefined: blobs are in S3. */
  blobDir?: string;
}

/** An environment variable with a value Berth cannot use; the message names each one (one line). */
export class ConfigError extends Error {}

/**
 * Reads the configuration from `env`.
 * @throws ConfigError naming every invalid variable.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const c = parsed.data;
  if (c.BERTH_BLOB_DELIVERY === 'frontdoor' && !c.BERTH_UPLOAD_KEY && !c.BERTH_UPLOAD_KEY_SECRET) {
    throw new ConfigError('invalid configuration: BERTH_BLOB_DELIVERY=frontdoor needs BERTH_UPLOAD_KEY or BERTH_UPLOAD_KEY_SECRET');
  }
  if (c.BERTH_AUTH === 'required' && !c.BERTH_TOKEN_KEY && !c.BERTH_TOKEN_KEY_SECRET) {
    throw new ConfigError('invalid configuration: BERTH_AUTH=required needs BERTH_TOKEN_KEY or BERTH_TOKEN_KEY_SECRET');
  }
  return {
    dynamo: { table: c.BERTH_TABLE, region: c.AWS_REGION, endpoint: c.BERTH_DYNAMODB_ENDPOINT },
    s3: { bucket: c.BERTH_BUCKET, region: c.AWS_REGION, endpoint: c.BERTH_S3_ENDPOINT },
    delivery: c.BERTH_BLOB_DELIVERY,
    partSize: c.BERTH_PART_SIZE,
    auth: c.BERTH_AUTH,
    tokenKey: c.BERTH_TOKEN_KEY
      ? { kind: 'inline', base64: c.BERTH_TOKEN_KEY }
      : c.BERTH_TOKEN_KEY_SECRET
        ? { kind: 'secret', id: c.BERTH_TOKEN_KEY_SECRET }
        : undefined,
    verifyFunction: c.BERTH_VERIFY_FUNCTION,
    maxChunk: c.BERTH_MAX_CHUNK,
    uploadKey: c.BERTH_UPLOAD_KEY
      ? { kind: 'inline', base64: c.BERTH_UPLOAD_KEY, version: c.BERTH_UPLOAD_KEY_VERSION }
      : c.BERTH_UPLOAD_KEY_SECRET
        ? { kind: 'secret', id: c.BERTH_UPLOAD_KEY_SECRET, version: c.BERTH_UPLOAD_KEY_VERSION }
        : undefined,
    keyValueStore: c.BERTH_KEY_VALUE_STORE,
    hosts: c.BERTH_HOSTS,
    cacheKey: c.BERTH_CACHE_KEY,
    blobDir: c.BERTH_BLOB_DIR,
  };
}

/**
 * Refuses `redirect` delivery to an S3 endpoint on one of the registry's own host names (or a
 * subdomain of one): Go's HTTP client (docker, crane, skopeo, containerd) sends the request's
 * `Authorization` (a password in Basic credentials) along with a redirect to the same host name or
 * a subdomain, whatever the port (net/http `shouldCopyHeaderOnRedirect`), so the S3 server would
 * receive, and log, the user's credentials. Port and case are ignored, as Go ignores them.
 * @param registryHosts host names (or addresses) clients may use for the registry, besides `BERTH_HOSTS`.
 * @throws ConfigError naming the endpoint and the host name.
 */
export function checkRedirectTarget(config: Config, registryHosts: readonly string[]): void {
  if (config.delivery !== 'redirect' || !config.s3.endpoint) return;
  const s3Host = hostName(new URL(config.s3.endpoint).hostname);
  const clash = [...registryHosts, ...(config.hosts ?? [])].map(hostName).find((host) => s3Host === host || s3Host.endsWith(`.${host}`));
  if (clash === undefined) return;
  throw new ConfigError(
    `invalid configuration: BERTH_BLOB_DELIVERY=redirect would send clients to BERTH_S3_ENDPOINT ${config.s3.endpoint}, on the registry's own host name ${clash}, and Go clients (docker, crane, skopeo) send the user's Authorization (password) along to it: use BERTH_BLOB_DELIVERY=stream, or an S3 endpoint under another host name`,
  );
}

