/**
 * The registry's front door on this machine: an emulated Amazon CloudFront distribution that runs
 * THE SAME CloudFront Function source that is deployed (infra/aws/frontdoor/function.js, runtime
 * cloudfront-js-2.0) on viewer request and viewer response, in front of two origins with the ids
 * of the deployed distribution: `api` (a custom origin: API Gateway there, the Lambda emulator or
 * the registry here) and `blobs` (the S3 bucket, reached through Origin Access Control, i.e. with
 * SigV4-signed requests). Request and response bodies are streamed both ways, never buffered.
 *
 * One file per concern, each with its table of behaviours and sources:
 * - cloudfront-functions.ts: the CloudFront Functions runtime (sandbox, cloudfront module,
 *   KeyValueStore, failures, size and time limits), usable on its own: `loadFunction`;
 * - cloudfront-events.ts: the event a function sees, what it may return, the origin request headers;
 * - cloudfront-s3-origin.ts: the `blobs` origin through Origin Access Control, S3 event notifications;
 * - cloudfront-responses.ts: responses to the viewer (origin, function-generated, error pages);
 * - this file: the distribution itself, below.
 *
 * What it reproduces, and where each behaviour comes from ([inf] marks what is inferred rather
 * than documented):
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | URL (`https://` + host + path + query) over 8,192 bytes, or request line + headers over 20,480 bytes [Q][RC] | `413`, then CloudFront closes the connection | `413` error page, `Connection: close` |
 * | method other than DELETE GET HEAD OPTIONS PATCH POST PUT (all methods allowed) [RC] | `403` [M] | `403` error page |
 * | GET with a body [RC] | `403` | `403` error page |
 * | viewer-request function: request returned [E] | sent to the origin the function selected, else the default behaviour's (`api`) | same |
 * | viewer-request function: response returned [E] | the origin is not contacted | same; viewer response does not run for it [inf] |
 * | function fails (execution error, validation error) [503][MET] | `503` / `502` error page | same |
 * | origin answers `400` or more [R][E] | viewer-response function not run | same |
 * | origin cannot be reached [502] | `502` | `502` error page |
 * | origin response timeout: no answer, or no next packet, within 30 s (default for custom and S3 origins; not retried for PUT/POST) [RC][S3O][TO] | `504` | `504` error page if no status line yet, else the viewer connection is cut |
 * | size of a PUT body | no limit documented today (older quota pages: "Maximum file size for HTTP GET, POST, and PUT requests" 20 GB, later a 30 GB *cacheable* size [OLD]); S3 itself takes at most 5 GB in one PUT | not limited here [inf]; S3's limit is the S3 emulator's business |
 * | S3 event notification on `ObjectCreated:*` for prefix `incoming/` [S3E] | asynchronous | `onObjectCreated(record)` after S3 answers 2xx to a PUT under `incoming/` to `blobs` |
 * | origin custom headers of the `api` origin [OCH] | added to every request to that origin, overwriting a viewer header of the same name | same |
 * | function-generated response after a body was sent | not documented | the rest of the request body is read and dropped [inf] |
 *
 * Sources (AWS documentation unless said otherwise; the archived copy of the developer guide,
 * github.com/awsdocs/amazon-cloudfront-developer-guide, was read where the live page was not):
 * - [E] Event structure, viewer response not run for origin errors —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
 * - [R] Restrictions on all edge functions (status codes) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html
 * - [Q] Quotas: request (headers and query, no body) 20,480 bytes, URL 8,192 bytes —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html
 * - [RC] Request and response behavior for custom origins (413 and closing the connection, GET with body
 *   → 403, methods, origin response timeout, HTTP/1.1 to origins) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html
 * - [S3O] Same for S3 origins (30 s response timeout, OAC for uploads) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorS3Origin.html
 * - [TO] S3OriginConfig.OriginReadTimeout: 1–120 s, default 30 s — https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_S3OriginConfig.html
 * - [M] HTTP 403 (invalid method) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-403-invalid-method.html
 * - [503] HTTP 503: "If you are using Lambda@Edge or CloudFront Functions, the issue might be an execution
 *   error" — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-503-service-unavailable.html
 * - [MET] FunctionValidationErrors and FunctionExecutionErrors —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/viewing-cloudfront-metrics.html
 * - [502] HTTP 502 — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-502-bad-gateway.html;
 *   504 — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-504-gateway-timeout.html
 * - [OLD] Earlier quota tables (archived developer guide, cloudfront-limits.md history).
 * - [OCH] Add custom headers to origin requests ("If the viewer request includes a header with the
 *   same name … CloudFront overwrites the header value") —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/add-origin-custom-headers.html
 * - [S3E] S3 event notifications — https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 *
 * Not emulated: caching (the behaviours Berth uses have caching disabled or serve immutable blobs),
 * compression, custom error pages, TLS, HTTP/2 to the viewer, CloudFront-* viewer headers, origin
 * connection attempts/timeouts (a refused connection is a 502 at once).
 */
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { S3EventRecord } from 'aws-lambda';
import { capitalise, checkHeaders, forwardedHeaders, toForwarded, toViewerRequest, type ForwardedRequest } from './cloudfront-events.js';
import {
  FUNCTION_LIMITS,
  FunctionFailure,
  describeError,
  loadFunction,
  type CfEvent,
  type CfEventType,
  type CfRequest,
  type CfResponse,
  type FunctionLimits,
  type FunctionRun,
  type LoadedFunction,
} from './cloudfront-functions.js';
import { MESSAGES, checkStatus, errorPage, generatedBody, isResponse, sendGenerated, toCfResponseHeaders, viewerHeaders } from './cloudfront-responses.js';
import { S3Origin, objectCreatedRecord, type S3OriginOptions } from './cloudfront-s3-origin.js';

