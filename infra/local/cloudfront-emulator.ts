/**
 * The registry's front door on this machine: an emulated Amazon CloudFront distribution that runs
 * THE SAME CloudFront Function source that is deployed (infra/aws/frontdoor/function.js, runtime
 * cloudfront-js-2.0) on viewer request and viewer response, in front of two origins with the ids
 * of the deployed distribution: `api` (a custom origin: API Gateway there, the Lambda emulator or
 * the registry here) and `blobs` (the S3 bucket, reached through Origin Access Control, i.e. with
 * SigV4-signed requests). Request and response bodies are streamed both ways, never buffered.
 *
 * What it reproduces, and where each behaviour comes from (sources listed below the table; [inf]
 * marks what is inferred rather than documented):
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | URL (`https://` + host + path + query) over 8,192 bytes, or request line + headers over 20,480 bytes [Q][RC] | `413`, then CloudFront closes the connection | `413` error page, `Connection: close` |
 * | method other than DELETE GET HEAD OPTIONS PATCH POST PUT (all methods allowed) [RC] | `403` [M] | `403` error page |
 * | GET with a body [RC] | `403` | `403` error page |
 * | event given to the function [E] | `{version:'1.0', context:{distributionDomainName, distributionId, eventType, requestId}, viewer:{ip}, request:{method, uri, querystring, headers, cookies}}` (+ `response` on viewer response); lower-case header names, duplicates in `multiValue`, cookies apart; query names and values undecoded, as the viewer sent them [QS] | same; the viewer-response event's `request` is the request as the viewer-request function returned it [inf] |
 * | headers hidden from functions and refused from them (`Connection`, `Expect`, `Keep-Alive`, `Proxy-*`, `Trailer`, `Upgrade`, `X-Accel-*`, `X-Amz-Cf-*`, `X-Amzn-*` of the list, `X-Cache`, `X-Edge-*`, `X-Forwarded-Proto`, `X-Real-IP`) [R] | not in the event; a function adding one fails validation: `502` | same |
 * | read-only headers: `Content-Length`, `Host`, `Transfer-Encoding`, `Via` (viewer request); `Warning`, `Via` (viewer response) [R] | adding or changing one: `502` | same; removing one too [inf] |
 * | `request.method` [E] | read-only | changing it: `502` [inf] |
 * | returned `uri` / query string [E][R] | `uri` starts with `/`; URI + query under 8,192 characters; no spaces, control characters or `#` in the query | otherwise `502` [inf: the status] |
 * | function returns an object with `statusCode` on viewer request [E] | CloudFront answers with it (function-generated response), the origin is not contacted; body `"text"` or `{encoding:'text'\|'base64', data}` | same; viewer response does not run for it [inf] |
 * | function throws, exceeds its time, or cannot be compiled [503] | `503` ("The CloudFront function associated with the CloudFront distribution is invalid or could not run.") [F503] | same; the time cap is a wall-clock cap ({@link CloudFrontLimits.functionTimeoutMs}, 100 ms; the worker thread running an overrun is terminated): AWS publishes no figure in milliseconds, only "compute utilization" [R] |
 * | function returns something that is not a valid request or response | `502` (validation error) [R][MET] | `502` error page (wording [inf]) |
 * | function code over 10 KB [Q] | cannot be published | every request answers `503` and the log says why |
 * | runtime [RT][RT2] | ES 5.1 + parts of ES 6–12, `async`/`await`; `Buffer`; `require('crypto')` with `createHash`/`createHmac` (md5, sha1, sha256; digest `hex`, `base64`, `base64url`, or a `Buffer` without encoding in 2.0); `require('querystring')`; `console.log`; no dynamic code evaluation, network, file system or timers | a fresh `vm` context per run, in a worker thread, with those globals only; `eval`/`new Function` refused; no `process`, `setTimeout`, `fetch`, `require` of other modules; memory is not capped at 2 MB |
 * | `import cf from 'cloudfront'` (first line) [KVS][OM] | the CloudFront module: `cf.kvs([id])` → `get(key, {format:'string'\|'json'\|'bytes'})` (rejects for a missing key), `exists(key)`, `meta()`; `cf.selectRequestOriginById(id)`, `cf.updateRequestOrigin(…)`, `cf.createRequestOriginGroup(…)` | the `import` line (and `import x from 'crypto'`/`'querystring'` [inf: allowed]) becomes `var cf = __require('cloudfront');` on the same line, before the code is compiled; `selectRequestOriginById('api'\|'blobs')` works, an unknown id, `updateRequestOrigin` and `createRequestOriginGroup` throw (→ `503`) |
 * | KeyValueStore contents [KVS][KVI] | imported from `{"data":[{"key","value"}]}` | read from `kvsFile`, re-read when it changes |
 * | origin request policy `AllViewerExceptHostHeader` on `api` (and `blobs`, same behaviour) [P] | every viewer header, cookie and query parameter except `Host`; `Host` = the origin's domain; no `CloudFront-*` headers (that is the `AllViewerAndCloudFrontHeaders` policy) | same |
 * | headers CloudFront adds or drops on origin requests [RC][LE] | appends the viewer IP to `X-Forwarded-For`; adds `X-Amz-Cf-Id` and `Via: <http version> <id>.cloudfront.net (CloudFront)`; `Connection: Keep-Alive`; drops `Expect`, `Proxy-*`, `TE`, `Trailer`, `Upgrade`, `X-Forwarded-Proto`, `X-Real-IP`, `X-Edge-*` | same; header names are sent capitalised per word, as the event docs say [E] |
 * | query string the function did not change [R] | forwarded as the viewer sent it; a changed one is forwarded UTF-8 percent-encoded | same |
 * | `blobs` through Origin Access Control, signing "always" [OAC] | SigV4 (`s3`), the viewer's `Authorization` overwritten | SigV4 over `host` and every `x-amz-*` header, `x-amz-content-sha256: UNSIGNED-PAYLOAD` [inf: which headers OAC signs and its payload hash are not documented], body streamed; path-style `/<bucket><uri>` when `forcePathStyle` |
 * | origin answers `400` or more [R][E] | viewer-response function not run | same |
 * | viewer-response function [E] | sees status and headers, not the body; may change status, headers, cookies, or set a body | same |
 * | response headers [RC][502] | drops `Trailer`, `Upgrade`; sets `Via`; adds `X-Cache` (`Miss from cloudfront`, `Error from cloudfront`), `X-Amz-Cf-Pop`, `X-Amz-Cf-Id` | same; `FunctionGeneratedResponse from cloudfront` for function-generated responses [inf: seen in the wild, not in the docs] |
 * | origin cannot be reached [502] | `502` | `502` error page |
 * | origin response timeout: no answer, or no next packet, within 30 s (default for custom and S3 origins; not retried for PUT/POST) [RC][S3O][TO] | `504` | `504` error page if no status line yet, else the viewer connection is cut |
 * | size of a PUT body | no limit documented today (older quota pages: "Maximum file size for HTTP GET, POST, and PUT requests" 20 GB, later a 30 GB *cacheable* size [OLD]); S3 itself takes at most 5 GB in one PUT | not limited here [inf]; S3's limit is the S3 emulator's business |
 * | S3 event notification on `ObjectCreated:*` for prefix `incoming/` [S3E] | asynchronous, record `{eventVersion, eventSource:'aws:s3', awsRegion, eventTime, eventName:'ObjectCreated:Put', userIdentity, requestParameters, responseElements, s3:{s3SchemaVersion, configurationId, bucket:{name, ownerIdentity, arn}, object:{key (URL-encoded), size, eTag, sequencer}}}` | `onObjectCreated(record)` after S3 answers 2xx to a PUT under `incoming/`, eventVersion `2.1` (current docs show 2.5, a compatible superset); key encoded as form data (`+` for space, `/` kept) [inf: the exact escaping] |
 * | function-generated response after a body was sent | not documented | the rest of the request body is read and dropped [inf] |
 *
 * Sources (AWS documentation unless said otherwise; the archived copy of the developer guide,
 * github.com/awsdocs/amazon-cloudfront-developer-guide, was read where the live page was not):
 * - [E] Event structure, request/response objects, `multiValue` rules, `body` `{encoding, data}`, viewer
 *   response not run for origin errors — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
 * - [R] Restrictions on all edge functions (status codes, disallowed and read-only headers, query string
 *   and URI rules) and on CloudFront Functions (no body access, no network/file system/timers, compute
 *   utilization) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html,
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-function-restrictions.html
 * - [Q] Quotas: request (headers and query, no body) 20,480 bytes, URL 8,192 bytes, maximum function size
 *   10 KB, function memory 2 MB — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html
 * - [RC] Request and response behavior for custom origins (413 and closing the connection, GET with body
 *   → 403, methods, header table, X-Forwarded-For, response headers removed or replaced, origin response
 *   timeout, HTTP/1.1 to origins) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html
 * - [S3O] Same for S3 origins (headers as for custom origins, 30 s response timeout, OAC for uploads) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorS3Origin.html
 * - [TO] S3OriginConfig.OriginReadTimeout: 1–120 s, default 30 s — https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_S3OriginConfig.html
 * - [M] HTTP 403 (invalid method) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-403-invalid-method.html
 * - [P] Managed origin request policy AllViewerExceptHostHeader ("CloudFront adds a new Host header with the
 *   origin's domain name") — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-origin-request-policies.html
 * - [LE] Via value on origin requests, `2.0 <hex>.cloudfront.net (CloudFront)`, in the Lambda@Edge origin
 *   request example — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-event-structure.html
 * - [RT] JavaScript runtime features (crypto via `require('crypto')`, algorithms and encodings, querystring,
 *   console.log only) and [RT2] runtime 2.0 (Buffer; digest() without encoding returns a Buffer) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-javascript-runtime-features.html,
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-javascript-runtime-20.html
 * - [KVS] Helper methods for key value stores (`import cf from 'cloudfront'`, `cf.kvs()`, get/exists/meta,
 *   get errors for a missing key) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-custom-methods.html
 * - [KVI] Import file of key-value pairs ("File format for key-value pairs") —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/kvs-with-functions-create.html; the
 *   format `{"data":[{"key":…,"value":…}]}` as AWS CDK writes it inline —
 *   https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_cloudfront.KeyValueStoreProps.html
 * - [OM] Helper methods for origin modification (viewer request only; `updateRequestOrigin`,
 *   `selectRequestOriginById`, `createRequestOriginGroup`) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/helper-functions-origin-modification.html
 * - [OAC] Restricting access to an Amazon S3 origin (OAC, signing behaviour "always" overwrites the
 *   viewer's Authorization header) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
 * - [QS] Query values reach a function undecoded: measured and reported by a CloudFront simulator,
 *   https://github.com/KensioSoftware/yulin/issues/1024, and https://github.com/itamarwe/fpv-drone-strikes-lebanon-dataset/pull/17
 * - [503] HTTP 503: "If you are using Lambda@Edge or CloudFront Functions, the issue might be an execution
 *   error" — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-503-service-unavailable.html;
 *   [F503] the page's text, measured — https://github.com/cdklabs/construct-hub/pull/402; the HTML of
 *   CloudFront's error pages — https://github.com/reimagined/resolve/issues/2125
 * - [MET] FunctionValidationErrors ("the function runs successfully but returns invalid data") and
 *   FunctionExecutionErrors — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/viewing-cloudfront-metrics.html
 * - [502] HTTP 502, `X-Cache: Error from cloudfront` — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-502-bad-gateway.html;
 *   504 — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-504-gateway-timeout.html
 * - [OLD] Earlier quota tables (archived developer guide, cloudfront-limits.md history).
 * - [S3E] S3 event message structure (key "URL encoded", size a number, sequencer for PUT and DELETE) —
 *   https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 *
 * Not emulated: caching (the behaviours Berth uses have caching disabled or serve immutable blobs),
 * compression, custom error pages, TLS, HTTP/2 to the viewer, CloudFront-* viewer headers, origin
 * connection attempts/timeouts (a refused connection is a 502 at once).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import {
  Agent,
  createServer,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Worker } from 'node:worker_threads';
import { SignatureV4 } from '@smithy/signature-v4';
import type { S3EventRecord } from 'aws-lambda';

/** The S3 origin (`blobs`), reached the way Origin Access Control reaches it: SigV4-signed. */
export interface S3OriginOptions {
  /** e.g. `http://127.0.0.1:4569` (s3rver, MinIO) or `https://s3.eu-west-1.amazonaws.com`. */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** `/<bucket>/<key>` on the endpoint (true) or `<bucket>.<endpoint host>/<key>` (false). Default true. */
  forcePathStyle?: boolean;
}

