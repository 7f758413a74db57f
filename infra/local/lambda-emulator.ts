/**
 * `BERTH_EMULATE_LAMBDA=1 npm start`: a front end that serves the *bundled* `api` handler the way
 * an API Gateway HTTP API with a Lambda proxy integration (payload format 2.0) does, limits
 * included, so that their effect on real clients can be seen and tested on this machine.
 *
 * What it reproduces, and where each behaviour comes from:
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | request body over the HTTP API payload quota (10 MB) | rejected by API Gateway, never reaches Lambda | `413`, `{"message":"Request Entity Too Large"}` |
 * | event JSON of 6 MiB or more (binary bodies are base64-encoded in it) | Lambda refuses the invocation (`RequestEntityTooLargeException`), API Gateway answers | `413`, `{"message":"Request Entity Too Large"}` |
 * | handler throws, or runs past the function timeout (29 s, serverless.yml) | function error, API Gateway answers | `500`, `{"message":"Internal Server Error"}` |
 * | response JSON over 6,291,556 bytes | `Function.ResponseSizeTooLarge`, API Gateway answers | `500`, `{"message":"Internal Server Error"}` |
 * | no answer within the integration timeout (30 s, cold start included) | API Gateway gives up | `503`, `{"message":"Service Unavailable"}` |
 * | first request, and any request while every warm environment is busy | cold start: a new execution environment imports the bundle | a fresh instance of the bundle is imported |
 * | responses | buffered whole (no streaming through the integration) | buffered whole |
 *
 * Sources (AWS documentation, AWS's own emulator, and measured reports):
 * - Quotas of HTTP APIs: payload size 10 MB, maximum integration timeout 30 seconds, "Total
 *   combined size of request line and header values 10240 bytes", none adjustable —
 *   https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
 * - HTTP APIs name the over-limit error "413 Request Entity Too Large" —
 *   https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-monitor.html
 * - AWS's Lambda test tool emulates API Gateway per API type (aws/aws-lambda-dotnet,
 *   Tools/LambdaTestTool-v2, PR #1990 "Add 6MB request and response size check",
 *   Extensions/InvokeResponseExtensions.cs and tests/…/LargePayloadTests.cs): for an HTTP API with
 *   payload 2.0 a Lambda `RequestEntityTooLargeException` becomes `413` with
 *   `{"message":"Request Entity Too Large"}` (`Content-Type: application/json`), while a REST API
 *   answers `{"message":"Request Too Long"}`; any function error becomes `500` with
 *   `{"message":"Internal Server Error"}` (REST: `502 {"message": "Internal server error"}`); HTTP
 *   API responses carry an `Apigw-Requestid` header.
 * - Measured on a REST API (for contrast; not what Berth deploys): `413` text/plain
 *   "HTTP content length exceeded 10485760 bytes." over 10 MB and `413 {"message": "Request Too
 *   Long"}` over Lambda's 6 MB — https://github.com/koki-develop/lgtm-generator/issues/10
 * - Measured on an HTTP API: the 30 s integration timeout answers `503`, `content-length: 33`,
 *   an `apigw-requestid` header and `{"message":"Service Unavailable"}` —
 *   https://github.com/cortexlabs/cortex/issues/1225; the same 503 while the function still runs —
 *   https://github.com/serverless/serverless/issues/11222, https://github.com/anomalyco/sst/issues/2232
 * - A Lambda response over the limit through an HTTP API (bref): `{"message":"Internal Server
 *   Error"}` — https://github.com/brefphp/bref/issues/1090; API Gateway's log for it says
 *   "Lambda Customer Function Error:Response payload size exceeded maximum allowed payload size
 *   (6291556 bytes)." — https://github.com/DataBiosphere/azul/issues/8192
 * - Exact Lambda limits, measured: requests "must be smaller than 6291456 bytes for the
 *   InvokeFunction operation", and the limit applies to the whole event JSON —
 *   https://zaccharles.medium.com/deep-dive-lambdas-request-payload-size-limit-2-2-6350c1ae5577;
 *   responses may use 6,291,556 bytes of JSON —
 *   https://zaccharles.medium.com/deep-dive-lambdas-response-payload-size-limit-8aedba9530ed
 * - Payload 2.0 event shape (lower-case headers, duplicates joined with commas, cookies apart,
 *   rawPath / rawQueryString, requestContext.http) —
 *   https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 *
 * Inferred, not measured (no public report was found): the body an HTTP API answers for a request
 * over its own 10 MB quota. The HTTP API family answers every gateway error as
 * `{"message":"<reason phrase>"}` JSON (above) and its documentation calls this one "413 Request
 * Entity Too Large", so that is what is sent. A client cannot tell it from the 6 MB answer, which
 * a Berth push meets first anyway. Whether AWS reads the rest of an over-limit body or resets the
 * connection is not documented either: here the rest is read and dropped, so the client always
 * receives the answer.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';

/** A Lambda handler for HTTP API events (what `dist/api/index.mjs` exports as `handler`). */
export type LambdaHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2 | string | object>;