export type { S3OriginOptions } from './cloudfront-s3-origin.js';

/** The distribution's origins, by the ids of the deployed one. `api` is the default behaviour's. */
export interface CloudFrontOrigins {
  /** Custom origin, e.g. `http://127.0.0.1:5001`: receives its own Host, as API Gateway does. */
  api: string;
  /** The `api` origin's custom headers (OriginCustomHeaders), by lower-case name. */
  apiHeaders?: Record<string, string>;
  blobs: S3OriginOptions;
}

export interface CloudFrontLimits extends FunctionLimits {
  /** Quota "Maximum length of a URL" (bytes of `https://` + host + path + query). */
  maxUrlBytes: number;
  /** Quota "Maximum length of a request … including headers and query strings, but not … the body". */
  maxRequestBytes: number;
  /** Origin response timeout (default 30 s for custom and S3 origins). */
  originResponseTimeoutMs: number;
}

export const CLOUDFRONT_LIMITS: CloudFrontLimits = {
  maxUrlBytes: 8192,
  maxRequestBytes: 20_480,
  ...FUNCTION_LIMITS,
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

type OriginId = 'api' | 'blobs';

const ALLOWED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);

/** What every request of one distribution shares. */
interface Distribution {
  options: CloudFrontEmulatorOptions;
  limits: CloudFrontLimits;
  log: (line: string) => void;
  context: { distributionDomainName: string; distributionId: string };
  /** `<id>.cloudfront.net (CloudFront)`, as in `Via`. */
  edgeHost: string;
  fn: LoadedFunction;
  blobs: S3Origin;
  api: URL;
  apiAgent: Agent;
  /** The next S3 event sequencer. */
  sequence(): bigint;
}

/** The emulated distribution: call `listen` on the server it returns. */
export function createCloudFrontEmulator(options: CloudFrontEmulatorOptions): Server {
  const d = distributionFor(options);
  // Room for requests over CloudFront's quotas, so that they get CloudFront's answer, not Node's 431.
  const server = createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
    new Exchange(d, req, res).serve().catch((error: unknown) => {
      d.log(`${req.method} ${req.url} emulator error: ${describeError(error)}`);
      if (res.headersSent) res.destroy();
      else errorPage(res, 502, MESSAGES.originUnreachable, cfRequestId(), {}, true, req.method ?? 'GET');
    });
  });
  // The origin response timeout bounds waiting; a large body may take long to arrive.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.on('close', () => {
    d.apiAgent.destroy();
    d.blobs.close();
    d.fn.close();
  });
  return server;
}