/** The distribution's origins, by the ids of the deployed one. `api` is the default behaviour's. */
export interface CloudFrontOrigins {
  /** Custom origin, e.g. `http://127.0.0.1:5001`: receives its own Host, as API Gateway does. */
  api: string;
  blobs: S3OriginOptions;
}

export interface CloudFrontLimits {
  /** Quota "Maximum length of a URL" (bytes of `https://` + host + path + query). */
  maxUrlBytes: number;
  /** Quota "Maximum length of a request … including headers and query strings, but not … the body". */
  maxRequestBytes: number;
  /** Quota "Maximum function size". */
  maxFunctionBytes: number;
  /** Wall-clock cap on one function run (AWS caps compute, unpublished in ms). */
  functionTimeoutMs: number;
  /** Origin response timeout (default 30 s for custom and S3 origins). */
  originResponseTimeoutMs: number;
}

export const CLOUDFRONT_LIMITS: CloudFrontLimits = {
  maxUrlBytes: 8192,
  maxRequestBytes: 20_480,
  maxFunctionBytes: 10 * 1024,
  // Generous on purpose: AWS's budget is about a millisecond of compute, but this machine runs the
  // tests, S3 and the registry on two CPUs; a function that needs this long would fail on AWS.
  functionTimeoutMs: 100,
  originResponseTimeoutMs: 30_000,
};

export interface CloudFrontEmulatorOptions {
  /** The CloudFront Function (cloudfront-js-2.0), associated with viewer request and viewer response. */
  functionFile: string;
  /** KeyValueStore contents in the import format `{"data":[{"key":"…","value":"…"}]}`; re-read when it changes. */
  kvsFile?: string;
  origins: CloudFrontOrigins;
  /** S3's event notification for `ObjectCreated:*` under `incoming/` (the verify function's trigger). */
  onObjectCreated?: (record: S3EventRecord) => void | Promise<void>;
  /** One line per request (stdout by default); function `console.log` lines too. */
  log?: (line: string) => void;
  limits?: Partial<CloudFrontLimits>;
  distributionId?: string;
  distributionDomainName?: string;
}

