/**
 * The two AWS calls the functions make besides S3 and DynamoDB — an asynchronous Lambda `Invoke`
 * of the `verify` function and a Secrets Manager `GetSecretValue` per cold start — as SigV4-signed
 * `fetch` requests. Their SDK clients would put ~90 kB into every bundle (and into every cold
 * start's parse) for one operation each (test/bench/RESULTS.md, "Lambda bundle and cold init").
 *
 * Wire formats (AWS API references):
 * - Lambda `Invoke`: `POST /2015-03-31/functions/<FunctionName>/invocations`, the payload as the
 *   body, `X-Amz-Invocation-Type: Event` → 202 (REST-JSON protocol; errors name their type in the
 *   `X-Amzn-ErrorType` header) — https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
 * - Secrets Manager `GetSecretValue`: `POST /`, `X-Amz-Target: secretsmanager.GetSecretValue`,
 *   `Content-Type: application/x-amz-json-1.1`, body `{"SecretId"}` → `{"SecretString", …}`
 *   (AWS JSON 1.1; errors carry `__type`) — https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html
 * - Endpoints `https://<service>.<region>.amazonaws.com`, overridden as the SDKs do by
 *   `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL` — https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
 */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/** AWS credentials as the SDK's providers return them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Where and as whom to call: a region and a credential provider (e.g. an SDK client's `config.credentials`). */
export interface AwsCaller {
  region: string;
  credentials: () => Promise<AwsCredentials>;
}

/** An error answer of an AWS API: `name` is its type (e.g. `ResourceNotFoundException`). */
export class AwsCallError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    /** The HTTP status of the answer; 0 when none came (`NetworkingError`). */
    readonly status: number,
  ) {
    super(message);
  }
}

/** The hash the SigV4 signer wants (a `Checksum` constructor), on node:crypto. */
export class Sha256 {
  private hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.make();
  }
  private make() {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(this.secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.make();
  }
}

function toBytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/**
 * Starts `functionName` asynchronously with `payload` (JSON) and returns once Lambda queued it.
 * @throws AwsCallError when Lambda refuses (e.g. `ResourceNotFoundException`; `TooManyRequestsException` after 3 attempts).
 */
export async function invokeAsync(caller: AwsCaller, functionName: string, payload: unknown): Promise<void> {
  await call(caller, 'lambda', 'LAMBDA', `/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`, {
    'content-type': 'application/json',
    'x-amz-invocation-type': 'Event',
  }, JSON.stringify(payload));
}

/**
 * The `SecretString` of a secret (its current version), by name or ARN.
 * @throws AwsCallError when it cannot be read (e.g. `ResourceNotFoundException`, `AccessDeniedException`; transient errors after 3 attempts, see {@link isTransient}).
 */
export async function getSecretString(caller: AwsCaller, secretId: string): Promise<string> {
  const answer = await call(caller, 'secretsmanager', 'SECRETS_MANAGER', '/', {
    'content-type': 'application/x-amz-json-1.1',
    'x-amz-target': 'secretsmanager.GetSecretValue',
  }, JSON.stringify({ SecretId: secretId }));
  const secret = (JSON.parse(answer) as { SecretString?: string }).SecretString;
  if (secret === undefined) throw new AwsCallError('SecretStringMissing', `secret ${secretId} has no SecretString (a binary secret?)`, 200);
  return secret;
}

/**
 * Attempts per call, as the SDKs' "standard" retry mode: throttling, 5xx and network errors are
 * retried after a full-jitter exponential backoff (base 100 ms, at most 20 s) —
 * https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
 */
const MAX_ATTEMPTS = 3;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 20_000;
/** Error types the SDKs treat as throttling, whatever the status (smithy service-error-classification). */
const THROTTLING = new Set([
  'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottledException', 'TooManyRequestsException',
  'ProvisionedThroughputExceededException', 'TransactionInProgressException', 'RequestLimitExceeded',
  'BandwidthLimitExceeded', 'LimitExceededException', 'RequestThrottled', 'SlowDown', 'PriorRequestNotComplete', 'EC2ThrottledException',
]);

/** Whether `error` may pass if the call is made again: throttling, a 5xx, or no answer at all (`NetworkingError`). */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof AwsCallError)) return false;
  return error.status === 0 || error.status >= 500 || error.status === 429 || THROTTLING.has(error.name);
}

/** One signed request, made again on transient errors ({@link MAX_ATTEMPTS} in all); the answer's body on 2xx. */
async function call(caller: AwsCaller, service: string, envName: string, path: string, headers: Record<string, string>, body: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptCall(caller, service, envName, path, headers, body);
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS || !isTransient(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt)));
    }
  }
}

/** One signed request (signed anew: `X-Amz-Date` is part of the signature); the answer's body on 2xx. */
async function attemptCall(caller: AwsCaller, service: string, envName: string, path: string, headers: Record<string, string>, body: string): Promise<string> {
  const endpoint = new URL(process.env[`AWS_ENDPOINT_URL_${envName}`] || process.env.AWS_ENDPOINT_URL || `https://${service}.${caller.region}.amazonaws.com`);
  const signer = new SignatureV4({ service, region: caller.region, credentials: caller.credentials, sha256: Sha256 });
  const signed = await signer.sign({
    method: 'POST',
    protocol: endpoint.protocol,
    hostname: endpoint.hostname,
    port: endpoint.port ? Number(endpoint.port) : undefined,
    path,
    headers: { ...headers, host: endpoint.host },
    body,
  });
  const { host: _host, ...sent } = signed.headers;
  let response: Response;
  let text: string;
  try {
    response = await fetch(new URL(path, endpoint), { method: 'POST', headers: sent, body });
    text = await response.text();
  } catch (error) {
    // No answer (connection refused or reset, DNS): status 0, as the SDKs' NetworkingError.
    throw new AwsCallError('NetworkingError', `${service} ${path}: ${(error as Error).message}`, 0);
  }
  if (response.ok) return text;
  let detail: { __type?: string; message?: string; Message?: string } = {};
  try {
    detail = JSON.parse(text) as typeof detail;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  // The type may carry a namespace ("aws.protocoltests#Name") or a suffix after ':' (restJson1 rules).
  const type = (response.headers.get('x-amzn-errortype') ?? detail.__type ?? `HTTP${response.status}`).split(':')[0].split('#').pop()!;
  throw new AwsCallError(type, `${service} ${path}: ${response.status} ${type}: ${detail.message ?? detail.Message ?? text.slice(0, 200)}`, response.status);
}