function distributionFor(options: CloudFrontEmulatorOptions): Distribution {
  const limits = { ...CLOUDFRONT_LIMITS, ...options.limits };
  const log = options.log ?? console.log;
  const api = new URL(options.origins.api);
  let sequence = BigInt(Date.now()) * 1000n;
  return {
    options,
    limits,
    log,
    context: { distributionDomainName: options.distributionDomainName ?? 'd111111abcdef8.cloudfront.net', distributionId: options.distributionId ?? 'EDFDVBD6EXAMPLE' },
    edgeHost: `${randomBytes(16).toString('hex')}.cloudfront.net (CloudFront)`,
    fn: loadFunction({ functionFile: options.functionFile, kvsFile: options.kvsFile, limits, log, origins: ['api', 'blobs'] }),
    blobs: new S3Origin(options.origins.blobs),
    api,
    apiAgent: api.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true }),
    sequence: () => (sequence += 1n),
  };
}

/** Why CloudFront refuses a request before any function runs ([Q], [RC], [M]). */
interface Refusal {
  status: number;
  detail: string;
  close?: boolean;
}

function refusal(req: IncomingMessage, method: string, rawUrl: string, limits: CloudFrontLimits): Refusal | undefined {
  const urlBytes = Buffer.byteLength(`https://${req.headers.host ?? ''}${rawUrl}`);
  if (urlBytes > limits.maxUrlBytes) return { status: 413, detail: `URL of ${urlBytes} bytes over ${limits.maxUrlBytes}`, close: true };
  let requestBytes = Buffer.byteLength(`${method} ${rawUrl} HTTP/${req.httpVersion}\r\n`);
  for (let i = 0; i < req.rawHeaders.length; i += 2) requestBytes += Buffer.byteLength(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`);
  if (requestBytes > limits.maxRequestBytes) return { status: 413, detail: `request line and headers of ${requestBytes} bytes over ${limits.maxRequestBytes}`, close: true };
  if (!ALLOWED_METHODS.has(method)) return { status: 403, detail: `method ${method} not allowed` };
  if (method === 'GET' && (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined)) return { status: 403, detail: 'GET with a body' };
  return undefined;
}

/** One viewer request through the distribution, and its log line. */
class Exchange {
  private readonly started = performance.now();
  private readonly requestId = cfRequestId();
  private readonly method: string;
  private readonly rawUrl: string;
  private readonly viewerIp: string;
  private readonly common: Record<string, string>;
  private readonly detail: string[] = [];
  private bytesIn = 0;
  private counting = false;

  constructor(
    private readonly d: Distribution,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    this.method = (req.method ?? 'GET').toUpperCase();
    this.rawUrl = req.url ?? '/';
    this.viewerIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    this.common = { via: `1.1 ${d.edgeHost}`, 'x-amz-cf-pop': 'EMU50-C1', 'x-amz-cf-id': this.requestId };
  }

  async serve(): Promise<void> {
    const refused = refusal(this.req, this.method, this.rawUrl, this.d.limits);
    if (refused) return this.fail(refused.status, MESSAGES.badRequest, refused.detail, refused.close);
    const q = this.rawUrl.indexOf('?');
    const rawQuery = q < 0 ? '' : this.rawUrl.slice(q + 1);
    const viewer = toViewerRequest(this.method, q < 0 ? this.rawUrl : this.rawUrl.slice(0, q), rawQuery, this.req.rawHeaders);
    let run: FunctionRun;
    try {
      run = await this.d.fn.run(this.event('viewer-request', viewer));
    } catch (error) {
      return this.functionFailed(error, 'viewer-request');
    }
    this.detail.push(`viewer-request ${run.ms.toFixed(1)}ms`);
    if (isResponse(run.result)) return this.sendFunctionResponse(run.result);
    let forwarded: ForwardedRequest;
    try {
      forwarded = toForwarded(run.result, viewer, rawQuery, this.d.limits.maxUrlBytes);
    } catch (error) {
      return this.fail(502, MESSAGES.functionInvalid, `viewer-request function: ${describeError(error)}`);
    }
    const originId = (run.selectedOrigin ?? 'api') as OriginId;
    const { request, s3Key } = await this.originRequest(originId, forwarded);
    this.relay(originId, request, forwarded, s3Key);
  }

  private event(eventType: CfEventType, request: CfRequest, response?: CfResponse): CfEvent {
    const context = { ...this.d.context, requestId: this.requestId, eventType };
    return { version: '1.0', context, viewer: { ip: this.viewerIp }, request, ...(response ? { response } : {}) };
  }

  /** A viewer-request function's own response ([E]). */
  private sendFunctionResponse(response: CfResponse): void {
    let sent: number;
    try {
      sent = sendGenerated(this.res, this.method, response, { ...this.common, 'x-cache': 'FunctionGeneratedResponse from cloudfront', server: 'CloudFront' });
    } catch (error) {
      return this.fail(502, MESSAGES.functionInvalid, `viewer-request function: ${describeError(error)}`);
    }
    this.count();
    drain(this.req);
    this.note(this.res.statusCode, 'function', [...this.detail, `out=${sent}`]);
  }

  /** The request to the origin, its headers as the origin request policy makes them ([P], [OAC]). */
  private async originRequest(originId: OriginId, forwarded: ForwardedRequest): Promise<{ request: ClientRequest; s3Key?: string }> {
    const headers = forwardedHeaders(forwarded, this.viewerIp, this.requestId, this.d.edgeHost);
    if (originId === 'blobs') {
      const target = await this.d.blobs.prepare(this.method, forwarded.uri, forwarded.query, headers);
      return { request: target.request, s3Key: target.key };
    }
    const api = this.d.api;
    headers.Host = api.host;
    for (const [name, value] of Object.entries(this.d.options.origins.apiHeaders ?? {})) headers[capitalise(name)] = value;
    const send = api.protocol === 'https:' ? httpsRequest : httpRequest;
    const path = forwarded.uri + (forwarded.query ? `?${forwarded.query}` : '');
    return { request: send({ protocol: api.protocol, hostname: api.hostname, port: api.port || undefined, method: this.method, path, headers, agent: this.d.apiAgent }) };
  }

  /** Streams the viewer's body to the origin and the origin's answer back. */
  private relay(originId: OriginId, originReq: ClientRequest, forwarded: ForwardedRequest, s3Key: string | undefined): void {
    let answered = false;
    const timeoutMs = this.d.limits.originResponseTimeoutMs;
    originReq.setTimeout(timeoutMs, () => originReq.destroy(new Error(`origin response timeout (${timeoutMs} ms)`)));
    originReq.on('error', (error) => {
      if (answered) {
        this.res.destroy(error);
        this.note(this.res.statusCode, originId, [...this.detail, `origin failed mid-response: ${describeError(error)}`]);
        return;
      }
      answered = true;
      const timeout = /timeout/.test(error.message);
      this.fail(timeout ? 504 : 502, timeout ? MESSAGES.originTimeout : MESSAGES.originUnreachable, `origin ${originId}: ${describeError(error)}`);
    });
    this.req.on('aborted', () => originReq.destroy(new Error('viewer went away')));
    this.count();
    this.req.pipe(originReq);
    originReq.on('response', (originRes) => {
      answered = true;
      void this.answer(originId, originRes, forwarded, s3Key).catch((error) => {
        this.res.destroy(error as Error);
        this.note(this.res.statusCode, originId, [...this.detail, describeError(error)]);
      });
    });
  }

  private async answer(originId: OriginId, originRes: IncomingMessage, forwarded: ForwardedRequest, s3Key: string | undefined): Promise<void> {
    const status = originRes.statusCode ?? 502;
    const { headers, cookies } = toCfResponseHeaders(originRes.rawHeaders);
    let response: CfResponse = { statusCode: status, statusDescription: originRes.statusMessage ?? '', headers, cookies };
    let body: Buffer | undefined;
    if (status < 400) {
      const changed = await this.viewerResponse(forwarded.event, response, originRes);
      if (!changed) return;
      ({ response, body } = changed);
    } else {
      this.detail.push('viewer-response skipped: origin status >= 400');
    }
    const bytesOut = await this.write(response, body, originRes);
    this.note(response.statusCode, originId, [...this.detail, `out=${bytesOut}`]);
    if (originId === 'blobs' && this.method === 'PUT' && status >= 200 && status < 300 && s3Key?.startsWith('incoming/')) this.notifyCreated(s3Key, originRes);
  }

  /** Runs the viewer-response function ([E]); undefined when it failed and the viewer got an error page. */
  private async viewerResponse(request: CfRequest, response: CfResponse, originRes: IncomingMessage): Promise<{ response: CfResponse; body?: Buffer } | undefined> {
    try {
      const run = await this.d.fn.run(this.event('viewer-response', request, structuredClone(response)));
      this.detail.push(`viewer-response ${run.ms.toFixed(1)}ms`);
      if (!isResponse(run.result)) throw new FunctionFailure(502, 'the viewer-response function must return a response object');
      checkStatus(run.result);
      checkHeaders(run.result.headers ?? {}, response.headers ?? {}, 'viewer-response');
      return { response: run.result, body: generatedBody(run.result.body) };
    } catch (error) {
      originRes.resume();
      this.functionFailed(error, 'viewer-response');
      return undefined;
    }
  }

  /** Sends the response to the viewer: the body a function set, or the origin's streamed. Returns the bytes sent. */
  private async write(response: CfResponse, body: Buffer | undefined, originRes: IncomingMessage): Promise<number> {
    const out = viewerHeaders(response);
    Object.assign(out, this.common, { 'x-cache': 'Miss from cloudfront' });
    if (body !== undefined) {
      out['content-length'] = String(body.length);
      originRes.resume();
    }
    this.res.writeHead(response.statusCode, response.statusDescription || undefined, out);
    if (body !== undefined) {
      this.res.end(this.method === 'HEAD' ? undefined : body);
      return this.method === 'HEAD' ? 0 : body.length;
    }
    let bytesOut = 0;
    originRes.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
    originRes.pipe(this.res);
    await new Promise<void>((resolve, reject) => {
      originRes.once('end', resolve);
      originRes.once('error', reject);
      originRes.once('aborted', () => reject(new Error('origin response cut short')));
    });
    return bytesOut;
  }

  /** S3's `ObjectCreated:*` notification for an object stored under `incoming/` ([S3E]), asynchronous. */
  private notifyCreated(s3Key: string, originRes: IncomingMessage): void {
    const onObjectCreated = this.d.options.onObjectCreated;
    if (!onObjectCreated) return;
    const record = objectCreatedRecord(this.d.blobs.settings, s3Key, this.bytesIn, originRes, this.d.sequence());
    setImmediate(() => {
      Promise.resolve()
        .then(() => onObjectCreated(record))
        .catch((error) => this.d.log(`s3 notification for ${s3Key}: ${describeError(error)}`));
    });
  }

  private functionFailed(error: unknown, eventType: CfEventType): void {
    const failure = error instanceof FunctionFailure ? error : new FunctionFailure(503, describeError(error));
    this.fail(failure.status, failure.status === 503 ? MESSAGES.functionFailed : MESSAGES.functionInvalid, `${eventType} function: ${failure.message}`);
  }

  /** CloudFront's error page; the request body is read and dropped. */
  private fail(status: number, message: string, detail: string, close = false): void {
    errorPage(this.res, status, message, this.requestId, this.common, close, this.method);
    this.count();
    drain(this.req);
    this.note(status, 'cloudfront', [detail]);
  }

  /** Counts the body bytes from the moment the body is read (piped or dropped): a 'data' listener starts the flow. */
  private count(): void {
    if (this.counting) return;
    this.counting = true;
    this.req.on('data', (chunk: Buffer) => (this.bytesIn += chunk.length));
  }

  private note(status: number, origin: string, detail: string[]): void {
    const ms = (performance.now() - this.started).toFixed(1);
    this.d.log(`${this.method} ${this.rawUrl.split('?')[0]} ${status} ${ms}ms in=${this.bytesIn} origin=${origin}${detail.length > 0 ? ` [${detail.join('; ')}]` : ''}`);
  }
}

/** Reads and drops what is left of a request body the origin never sees. */
function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}

/** Request ids in CloudFront's form (56 characters, base64url-like, ending in `==`). */
function cfRequestId(): string {
  return randomBytes(40).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}