type OriginId = keyof CloudFrontOrigins;

/** `{ name: { value, multiValue? } }`, the shape of query strings, headers and cookies in events. */
interface CfEntry {
  value: string;
  multiValue?: { value: string; attributes?: string }[];
  attributes?: string;
}
type CfValues = Record<string, CfEntry>;

interface CfRequest {
  method: string;
  uri: string;
  querystring: CfValues | string;
  headers: CfValues;
  cookies: CfValues;
}

interface CfResponse {
  statusCode: number;
  statusDescription?: string;
  headers?: CfValues;
  cookies?: CfValues;
  body?: string | { encoding?: string; data?: string };
}

const ALLOWED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);

/** Headers not exposed to edge functions, which they may not add ([R], "Disallowed headers"). */
const DISALLOWED = new Set([
  'connection',
  'expect',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'trailer',
  'upgrade',
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-limit-rate',
  'x-accel-redirect',
  'x-amzn-auth',
  'x-amzn-cf-billing',
  'x-amzn-cf-id',
  'x-amzn-cf-xff',
  'x-amzn-errortype',
  'x-amzn-fle-profile',
  'x-amzn-header-count',
  'x-amzn-header-order',
  'x-amzn-lambda-integration-tag',
  'x-amzn-requestid',
  'x-cache',
  'x-forwarded-proto',
  'x-real-ip',
]);

function isDisallowed(name: string): boolean {
  return DISALLOWED.has(name) || name.startsWith('x-amz-cf-') || name.startsWith('x-edge-');
}

const READ_ONLY = {
  'viewer-request': ['content-length', 'host', 'transfer-encoding', 'via'],
  'viewer-response': ['warning', 'via'],
} as const;

/** Viewer request headers CloudFront never forwards to an origin ([RC] header table). */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'expect', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'upgrade', 'x-forwarded-proto', 'x-real-ip', 'host', 'cookie']);

/** Origin response headers CloudFront removes or replaces ([RC]) plus hop-by-hop ones Node frames itself. */
const NOT_RETURNED = new Set(['connection', 'keep-alive', 'trailer', 'upgrade', 'transfer-encoding', 'via']);

const MESSAGES = {
  functionFailed:
    "The CloudFront function associated with the CloudFront distribution is invalid or could not run. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  functionInvalid:
    "The CloudFront function returned an invalid value to CloudFront. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  badRequest:
    "Bad request. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  originUnreachable:
    "CloudFront wasn't able to connect to the origin. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  originTimeout:
    "CloudFront attempted to establish a connection with the origin, but either the attempt failed or the origin closed the connection. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
};

/** A function run that failed: `503` (execution error) or `502` (validation error). */
class FunctionFailure extends Error {
  constructor(
    readonly status: 502 | 503,
    message: string,
  ) {
    super(message);
  }
}