/** Imports a fresh instance of the function's code (one per execution environment). */
export type HandlerLoader = (instance: number) => Promise<LambdaHandler>;

export interface EmulatorLimits {
  /** HTTP API payload quota: request bodies over this never reach Lambda. */
  httpApiPayloadBytes: number;
  /** Lambda's synchronous invocation limit: the event JSON must be smaller than this. */
  lambdaRequestBytes: number;
  /** Lambda's synchronous response limit: the result JSON may be at most this long. */
  lambdaResponseBytes: number;
  /** API Gateway's integration timeout, cold start included. */
  integrationTimeoutMs: number;
  /** The function's own timeout (serverless.yml `timeout`). */
  functionTimeoutMs: number;
}

const MiB = 1024 * 1024;

/** The limits of the deployed stack (serverless.yml: api function timeout 29 s). */
export const AWS_LIMITS: EmulatorLimits = {
  httpApiPayloadBytes: 10 * MiB,
  lambdaRequestBytes: 6 * MiB,
  lambdaResponseBytes: 6 * MiB + 100,
  integrationTimeoutMs: 30_000,
  functionTimeoutMs: 29_000,
};

/**
 * Room kept in the 6 MiB event for everything but the base64 body. HTTP APIs cap the request
 * line plus header values at 10,240 bytes; in a payload 2.0 event the path appears up to three
 * times (rawPath, requestContext.http.path, pathParameters.proxy), the query twice, the
 * user agent twice and every other header once, and JSON escaping can at most double a string:
 * 2 × 3 × 10,240 = 61,440 bytes, plus ~1.2 KB of fixed fields (requestContext), fits in 64 KiB.
 */
export const EVENT_ENVELOPE_BYTES = 64 * 1024;

/**
 * The largest chunk (raw bytes) one request can carry to the function: its base64 encoding (4
 * characters per 3 bytes) plus {@link EVENT_ENVELOPE_BYTES} stays smaller than Lambda's limit.
 * With AWS's limits: ⌊(6,291,456 − 1 − 65,536) / 4⌋ × 3 = 4,669,437 bytes (≈ 4.45 MiB), whose
 * base64 is 6,225,916 characters. Advertised as `OCI-Chunk-Max-Length` (`BERTH_MAX_CHUNK`).
 */
export function maxChunkBytes(limits: EmulatorLimits = AWS_LIMITS): number {
  return Math.floor((limits.lambdaRequestBytes - 1 - EVENT_ENVELOPE_BYTES) / 4) * 3;
}

/** The routes serverless.yml gives the HTTP API (the emulator fills `routeKey` from them). */
export const HTTP_API_ROUTES = ['GET /v2', 'GET /token', 'POST /token', 'GET /v1/_ping', 'GET /v1/search', 'ANY /v2/{proxy+}', '$default'] as const;

export interface EmulatorOptions {
  loadHandler: HandlerLoader;
  limits?: Partial<EmulatorLimits>;
  /** One line per request (stdout by default). */
  log?: (line: string) => void;
  /** `x-forwarded-proto` handed to the function (AWS: https; locally the emulator speaks http). */
  forwardedProto?: string;
}

/** A canned API Gateway answer. */
interface GatewayAnswer {
  status: number;
  message: string;
}

const REQUEST_TOO_LARGE: GatewayAnswer = { status: 413, message: 'Request Entity Too Large' };
const INTERNAL_ERROR: GatewayAnswer = { status: 500, message: 'Internal Server Error' };
const UNAVAILABLE: GatewayAnswer = { status: 503, message: 'Service Unavailable' };

/** One execution environment: an imported instance of the code, used by one invocation at a time. */
interface Environment {
  id: number;
  handler: LambdaHandler;
  busy: boolean;
}