/** The emulated distribution: call `listen` on the server it returns. */
export function createCloudFrontEmulator(options: CloudFrontEmulatorOptions): Server {
  const limits = { ...CLOUDFRONT_LIMITS, ...options.limits };
  const log = options.log ?? console.log;
  const distributionId = options.distributionId ?? 'EDFDVBD6EXAMPLE';
  const distributionDomainName = options.distributionDomainName ?? 'd111111abcdef8.cloudfront.net';
  const edgeHost = `${randomBytes(16).toString('hex')}.cloudfront.net (CloudFront)`;
  const runtime = new FunctionRuntime(options.functionFile, options.kvsFile, limits);
  const blobs = new S3Origin(options.origins.blobs);
  const api = new URL(options.origins.api);
  const apiAgent = api.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true });
  let sequence = BigInt(Date.now()) * 1000n;

  // Room for requests over CloudFront's quotas, so that they get CloudFront's answer, not Node's 431.
  const server = createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
    serve(req, res).catch((error: unknown) => {
      log(`${req.method} ${req.url} emulator error: ${describe(error)}`);
      if (res.headersSent) res.destroy();
      else errorPage(res, 502, MESSAGES.originUnreachable, cfRequestId(), {}, true, req.method ?? 'GET');
    });
  });
  // The origin response timeout bounds waiting; a large body may take long to arrive.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = cfRequestId();
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    // Counted from the moment the body is read (piped or dropped): a 'data' listener starts the flow.
    let bytesIn = 0;
    let counting = false;
    const count = () => {
      if (counting) return;
      counting = true;
      req.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    };
    const common = { via: `1.1 ${edgeHost}`, 'x-amz-cf-pop': 'EMU50-C1', 'x-amz-cf-id': requestId };
    const note = (status: number, origin: string, detail: string[]) =>
      log(
        `${method} ${rawUrl.split('?')[0]} ${status} ${(performance.now() - started).toFixed(1)}ms in=${bytesIn} origin=${origin}${detail.length > 0 ? ` [${detail.join('; ')}]` : ''}`,
      );
    const fail = (status: number, message: string, detail: string, close = false) => {
      errorPage(res, status, message, requestId, common, close, method);
      count();
      drain(req);
      note(status, 'cloudfront', [detail]);
    };

    // Quotas on the request itself ([Q], [RC]).
    const host = req.headers.host ?? '';
    const urlBytes = Buffer.byteLength(`https://${host}${rawUrl}`);
    let requestBytes = Buffer.byteLength(`${method} ${rawUrl} HTTP/${req.httpVersion}\r\n`);
    for (let i = 0; i < req.rawHeaders.length; i += 2) requestBytes += Buffer.byteLength(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`);
    if (urlBytes > limits.maxUrlBytes) return fail(413, MESSAGES.badRequest, `URL of ${urlBytes} bytes over ${limits.maxUrlBytes}`, true);
    if (requestBytes > limits.maxRequestBytes) return fail(413, MESSAGES.badRequest, `request line and headers of ${requestBytes} bytes over ${limits.maxRequestBytes}`, true);
    if (!ALLOWED_METHODS.has(method)) return fail(403, MESSAGES.badRequest, `method ${method} not allowed`);
    if (method === 'GET' && (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined)) {
      return fail(403, MESSAGES.badRequest, 'GET with a body');
    }

    const viewerIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
    const viewer = toViewerRequest(method, rawPath, rawQuery, req.rawHeaders);
    const context = { distributionDomainName, distributionId, requestId };
    const detail: string[] = [];

    // Viewer request.
    let outcome: FunctionOutcome;
    try {
      outcome = await runtime.run({ version: '1.0', context: { ...context, eventType: 'viewer-request' }, viewer: { ip: viewerIp }, request: viewer }, log, requestId);
    } catch (error) {
      const failure = error instanceof FunctionFailure ? error : new FunctionFailure(503, describe(error));
      return fail(failure.status, failure.status === 503 ? MESSAGES.functionFailed : MESSAGES.functionInvalid, `viewer-request function: ${failure.message}`);
    }
    detail.push(`viewer-request ${outcome.ms.toFixed(1)}ms`);
    if (isResponse(outcome.result)) {
      let sent: number;
      try {
        sent = sendGenerated(res, method, outcome.result, { ...common, 'x-cache': 'FunctionGeneratedResponse from cloudfront', server: 'CloudFront' });
      } catch (error) {
        return fail(502, MESSAGES.functionInvalid, `viewer-request function: ${describe(error)}`);
      }
      count();
      drain(req);
      note(res.statusCode, 'function', [...detail, `out=${sent}`]);
      return;
    }
    let forwarded: ForwardedRequest;
    try {
      forwarded = toForwarded(outcome.result, viewer, rawQuery, limits.maxUrlBytes);
    } catch (error) {
      return fail(502, MESSAGES.functionInvalid, `viewer-request function: ${describe(error)}`);
    }
    const originId: OriginId = outcome.origin ?? 'api';

    // Origin request.
    const originHeaders = forwardedHeaders(forwarded, viewerIp, requestId, edgeHost);
    let originReq: ClientRequest;
    let s3Key: string | undefined;
    if (originId === 'blobs') {
      const target = await blobs.prepare(method, forwarded.uri, forwarded.query, originHeaders);
      s3Key = target.key;
      originReq = target.request;
    } else {
      originHeaders.Host = api.host;
      const send = api.protocol === 'https:' ? httpsRequest : httpRequest;
      originReq = send({
        protocol: api.protocol,
        hostname: api.hostname,
        port: api.port || undefined,
        method,
        path: forwarded.uri + (forwarded.query ? `?${forwarded.query}` : ''),
        headers: originHeaders,
        agent: apiAgent,
      });
    }

    let answered = false;
    originReq.setTimeout(limits.originResponseTimeoutMs, () => {
      originReq.destroy(new Error(`origin response timeout (${limits.originResponseTimeoutMs} ms)`));
    });
    originReq.on('error', (error) => {
      if (answered) {
        res.destroy(error);
        note(res.statusCode, originId, [...detail, `origin failed mid-response: ${describe(error)}`]);
        return;
      }
      answered = true;
      const timeout = /timeout/.test(error.message);
      fail(timeout ? 504 : 502, timeout ? MESSAGES.originTimeout : MESSAGES.originUnreachable, `origin ${originId}: ${describe(error)}`);
    });
    req.on('aborted', () => originReq.destroy(new Error('viewer went away')));
    count();
    req.pipe(originReq);

    originReq.on('response', (originRes) => {
      answered = true;
      void answer(originRes).catch((error) => {
        res.destroy(error as Error);
        note(res.statusCode, originId, [...detail, describe(error)]);
      });
    });

    async function answer(originRes: IncomingMessage): Promise<void> {
      const status = originRes.statusCode ?? 502;
      const responseHeaders = toCfResponseHeaders(originRes.rawHeaders);
      let response: CfResponse = { statusCode: status, statusDescription: originRes.statusMessage ?? '', headers: responseHeaders.headers, cookies: responseHeaders.cookies };
      let body: Buffer | undefined;
      if (status < 400) {
        // Viewer response ([E]: not run when the origin answers 400 or more).
        try {
          const vr = await runtime.run(
            {
              version: '1.0',
              context: { ...context, eventType: 'viewer-response' },
              viewer: { ip: viewerIp },
              request: forwarded.event,
              response: structuredClone(response),
            },
            log,
            requestId,
          );
          detail.push(`viewer-response ${vr.ms.toFixed(1)}ms`);
          if (!isResponse(vr.result)) throw new FunctionFailure(502, 'the viewer-response function must return a response object');
          checkStatus(vr.result);
          checkHeaders(vr.result.headers ?? {}, response.headers ?? {}, 'viewer-response');
          response = vr.result;
          body = generatedBody(response.body);
        } catch (error) {
          originRes.resume();
          const failure = error instanceof FunctionFailure ? error : new FunctionFailure(503, describe(error));
          fail(failure.status, failure.status === 503 ? MESSAGES.functionFailed : MESSAGES.functionInvalid, `viewer-response function: ${failure.message}`);
          return;
        }
      } else {
        detail.push('viewer-response skipped: origin status >= 400');
      }

      const out = fromCfValues(response.headers ?? {}, NOT_RETURNED);
      const cookies = setCookies(response.cookies ?? {});
      if (cookies.length > 0) out['set-cookie'] = cookies;
      Object.assign(out, common, { 'x-cache': 'Miss from cloudfront' });
      if (body !== undefined) {
        out['content-length'] = String(body.length);
        originRes.resume();
      }
      res.writeHead(response.statusCode, response.statusDescription || undefined, out);
      let bytesOut = 0;
      if (body !== undefined) {
        bytesOut = method === 'HEAD' ? 0 : body.length;
        res.end(method === 'HEAD' ? undefined : body);
      } else {
        originRes.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
        originRes.pipe(res);
        await new Promise<void>((resolve, reject) => {
          originRes.once('end', resolve);
          originRes.once('error', reject);
          originRes.once('aborted', () => reject(new Error('origin response cut short')));
        });
      }
      note(response.statusCode, originId, [...detail, `out=${bytesOut}`]);

      if (originId === 'blobs' && method === 'PUT' && status >= 200 && status < 300 && s3Key?.startsWith('incoming/') && options.onObjectCreated) {
        const record = objectCreatedRecord(blobs.settings, s3Key, bytesIn, originRes, (sequence += 1n));
        setImmediate(() => {
          Promise.resolve()
            .then(() => options.onObjectCreated!(record))
            .catch((error) => log(`s3 notification for ${s3Key}: ${describe(error)}`));
        });
      }
    }
  }

  server.on('close', () => {
    apiAgent.destroy();
    blobs.close();
    runtime.close();
  });
  return server;
}

// ---------------------------------------------------------------------------------------------
// The function runtime.
//
// Functions run in worker threads, one invocation at a time per worker, each in a fresh `vm`
// context. The main thread times each run and terminates a worker that overruns: stopping a
// runaway function inside the main thread (a `vm` timeout during promise jobs) corrupts Node's
// async-hook stack and aborts the process whenever AsyncLocalStorage is in use.

interface FunctionOutcome {
  result: CfRequest | CfResponse;
  origin?: OriginId;
  ms: number;
}

interface CompiledFunction {
  version: string;
  source?: string;
  error?: string;
}

interface KvsSnapshot {
  version: string;
  entries: [string, string][];
  meta: { creationDateTime: string; lastUpdatedDateTime: string; keyCount: number };
  error?: string;
}

interface WorkerRequest {
  id: number;
  version: string;
  filename: string;
  source: string;
  eventType: string;
  eventJson: string;
  kvs?: KvsSnapshot;
}

interface WorkerReply {
  id: number;
  ok: boolean;
  json?: string;
  error?: string;
  origin?: OriginId;
  logs: string[];
}

/** Reads the function file and the KeyValueStore file when they change, and runs the handler. */
class FunctionRuntime {
  private compiled?: CompiledFunction;
  private kvs?: KvsSnapshot;
  private readonly workers = new FunctionWorkers();
  private ids = 0;

  constructor(
    private readonly file: string,
    private readonly kvsFile: string | undefined,
    private readonly limits: CloudFrontLimits,
  ) {}

  /** Runs the handler on `event`; rejects with {@link FunctionFailure} for execution errors. */
  async run(event: Record<string, unknown> & { context: { eventType: string } }, log: (line: string) => void, requestId: string): Promise<FunctionOutcome> {
    const fn = this.load();
    if (fn.source === undefined) throw new FunctionFailure(503, fn.error ?? 'no function');
    const eventType = event.context.eventType;
    const started = performance.now();
    const reply = await this.workers.call(
      {
        id: ++this.ids,
        version: fn.version,
        filename: this.file,
        source: fn.source,
        eventType,
        eventJson: JSON.stringify(event),
        kvs: this.kvsFile ? this.loadKvs(this.kvsFile) : undefined,
      },
      this.limits.functionTimeoutMs,
    );
    const ms = performance.now() - started;
    for (const line of reply.logs) log(`cloudfront function ${eventType} ${requestId.slice(0, 8)}: ${line}`);
    if (!reply.ok) throw new FunctionFailure(503, reply.error ?? 'the function failed');
    if (reply.json === undefined) throw new FunctionFailure(502, 'the handler returned nothing');
    const value = JSON.parse(reply.json) as unknown;
    if (typeof value !== 'object' || value === null) throw new FunctionFailure(502, 'the handler must return a request or response object');
    return { result: value as CfRequest | CfResponse, origin: reply.origin, ms };
  }

  close(): void {
    this.workers.close();
  }

  private load(): CompiledFunction {
    let stat;
    try {
      stat = statSync(this.file);
    } catch (error) {
      return { version: '', error: `cannot read the function file: ${describe(error)}` };
    }
    const version = `${stat.mtimeMs}:${stat.size}`;
    if (this.compiled?.version === version) return this.compiled;
    const source = readFileSync(this.file, 'utf8');
    const bytes = Buffer.byteLength(source);
    if (bytes > this.limits.maxFunctionBytes) {
      this.compiled = { version, error: `the function code is ${bytes} bytes, over CloudFront's ${this.limits.maxFunctionBytes}-byte limit: CloudFront would refuse to publish it` };
    } else {
      this.compiled = { version, source: `${toScript(source)}\n;globalThis.__cfHandler = typeof handler === 'function' ? handler : undefined;\n` };
    }
    return this.compiled;
  }

  private loadKvs(file: string): KvsSnapshot {
    let stat;
    try {
      stat = statSync(file);
    } catch (error) {
      return { version: '', entries: [], meta: { creationDateTime: '', lastUpdatedDateTime: '', keyCount: 0 }, error: `cannot read the key value store ${file}: ${describe(error)}` };
    }
    const version = `${stat.mtimeMs}:${stat.size}`;
    if (this.kvs?.version === version) return this.kvs;
    const data = new Map<string, string>();
    let error: string | undefined;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown };
      if (!Array.isArray(parsed.data)) throw new Error('expected {"data":[{"key":…,"value":…}]}');
      for (const item of parsed.data as { key?: unknown; value?: unknown }[]) {
        if (typeof item?.key !== 'string' || typeof item.value !== 'string') throw new Error('every item needs a string key and a string value');
        data.set(item.key, item.value);
      }
    } catch (e) {
      error = `the key value store ${file} is not in the import format: ${describe(e)}`;
    }
    this.kvs = {
      version,
      entries: [...data],
      meta: { creationDateTime: stat.birthtime.toISOString(), lastUpdatedDateTime: stat.mtime.toISOString(), keyCount: data.size },
      error,
    };
    return this.kvs;
  }
}

/** Worker threads that run functions; a worker that overruns is terminated and replaced. */
class FunctionWorkers {
  private idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  /** One worker started ahead, so that the first request does not wait for a thread to boot. */
  private warming?: Promise<Worker> = this.spawn();

  constructor() {
    this.warming?.catch(() => undefined);
  }

  async call(message: WorkerRequest, timeoutMs: number): Promise<WorkerReply> {
    let worker = this.idle.pop();
    if (!worker) {
      const next = this.warming ?? this.spawn();
      this.warming = undefined;
      worker = await next;
    }
    return new Promise<WorkerReply>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
      };
      const onMessage = (reply: WorkerReply) => {
        if (reply.id !== message.id) return;
        cleanup();
        if (this.all.has(worker)) this.idle.push(worker);
        resolve(reply);
      };
      const onError = (error: unknown) => {
        cleanup();
        this.kill(worker);
        reject(new FunctionFailure(503, describe(error)));
      };
      const timer = setTimeout(() => {
        cleanup();
        this.kill(worker);
        reject(new FunctionFailure(503, `the function did not finish within ${timeoutMs} ms (CloudFront stops a function that exceeds its compute budget): timed out`));
      }, timeoutMs);
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.postMessage(message);
    });
  }

  close(): void {
    for (const worker of this.all) void worker.terminate();
    this.all.clear();
    this.idle = [];
    this.warming = undefined;
  }

  private spawn(): Promise<Worker> {
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 64 } });
    worker.unref();
    this.all.add(worker);
    return new Promise((resolve, reject) => {
      worker.once('message', () => resolve(worker));
      worker.once('error', (error) => {
        this.kill(worker);
        reject(new FunctionFailure(503, `cannot start a function worker: ${describe(error)}`));
      });
    });
  }

  private kill(worker: Worker): void {
    this.all.delete(worker);
    this.idle = this.idle.filter((w) => w !== worker);
    void worker.terminate();
  }
}

/**
 * The worker (CommonJS, plain JavaScript). Per invocation: a fresh context holding only what
 * CloudFront Functions have ([RT], [RT2]): `Buffer`, `console.log`, `require` of `crypto` (hash and
 * HMAC, md5/sha1/sha256, hex/base64/base64url or a Buffer) and `querystring`, the `cloudfront`
 * module ([KVS], [OM]); no dynamic code evaluation; no process, timers or network. The module and
 * its promises are made inside the context.
 */