/** The emulated HTTP API: call `listen` on the server it returns. */
export function createLambdaEmulator(options: EmulatorOptions): Server & { environments(): number } {
  const limits = { ...AWS_LIMITS, ...options.limits };
  const log = options.log ?? console.log;
  const pool: Environment[] = [];
  let instances = 0;

  /** A warm idle environment, or a new one (a cold start: the code is imported afresh). */
  async function acquire(): Promise<{ env: Environment; coldStartMs?: number }> {
    const idle = pool.find((e) => !e.busy);
    if (idle) {
      idle.busy = true;
      return { env: idle };
    }
    const started = performance.now();
    const id = ++instances;
    const handler = await options.loadHandler(id);
    const env = { id, handler, busy: true };
    pool.push(env);
    return { env, coldStartMs: performance.now() - started };
  }

  function discard(env: Environment): void {
    const i = pool.indexOf(env);
    if (i >= 0) pool.splice(i, 1);
  }

  const server = createServer((req, res) => void serve(req, res));
  // The integration timeout bounds every request; the socket may take longer to send a body.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = apigwRequestId();
    const awsRequestId = randomUUID();
    const path = (req.url ?? '/').split('?')[0];
    const note = (status: number, detail: string, bytesIn: number, bytesOut: number) =>
      log(`${req.method} ${path} ${status} ${(performance.now() - started).toFixed(1)}ms in=${bytesIn} out=${bytesOut}${detail ? ` [${detail}]` : ''}`);

    const body = await readBody(req, limits.httpApiPayloadBytes);
    if (body.tooLarge) {
      const out = answer(res, REQUEST_TOO_LARGE, requestId);
      note(413, `API Gateway: body of ${body.size} bytes over the HTTP API payload quota of ${limits.httpApiPayloadBytes}`, body.size, out);
      return;
    }

    const event = toEvent(req, body.bytes, requestId, options.forwardedProto ?? 'http');
    const eventBytes = Buffer.byteLength(JSON.stringify(event));
    if (eventBytes >= limits.lambdaRequestBytes) {
      const out = answer(res, REQUEST_TOO_LARGE, requestId);
      note(413, `Lambda: event of ${eventBytes} bytes, must be smaller than ${limits.lambdaRequestBytes}`, body.size, out);
      return;
    }

    const outcome = await invoke(event, awsRequestId);
    if ('gateway' in outcome) {
      const out = answer(res, outcome.gateway, requestId);
      note(outcome.gateway.status, [outcome.cold, outcome.detail].filter(Boolean).join('; '), body.size, out);
      return;
    }
    const out = send(res, req.method ?? 'GET', outcome.result, requestId);
    if (out < 0) {
      const sent = answer(res, INTERNAL_ERROR, requestId);
      note(500, 'API Gateway: malformed Lambda result', body.size, sent);
      return;
    }
    note(res.statusCode, outcome.cold ?? '', body.size, out);
  }

  type Outcome =
    | { result: unknown; cold?: string }
    | { gateway: GatewayAnswer; cold?: string; detail: string };

  /** Runs one invocation under the function timeout and the integration timeout. */
  async function invoke(event: APIGatewayProxyEventV2, requestId: string): Promise<Outcome> {
    let cold: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const integrationTimeout = new Promise<'integration-timeout'>((resolve) => {
      timer = setTimeout(() => resolve('integration-timeout'), limits.integrationTimeoutMs);
    });
    try {
      const run = (async (): Promise<Outcome> => {
        let acquired: { env: Environment; coldStartMs?: number };
        try {
          acquired = await acquire();
        } catch (error) {
          return { gateway: INTERNAL_ERROR, detail: `Lambda: init failed: ${describe(error)}` };
        }
        const { env } = acquired;
        if (acquired.coldStartMs !== undefined) cold = `cold start ${acquired.coldStartMs.toFixed(0)}ms (environment ${env.id})`;
        const functionDeadline = Date.now() + limits.functionTimeoutMs;
        const context = lambdaContext(requestId, functionDeadline);
        let functionTimer: NodeJS.Timeout | undefined;
        const functionTimeout = new Promise<'function-timeout'>((resolve) => {
          functionTimer = setTimeout(() => resolve('function-timeout'), limits.functionTimeoutMs);
        });
        try {
          const result = await Promise.race([env.handler(event, context), functionTimeout]);
          if (result === 'function-timeout') {
            // Lambda stops the runtime after a timeout: this environment is not used again.
            discard(env);
            return { gateway: INTERNAL_ERROR, cold, detail: `Lambda: Task timed out after ${(limits.functionTimeoutMs / 1000).toFixed(2)} seconds` };
          }
          env.busy = false;
          const size = Buffer.byteLength(JSON.stringify(result ?? null));
          if (size > limits.lambdaResponseBytes) {
            return { gateway: INTERNAL_ERROR, cold, detail: `Lambda: Response payload size exceeded maximum allowed payload size (${limits.lambdaResponseBytes} bytes): ${size}` };
          }
          return { result, cold };
        } catch (error) {
          env.busy = false;
          return { gateway: INTERNAL_ERROR, cold, detail: `Lambda: function error: ${describe(error)}` };
        } finally {
          clearTimeout(functionTimer);
        }
      })();
      const first = await Promise.race([run, integrationTimeout]);
      if (first === 'integration-timeout') {
        // The invocation goes on (its environment stays busy until it ends); the client is answered now.
        void run.catch(() => undefined);
        return { gateway: UNAVAILABLE, cold, detail: `API Gateway: no answer within the ${limits.integrationTimeoutMs} ms integration timeout` };
      }
      return first;
    } finally {
      clearTimeout(timer);
    }
  }

  return Object.assign(server, { environments: () => pool.length });
}