const WORKER_SOURCE = String.raw`'use strict';
const { parentPort } = require('node:worker_threads');
const vm = require('node:vm');
const nodeCrypto = require('node:crypto');
const nodeQuerystring = require('node:querystring');

const describe = (e) => (e && typeof e === 'object' && 'message' in e ? (e.name || 'Error') + ': ' + e.message : String(e));

const PRELUDE = new vm.Script(` + '`' + String.raw`(function (host, hostModules) {
  function kvs(id) {
    var store = host.kvs(id);
    return {
      get: async function (key, options) {
        var format = options && options.format !== undefined ? options.format : 'string';
        var value = store.lookup(key);
        if (value === undefined) throw new Error('KeyValueStore: key not found: ' + key);
        if (format === 'string') return value;
        if (format === 'json') return JSON.parse(value);
        if (format === 'bytes') return store.bytes(value);
        throw new Error('KeyValueStore.get(): unknown format ' + format);
      },
      exists: async function (key) { return store.has(key); },
      meta: async function () { return JSON.parse(JSON.stringify(store.meta())); }
    };
  }
  var cloudfront = {
    kvs: kvs,
    selectRequestOriginById: function (id) { host.selectRequestOriginById(id); },
    updateRequestOrigin: function () { host.unsupported('updateRequestOrigin'); },
    createRequestOriginGroup: function () { host.unsupported('createRequestOriginGroup'); }
  };
  function require(name) {
    if (name === 'cloudfront') return cloudfront;
    if (Object.prototype.hasOwnProperty.call(hostModules, name)) return hostModules[name];
    throw new Error("Cannot find module '" + name + "'");
  }
  globalThis.require = require;
  globalThis.__require = require;
  delete globalThis.__host;
  delete globalThis.__hostModules;
})(__host, __hostModules);` + '`' + String.raw`);

const INVOKE = new vm.Script(` + '`' + String.raw`(function () {
  if (typeof __cfHandler !== 'function') throw new Error('the function code defines no handler(event) function');
  return Promise.resolve().then(function () { return __cfHandler(JSON.parse(__eventJson)); })
    .then(function (r) { return r === undefined ? undefined : JSON.stringify(r); });
})()` + '`' + String.raw`);

function cryptoModule() {
  const algorithms = ['md5', 'sha1', 'sha256'];
  const encodings = ['hex', 'base64', 'base64url'];
  const check = (algorithm) => {
    if (algorithms.indexOf(algorithm) < 0) throw new Error('crypto: unsupported algorithm ' + algorithm + ' (md5, sha1, sha256)');
    return algorithm;
  };
  const wrap = (hash) => {
    const object = {
      update(data) { hash.update(data); return object; },
      digest(encoding) {
        if (encoding === undefined) return hash.digest();
        if (encodings.indexOf(encoding) < 0) throw new Error('crypto: unsupported digest encoding ' + encoding + ' (hex, base64, base64url)');
        return hash.digest(encoding);
      }
    };
    return object;
  };
  return Object.freeze({
    createHash: (algorithm) => wrap(nodeCrypto.createHash(check(algorithm))),
    createHmac: (algorithm, key) => wrap(nodeCrypto.createHmac(check(algorithm), key))
  });
}

function querystringModule() {
  const q = nodeQuerystring;
  return Object.freeze({ parse: q.parse, stringify: q.stringify, escape: q.escape, unescape: q.unescape, decode: q.decode, encode: q.encode });
}

let compiled = { version: undefined };

parentPort.on('message', (m) => {
  const logs = [];
  let logged = 0;
  let origin;
  const reply = (r) => parentPort.postMessage(Object.assign({ id: m.id, logs: logs, origin: origin }, r));
  if (compiled.version !== m.version) {
    try {
      compiled = { version: m.version, script: new vm.Script(m.source, { filename: m.filename }) };
    } catch (e) {
      compiled = { version: m.version, error: 'the function code does not compile: ' + describe(e) };
    }
  }
  if (compiled.error) return reply({ ok: false, error: compiled.error });
  const data = new Map(m.kvs ? m.kvs.entries : []);
  const host = {
    kvs(id) {
      if (!m.kvs) throw new Error('cf.kvs(): no key value store is associated with this function');
      if (m.kvs.error) throw new Error('cf.kvs(): ' + m.kvs.error);
      if (id !== undefined && typeof id !== 'string') throw new Error('cf.kvs(id): the id must be a string');
      return {
        lookup: (key) => data.get(String(key)),
        has: (key) => data.has(String(key)),
        meta: () => m.kvs.meta,
        bytes: (value) => Buffer.from(value, 'utf8')
      };
    },
    selectRequestOriginById(id) {
      if (m.eventType !== 'viewer-request') throw new Error('cf.selectRequestOriginById() works on viewer request only');
      if (id !== 'api' && id !== 'blobs') throw new Error('cf.selectRequestOriginById(' + JSON.stringify(id) + '): the distribution has no origin with that id (it has api, blobs)');
      origin = id;
    },
    unsupported(name) {
      throw new Error('cf.' + name + '() is not supported by the CloudFront emulator (infra/local/cloudfront-emulator.ts); use cf.selectRequestOriginById()');
    }
  };
  const log = (...args) => {
    // CloudFront truncates function logs at 10 KB.
    if (logged >= 10240) return;
    const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ').slice(0, 10240 - logged);
    logged += line.length;
    logs.push(line);
  };
  const context = vm.createContext(
    {
      __host: host,
      __hostModules: { crypto: cryptoModule(), querystring: querystringModule() },
      __eventJson: m.eventJson,
      Buffer: Buffer,
      console: Object.freeze({ log: log })
    },
    { codeGeneration: { strings: false, wasm: false }, name: 'cloudfront-function' }
  );
  let pending;
  try {
    PRELUDE.runInContext(context);
    compiled.script.runInContext(context);
    pending = INVOKE.runInContext(context);
  } catch (e) {
    return reply({ ok: false, error: describe(e) });
  }
  pending.then(
    (json) => reply({ ok: true, json: json }),
    (e) => reply({ ok: false, error: 'the handler threw: ' + describe(e) })
  );
});
parentPort.postMessage({ ready: true });
`;

/**
 * The function file as a script: `import cf from 'cloudfront';` (and `import x from 'crypto'` or
 * `'querystring'`) become `var cf = __require('cloudfront');` on the same line, so line numbers in
 * stack traces stay right. Any other `import`/`export` is a syntax error, as CloudFront would report.
 */
export function toScript(source: string): string {
  return source.replace(
    /^([ \t]*)import\s+([A-Za-z_$][\w$]*)\s+from\s+(['"])(cloudfront|crypto|querystring)\3[ \t]*;?/gm,
    (_match, indent: string, name: string, _quote: string, module: string) => `${indent}var ${name} = __require(${JSON.stringify(module)});`,
  );
}

// ---------------------------------------------------------------------------------------------
// Viewer request → event → origin request.

function addValue(values: CfValues, name: string, value: string): void {
  const entry = values[name];
  if (!entry) {
    values[name] = { value };
    return;
  }
  entry.multiValue ??= [{ value: entry.value }];
  entry.multiValue.push({ value });
}

function toViewerRequest(method: string, rawPath: string, rawQuery: string, rawHeaders: string[]): CfRequest {
  const headers: CfValues = {};
  const cookies: CfValues = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (isDisallowed(name)) continue;
    if (name === 'cookie') {
      for (const part of value.split(';')) {
        const cookie = part.trim();
        if (!cookie) continue;
        const eq = cookie.indexOf('=');
        addValue(cookies, eq < 0 ? cookie : cookie.slice(0, eq), eq < 0 ? '' : cookie.slice(eq + 1));
      }
      continue;
    }
    addValue(headers, name, value);
  }
  return { method, uri: rawPath, querystring: parseQuery(rawQuery), headers, cookies };
}

function parseQuery(raw: string): CfValues {
  const values: CfValues = {};
  for (const part of raw.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    addValue(values, eq < 0 ? part : part.slice(0, eq), eq < 0 ? '' : part.slice(eq + 1));
  }
  return values;
}

interface ForwardedRequest {
  /** The request as the function returned it (the viewer-response event's `request`). */
  event: CfRequest;
  uri: string;
  query: string;
  headers: [string, string][];
  cookie?: string;
}

/** Validates what the viewer-request function returned ([E], [R]) and resolves the `multiValue` rules. */
function toForwarded(result: CfRequest, original: CfRequest, rawQuery: string, maxUrl: number): ForwardedRequest {
  if (result.method !== original.method) throw new FunctionFailure(502, 'request.method is read-only');
  if (typeof result.uri !== 'string' || !result.uri.startsWith('/')) throw new FunctionFailure(502, 'request.uri must be a string that starts with /');
  if (/[\x00-\x20\x7f]/.test(result.uri)) throw new FunctionFailure(502, 'request.uri has spaces or control characters');
  const headers = result.headers ?? {};
  if (typeof headers !== 'object') throw new FunctionFailure(502, 'request.headers must be an object');
  checkHeaders(headers, original.headers, 'viewer-request');

  let query: string;
  const qs = result.querystring ?? {};
  if (typeof qs === 'string') {
    query = qs.replace(/^\?/, '');
  } else if (safeJson(qs) === safeJson(original.querystring)) {
    query = rawQuery;
  } else {
    const parts: string[] = [];
    for (const [name, entry] of Object.entries(qs)) {
      for (const value of resolveValues(entry, (original.querystring as CfValues)[name], `querystring ${name}`)) {
        parts.push(`${encodeLoose(name)}=${encodeLoose(value)}`);
      }
    }
    query = parts.join('&');
  }
  if (/[\x00-\x20\x7f#]/.test(query)) throw new FunctionFailure(502, 'the query string may not contain spaces, control characters or #');
  const uri = encodeLoose(result.uri);
  if (uri.length + (query ? query.length + 1 : 0) >= maxUrl) throw new FunctionFailure(502, 'the URI with its query string must be shorter than 8,192 characters');

  const out: [string, string][] = [];
  for (const [name, entry] of Object.entries(headers)) {
    for (const value of resolveValues(entry, original.headers[name], `header ${name}`)) out.push([name, value]);
  }
  const cookieParts: string[] = [];
  for (const [name, entry] of Object.entries(result.cookies ?? {})) {
    for (const value of resolveValues(entry, original.cookies[name], `cookie ${name}`)) cookieParts.push(`${name}=${value}`);
  }
  return { event: result, uri, query, headers: out, cookie: cookieParts.length > 0 ? cookieParts.join('; ') : undefined };
}

/**
 * The values of one query parameter, header or cookie after a function ran ([E], multiValue): a
 * changed `multiValue` wins; otherwise `value` replaces the first value and the others stay.
 */
function resolveValues(entry: CfEntry | undefined, before: CfEntry | undefined, what: string): string[] {
  if (entry === undefined || entry === null) return [];
  if (typeof entry !== 'object' || typeof entry.value !== 'string') throw new FunctionFailure(502, `${what}: expected { value: string }`);
  const list = entry.multiValue;
  if (list !== undefined) {
    if (!Array.isArray(list) || list.some((v) => typeof v?.value !== 'string')) throw new FunctionFailure(502, `${what}: multiValue must be [{ value: string }]`);
    if (safeJson(list) !== safeJson(before?.multiValue)) return list.map((v) => v.value);
    return [entry.value, ...list.slice(1).map((v) => v.value)];
  }
  return [entry.value];
}

/** Refuses disallowed, upper-case and changed read-only headers in what a function returned ([R], [E]). */
function checkHeaders(after: CfValues, before: CfValues, event: keyof typeof READ_ONLY): void {
  if (typeof after !== 'object' || after === null) throw new FunctionFailure(502, 'headers must be an object');
  for (const [name, entry] of Object.entries(after)) {
    if (name !== name.toLowerCase()) throw new FunctionFailure(502, `header names must be lower case: ${name}`);
    if (isDisallowed(name)) throw new FunctionFailure(502, `header ${name} is disallowed in edge functions`);
    if (entry !== undefined && entry !== null && (typeof entry !== 'object' || typeof entry.value !== 'string')) {
      throw new FunctionFailure(502, `header ${name}: expected { value: string }`);
    }
  }
  for (const name of READ_ONLY[event]) {
    if (safeJson(after[name] ?? null) !== safeJson(before[name] ?? null)) throw new FunctionFailure(502, `header ${name} is read-only in ${event} functions`);
  }
}

/** Percent-encodes what may not appear raw in a request target, leaving existing escapes alone. */
function encodeLoose(text: string): string {
  return text.replace(/[^\x21-\x7e]+/g, (run) => encodeURIComponent(run));
}

/** "example-header-name" → "Example-Header-Name", as CloudFront writes function headers ([E]). */
function capitalise(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase());
}

/** The headers of the origin request: the policy's viewer headers plus CloudFront's own ([P], [RC]). */
function forwardedHeaders(forwarded: ForwardedRequest, viewerIp: string, requestId: string, edgeHost: string): OutgoingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  const add = (name: string, value: string) => {
    const key = capitalise(name);
    const existing = headers[key];
    headers[key] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  };
  let xff: string | undefined;
  let via: string | undefined;
  for (const [name, value] of forwarded.headers) {
    if (NOT_FORWARDED.has(name) || name.startsWith('x-edge-')) continue;
    if (name === 'x-forwarded-for') xff = xff === undefined ? value : `${xff},${value}`;
    else if (name === 'via') via = via === undefined ? value : `${via}, ${value}`;
    else add(name, value);
  }
  if (forwarded.cookie !== undefined) add('cookie', forwarded.cookie);
  add('x-forwarded-for', xff === undefined ? viewerIp : `${xff},${viewerIp}`);
  add('via', via === undefined ? `1.1 ${edgeHost}` : `${via}, 1.1 ${edgeHost}`);
  add('x-amz-cf-id', requestId);
  headers.Connection = 'keep-alive';
  return headers;
}

// ---------------------------------------------------------------------------------------------
// The S3 origin, signed like Origin Access Control signs.

class Sha256 {
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

class S3Origin {
  private readonly endpoint: URL;
  private readonly signer: SignatureV4;
  private readonly agent: Agent;

  constructor(readonly settings: S3OriginOptions) {
    this.endpoint = new URL(settings.endpoint);
    this.signer = new SignatureV4({
      service: 's3',
      region: settings.region,
      credentials: settings.credentials,
      sha256: Sha256,
      // S3 signs the path as sent (no second escaping), and the payload hash is given in a header.
      uriEscapePath: false,
      applyChecksum: false,
    });
    this.agent = this.endpoint.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true });
  }

  /** The signed request for `uri` (the object key's path, as the function left it). */
  async prepare(method: string, uri: string, query: string, headers: OutgoingHttpHeaders): Promise<{ request: ClientRequest; key: string }> {
    const pathStyle = this.settings.forcePathStyle ?? true;
    const hostname = pathStyle ? this.endpoint.hostname : `${this.settings.bucket}.${this.endpoint.hostname}`;
    const host = this.endpoint.port ? `${hostname}:${this.endpoint.port}` : hostname;
    const path = pathStyle ? `/${this.settings.bucket}${uri}` : uri;
    const toSign: Record<string, string> = { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      // OAC "always" replaces whatever Authorization the viewer sent ([OAC]).
      if (lower === 'authorization' || lower === 'x-amz-content-sha256' || lower === 'x-amz-date' || lower === 'x-amz-security-token') {
        delete headers[name];
        continue;
      }
      if (lower.startsWith('x-amz-') && !lower.startsWith('x-amz-cf-')) {
        toSign[lower] = Array.isArray(value) ? value.join(',') : String(value);
        delete headers[name];
      }
    }
    const signed = await this.signer.sign({
      method,
      protocol: this.endpoint.protocol,
      hostname,
      port: this.endpoint.port ? Number(this.endpoint.port) : undefined,
      path,
      query: decodedQuery(query),
      headers: toSign,
    });
    const all: OutgoingHttpHeaders = { ...headers };
    for (const [name, value] of Object.entries(signed.headers)) all[name === 'host' ? 'Host' : name] = value;
    const send = this.endpoint.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send({
      protocol: this.endpoint.protocol,
      hostname: this.endpoint.hostname,
      port: this.endpoint.port || undefined,
      method,
      path: path + (query ? `?${query}` : ''),
      headers: all,
      agent: this.agent,
    });
    return { request, key: decodePath(uri.slice(1)) };
  }

  close(): void {
    this.agent.destroy();
  }
}