/** Reads the whole body (API Gateway buffers it); past `limit` bytes the rest is read and dropped. */
async function readBody(req: IncomingMessage, limit: number): Promise<{ bytes: Buffer; size: number; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
    else chunks.length = 0;
  }
  return { bytes: size <= limit ? Buffer.concat(chunks) : Buffer.alloc(0), size, tooLarge: size > limit };
}

/** Content types API Gateway passes as text; every other body is base64-encoded in the event. */
function isText(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0].trim().toLowerCase();
  return type.startsWith('text/') || type === 'application/json' || type.endsWith('+json') || type === 'application/x-www-form-urlencoded' || type === 'application/xml' || type.endsWith('+xml') || type === 'application/javascript';
}

/** The payload format 2.0 event API Gateway would send for this request. */
function toEvent(req: IncomingMessage, body: Buffer, requestId: string, proto: string): APIGatewayProxyEventV2 {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQueryString = q < 0 ? '' : url.slice(q + 1);
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  // Duplicate headers are joined with commas, names are lower case, cookies go apart.
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    if (name === 'cookie') {
      cookies = [...(cookies ?? []), ...value.split(';').map((c) => c.trim()).filter(Boolean)];
      continue;
    }
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  const socket = req.socket;
  headers['x-forwarded-for'] = socket.remoteAddress ?? '127.0.0.1';
  headers['x-forwarded-port'] = String(socket.localPort ?? 0);
  headers['x-forwarded-proto'] = proto;
  headers['x-amzn-trace-id'] = `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')}`;
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(rawQueryString)) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const method = (req.method ?? 'GET').toUpperCase();
  const routeKey = matchRoute(method, rawPath);
  const text = body.length > 0 && isText(headers['content-type']) && isUtf8(body);
  const now = new Date();
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString,
    ...(cookies ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    ...(routeKey === 'ANY /v2/{proxy+}' ? { pathParameters: { proxy: decodeURIComponentSafe(rawPath.slice('/v2/'.length)) } } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'emulated',
      domainName: headers.host ?? 'localhost',
      domainPrefix: (headers.host ?? 'localhost').split('.')[0],
      http: { method, path: rawPath, protocol: `HTTP/${req.httpVersion}`, sourceIp: socket.remoteAddress ?? '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
      requestId,
      routeKey,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: text ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !text,
  } as APIGatewayProxyEventV2;
}

function matchRoute(method: string, path: string): string {
  for (const route of HTTP_API_ROUTES) {
    if (route === '$default') return route;
    const [m, p] = route.split(' ');
    if (m !== 'ANY' && m !== method) continue;
    if (p.endsWith('{proxy+}') ? path.startsWith(p.slice(0, -'{proxy+}'.length)) && path.length > p.length - '{proxy+}'.length : path === p) return route;
  }
  return '$default';
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function lambdaContext(awsRequestId: string, deadline: number): Context {
  const fail = () => {
    throw new Error('callback-style completion is not supported by the emulator');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'berth-local-api',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:berth-local-api',
    memoryLimitInMB: '1024',
    awsRequestId,
    logGroupName: '/aws/lambda/berth-local-api',
    logStreamName: 'emulated',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: fail,
    fail,
    succeed: fail,
  };
}

/** An API Gateway answer of its own: JSON `{"message": …}`, as HTTP APIs send them. */
function answer(res: ServerResponse, { status, message }: GatewayAnswer, requestId: string): number {
  const body = Buffer.from(JSON.stringify({ message }));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(body.length), 'Apigw-Requestid': requestId });
  res.end(body);
  return body.length;
}