function decodedQuery(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = decodePath(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decodePath(part.slice(eq + 1));
    const existing = out[name];
    out[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return out;
}

function decodePath(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** An object key as S3 writes it in event notifications: URL-encoded, `+` for space, `/` kept ([S3E]). */
export function s3EventKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

function objectCreatedRecord(settings: S3OriginOptions, key: string, size: number, res: IncomingMessage, sequence: bigint): S3EventRecord {
  const header = (name: string) => {
    const value = res.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: settings.region,
    eventTime: new Date().toISOString(),
    eventName: 'ObjectCreated:Put',
    // With OAC, the request is made by the CloudFront service principal.
    userIdentity: { principalId: 'AWS:CLOUDFRONT-EMULATOR' },
    requestParameters: { sourceIPAddress: '127.0.0.1' },
    responseElements: {
      'x-amz-request-id': header('x-amz-request-id') ?? randomBytes(8).toString('hex').toUpperCase(),
      'x-amz-id-2': header('x-amz-id-2') ?? randomBytes(48).toString('base64'),
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'incoming-objects',
      bucket: { name: settings.bucket, ownerIdentity: { principalId: 'EMULATED' }, arn: `arn:aws:s3:::${settings.bucket}` },
      object: { key: s3EventKey(key), size, eTag: (header('etag') ?? '').replace(/"/g, ''), sequencer: sequence.toString(16).toUpperCase().padStart(18, '0') },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Responses.

function isResponse(value: unknown): value is CfResponse {
  return typeof value === 'object' && value !== null && 'statusCode' in value;
}

function checkStatus(response: CfResponse): number {
  const status = response.statusCode;
  if (!Number.isInteger(status) || status < 100 || status > 599) throw new FunctionFailure(502, `response.statusCode must be an integer HTTP status, not ${JSON.stringify(status)}`);
  const description = response.statusDescription;
  if (description !== undefined && (typeof description !== 'string' || /[\r\n]/.test(description))) throw new FunctionFailure(502, 'response.statusDescription must be a one-line string');
  return status;
}

function toCfResponseHeaders(rawHeaders: string[]): { headers: CfValues; cookies: CfValues } {
  const headers: CfValues = {};
  const cookies: CfValues = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (isDisallowed(name) || name === 'transfer-encoding') continue;
    if (name === 'set-cookie') {
      const semi = value.indexOf(';');
      const pair = semi < 0 ? value : value.slice(0, semi);
      const attributes = semi < 0 ? '' : value.slice(semi + 1).trim();
      const eq = pair.indexOf('=');
      const cookieName = (eq < 0 ? pair : pair.slice(0, eq)).trim();
      const cookieValue = eq < 0 ? '' : pair.slice(eq + 1);
      const entry = cookies[cookieName];
      if (!entry) cookies[cookieName] = { value: cookieValue, attributes };
      else {
        entry.multiValue ??= [{ value: entry.value, attributes: entry.attributes }];
        entry.multiValue.push({ value: cookieValue, attributes });
      }
      continue;
    }
    addValue(headers, name, value);
  }
  return { headers, cookies };
}

function fromCfValues(values: CfValues, skip: Set<string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, entry] of Object.entries(values)) {
    if (!entry || skip.has(name)) continue;
    const list = entry.multiValue && entry.multiValue.length > 0 ? entry.multiValue.map((v) => v.value) : [entry.value];
    out[capitalise(name)] = list.length === 1 ? list[0] : list;
  }
  return out;
}

function setCookies(cookies: CfValues): string[] {
  const out: string[] = [];
  for (const [name, entry] of Object.entries(cookies)) {
    if (!entry) continue;
    const list = entry.multiValue && entry.multiValue.length > 0 ? entry.multiValue : [entry];
    for (const c of list) out.push(`${name}=${c.value}${c.attributes ? `; ${c.attributes}` : ''}`);
  }
  return out;
}

function generatedBody(body: CfResponse['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (typeof body !== 'object' || typeof body.data !== 'string') throw new FunctionFailure(502, 'response.body must be a string or { encoding, data }');
  const encoding = body.encoding ?? 'text';
  if (encoding === 'text') return Buffer.from(body.data, 'utf8');
  if (encoding === 'base64') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body.data) || body.data.length % 4 !== 0) throw new FunctionFailure(502, 'response.body.data is not valid base64');
    return Buffer.from(body.data, 'base64');
  }
  throw new FunctionFailure(502, `response.body.encoding must be text or base64, not ${encoding}`);
}

/** A viewer-request function's own response ([E]). Returns the body bytes sent. */
function sendGenerated(res: ServerResponse, method: string, response: CfResponse, extra: Record<string, string>): number {
  const status = checkStatus(response);
  checkHeaders(response.headers ?? {}, {}, 'viewer-response');
  const body = generatedBody(response.body) ?? Buffer.alloc(0);
  const headers = fromCfValues(response.headers ?? {}, NOT_RETURNED);
  const cookies = setCookies(response.cookies ?? {});
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  delete headers['Content-Length'];
  Object.assign(headers, extra, { date: new Date().toUTCString(), 'content-length': String(body.length) });
  res.writeHead(status, response.statusDescription || undefined, headers);
  res.end(method === 'HEAD' ? undefined : body);
  return method === 'HEAD' ? 0 : body.length;
}

/** CloudFront's own error page ([F503], [502]). */
function errorPage(res: ServerResponse, status: number, message: string, requestId: string, common: Record<string, string>, close: boolean, method: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">\n' +
      '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n' +
      '<TITLE>ERROR: The request could not be satisfied</TITLE>\n' +
      `</HEAD><BODY>\n<H1>${status} ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size="1px">\n${message}\n` +
      '<BR clear="all">\nIf you provide content to customers through CloudFront, you can find steps to troubleshoot and help prevent this error by reviewing the CloudFront documentation.\n' +
      `<BR clear="all">\n<HR noshade size="1px">\n<PRE>\nGenerated by cloudfront (CloudFront)\nRequest ID: ${requestId}\n</PRE>\n<ADDRESS>\n</ADDRESS>\n</BODY></HTML>`,
  );
  res.writeHead(status, {
    server: 'CloudFront',
    date: new Date().toUTCString(),
    'content-type': 'text/html',
    'content-length': String(body.length),
    'x-cache': 'Error from cloudfront',
    ...common,
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(method === 'HEAD' ? undefined : body);
}

/** Reads and drops what is left of a request body the origin never sees. */
function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}

/** Request ids in CloudFront's form (56 characters, base64url-like, ending in `==`). */
function cfRequestId(): string {
  return randomBytes(40).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return String(value);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