/**
 * The function's result as HTTP: a structured result (with `statusCode`) gives status, headers,
 * cookies and body (base64-decoded when flagged); anything else is a 200 JSON body, as payload
 * 2.0 defines. Returns the bytes sent, or -1 for a result API Gateway would reject.
 */
function send(res: ServerResponse, method: string, result: unknown, requestId: string): number {
  let status = 200;
  let headers: Record<string, string | number | boolean> = {};
  let cookies: string[] = [];
  let body: Buffer;
  if (typeof result === 'object' && result !== null && 'statusCode' in result) {
    const r = result as APIGatewayProxyStructuredResultV2;
    if (!Number.isInteger(r.statusCode) || r.statusCode! < 100 || r.statusCode! > 599) return -1;
    status = r.statusCode!;
    headers = r.headers ?? {};
    cookies = r.cookies ?? [];
    body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body, r.isBase64Encoded ? 'base64' : 'utf8');
  } else {
    body = Buffer.from(typeof result === 'string' ? result : JSON.stringify(result));
    headers = { 'content-type': 'application/json' };
  }
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = String(value);
  // API Gateway frames the buffered body itself; a HEAD answer keeps the length the function gave.
  if (method !== 'HEAD' || out['content-length'] === undefined) out['content-length'] = String(body.length);
  delete out['transfer-encoding'];
  delete out.connection;
  if (cookies.length > 0) out['set-cookie'] = cookies;
  out['apigw-requestid'] = requestId;
  res.writeHead(status, out);
  res.end(method === 'HEAD' ? undefined : body);
  return method === 'HEAD' ? 0 : body.length;
}

/** Request ids in the form HTTP APIs use (e.g. `RL2XYiwjPHcEMEQ=`). */
function apigwRequestId(): string {
  return `${randomBytes(10).toString('base64').replace(/[+/]/g, 'A').slice(0, 14)}=`;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Where `npm run build` puts the `api` function (infra/build.mjs). */
export const API_BUNDLE = fileURLToPath(new URL('../../dist/api/index.mjs', import.meta.url));

/** Where `npm run build` puts the `verify` function. */
export const VERIFY_BUNDLE = fileURLToPath(new URL('../../dist/verify/index.mjs', import.meta.url));

/**
 * Asynchronous invocation (`InvocationType: Event`, and S3 event notifications): the caller does
 * not wait; the function runs in one execution environment of its own, under its timeout (the
 * `verify` function: 900 s, serverless.yml). AWS retries a failed asynchronous invocation twice,
 * after about one and two minutes
 * (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html); here a failure
 * is logged and not retried.
 */
export function asyncInvoker(loadHandler: HandlerLoader, timeoutMs = 900_000, log: (line: string) => void = console.log): (event: unknown) => void {
  let environment: Promise<LambdaHandler> | undefined;
  return (event) => {
    environment ??= loadHandler(1);
    const deadline = Date.now() + timeoutMs;
    void environment
      .then((handler) => handler(event as APIGatewayProxyEventV2, lambdaContext(randomUUID(), deadline)))
      .catch((error: unknown) => log(`Lambda (asynchronous invocation): function error: ${describe(error)}`));
  };
}

/**
 * Builds the bundle (`node infra/build.mjs`) when it is missing or older than the newest source
 * under functions/, so that the emulator never serves stale code by surprise.
 */
export function ensureBundle(bundle = API_BUNDLE, log: (line: string) => void = console.log): void {
  const root = resolve(dirname(bundle), '../..');
  const built = existsSync(bundle) ? statSync(bundle).mtimeMs : 0;
  const newest = newestMtime(join(root, 'functions'));
  if (built >= newest) return;
  log(`berth: ${built === 0 ? 'building' : 'rebuilding'} the Lambda bundle (npm run build)`);
  execFileSync(process.execPath, [join(root, 'infra/build.mjs')], { cwd: root, stdio: 'inherit' });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Each execution environment imports its own instance of the bundle (a distinct module URL), so
 * module-level state (configuration, clients, caches) starts cold, as in a new Lambda environment.
 * The chunks it imports (dist/api/chunks, infra/build.mjs) are one instance for all environments,
 * as Node keeps one module per URL: they hold the SDK's and the libraries' code and Berth's
 * stateless modules (classes, functions, constants); the clients and caches live in the entry's.
 */
export function bundleLoader(bundle = API_BUNDLE): HandlerLoader {
  return async (instance) => {
    const module = (await import(`${pathToFileURL(bundle).href}?environment=${instance}`)) as { handler: LambdaHandler };
    return module.handler;
  };
}
