/**
 * The CloudFront Functions runtime (cloudfront-js-2.0) on this machine, usable without a server:
 * `loadFunction({ functionFile, kvsFile | kvs })` gives `run(event)`, which runs the function's
 * `handler` on an event and resolves to what it returned plus the origin it selected. The emulated
 * distribution (cloudfront-emulator.ts) runs the deployed function through it; unit tests run
 * infra/aws/frontdoor/function.js through it directly.
 *
 * What it reproduces, and where each behaviour comes from (sources below; [inf] marks what is
 * inferred rather than documented):
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | function throws, exceeds its time, or cannot be compiled [503] | `503` ("The CloudFront function associated with the CloudFront distribution is invalid or could not run.") [F503] | `run` rejects with {@link FunctionFailure} `503`; the time cap is a wall-clock cap ({@link FunctionLimits.functionTimeoutMs}, 2 s; the worker thread running an overrun is terminated): AWS publishes no figure in milliseconds, only "compute utilization" [R] |
 * | function returns nothing, or no object [R][MET] | `502` (validation error) | {@link FunctionFailure} `502`; the distribution validates the rest (cloudfront-events.ts) |
 * | function code over 10 KB [Q] | cannot be published | every run rejects with `503`, saying why |
 * | runtime [RT][RT2] | ES 5.1 + parts of ES 6–12, `async`/`await`; `Buffer`; `require('crypto')` with `createHash`/`createHmac` (md5, sha1, sha256; digest `hex`, `base64`, `base64url`, or a `Buffer` without encoding in 2.0); `require('querystring')`; `console.log`; no dynamic code evaluation, network, file system or timers | a fresh `vm` context per run, in a worker thread, with those globals only; `eval`/`new Function` refused; no `process`, `setTimeout`, `fetch`, `require` of other modules; memory is not capped at 2 MB |
 * | `import cf from 'cloudfront'` (first line) [KVS][OM] | the CloudFront module: `cf.kvs([id])` → `get(key, {format:'string'\|'json'\|'bytes'})` (rejects for a missing key), `exists(key)`, `meta()`; `cf.selectRequestOriginById(id)`, `cf.updateRequestOrigin(…)`, `cf.createRequestOriginGroup(…)` | the `import` line (and `import x from 'crypto'`/`'querystring'` [inf: allowed]) becomes `var cf = __require('cloudfront');` on the same line, before the code is compiled ({@link toScript}); `selectRequestOriginById` works for the distribution's origin ids (`api`, `blobs`) on viewer request, an unknown id, `updateRequestOrigin` and `createRequestOriginGroup` throw (→ `503`) |
 * | KeyValueStore contents [KVS][KVI] | imported from `{"data":[{"key","value"}]}` | read from `kvsFile`, re-read when it changes, or given inline (`kvs`) |
 * | function `console.log` [RT] | in CloudWatch Logs, truncated at 10 KB per run | passed to `log`, 10 KB per run |
 *
 * Sources (AWS documentation; the archived developer guide, github.com/awsdocs/amazon-cloudfront-developer-guide,
 * where the live page was not read):
 * - [R] Restrictions on CloudFront Functions (no body access, no network/file system/timers, compute
 *   utilization) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-function-restrictions.html
 * - [Q] Quotas: maximum function size 10 KB, function memory 2 MB —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html
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
 * - [503] HTTP 503: "If you are using Lambda@Edge or CloudFront Functions, the issue might be an execution
 *   error" — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-503-service-unavailable.html;
 *   [F503] the page's text, measured — https://github.com/cdklabs/construct-hub/pull/402
 * - [MET] FunctionValidationErrors ("the function runs successfully but returns invalid data") and
 *   FunctionExecutionErrors — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/viewing-cloudfront-metrics.html
 */
import { readFileSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/** `{ name: { value, multiValue? } }`, the shape of query strings, headers and cookies in events. */
export interface CfEntry {
  value: string;
  multiValue?: { value: string; attributes?: string }[];
  attributes?: string;
}
export type CfValues = Record<string, CfEntry>;

export interface CfRequest {
  method: string;
  uri: string;
  querystring: CfValues | string;
  headers: CfValues;
  cookies: CfValues;
}

export interface CfResponse {
  statusCode: number;
  statusDescription?: string;
  headers?: CfValues;
  cookies?: CfValues;
  body?: string | { encoding?: string; data?: string };
}

export type CfEventType = 'viewer-request' | 'viewer-response';

/** The event a function receives (`response` on viewer response only). */
export interface CfEvent {
  version: '1.0';
  context: { eventType: CfEventType; distributionDomainName?: string; distributionId?: string; requestId?: string };
  viewer: { ip: string };
  request: CfRequest;
  response?: CfResponse;
}

export interface FunctionLimits {
  /** Quota "Maximum function size". */
  maxFunctionBytes: number;
  /** Wall-clock cap on one function run (AWS caps compute, unpublished in ms). */
  functionTimeoutMs: number;
}

export const FUNCTION_LIMITS: FunctionLimits = {
  maxFunctionBytes: 10 * 1024,
  // Generous on purpose: AWS's budget is about a millisecond of compute, but the wall clock here
  // includes waiting for a CPU while tests, S3, the registry and clients share two of them (100 ms
  // gave spurious 503s under load); the cap exists to stop runaway loops, not to time the function.
  functionTimeoutMs: 2000,
};

export interface LoadFunctionOptions {
  /** The function's source file (cloudfront-js-2.0); read again when it changes. */
  functionFile: string;
  /** KeyValueStore contents in the import format `{"data":[{"key":"…","value":"…"}]}`; re-read when it changes. */
  kvsFile?: string;
  /** KeyValueStore contents given inline (instead of `kvsFile`). Neither: no store is associated. */
  kvs?: Record<string, string>;
  limits?: Partial<FunctionLimits>;
  /** The distribution's origin ids, for `cf.selectRequestOriginById`. Default `api`, `blobs`. */
  origins?: readonly string[];
  /** The function's `console.log` lines (stdout by default). */
  log?: (line: string) => void;
}

/** What one run gave: the handler's value, the origin it selected, and how long it took. */
export interface FunctionRun {
  /** A request (forward it) or a response (viewer request: answer with it; viewer response: send it). */
  result: CfRequest | CfResponse;
  /** The id given to `cf.selectRequestOriginById`, if the function called it. */
  selectedOrigin?: string;
  ms: number;
}

export interface LoadedFunction {
  /** Runs the handler on `event`; rejects with {@link FunctionFailure} as CloudFront would fail the request. */
  run(event: CfEvent): Promise<FunctionRun>;
  /** Stops the worker threads. */
  close(): void;
}

/** A function run that failed: `503` (execution error) or `502` (validation error). */
export class FunctionFailure extends Error {
  constructor(
    readonly status: 502 | 503,
    message: string,
  ) {
    super(message);
  }
}

/** The function in `functionFile`, ready to run; call `close` when done. */
export function loadFunction(options: LoadFunctionOptions): LoadedFunction {
  return new FunctionRuntime(options);
}

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

export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// ---------------------------------------------------------------------------------------------
// Runs.
//
// Functions run in worker threads, one invocation at a time per worker, each in a fresh `vm`
// context. The main thread times each run and terminates a worker that overruns: stopping a
// runaway function inside the main thread (a `vm` timeout during promise jobs) corrupts Node's
// async-hook stack and aborts the process whenever AsyncLocalStorage is in use.

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
  origins: readonly string[];
  kvs?: KvsSnapshot;
}

interface WorkerReply {
  id: number;
  ok: boolean;
  json?: string;
  error?: string;
  origin?: string;
  logs: string[];
}

/** Reads the function file and the KeyValueStore when they change, and runs the handler. */
class FunctionRuntime implements LoadedFunction {
  private compiled?: CompiledFunction;
  private readonly kvs: KvsSource | undefined;
  private readonly limits: FunctionLimits;
  private readonly log: (line: string) => void;
  private readonly workers = new FunctionWorkers();
  private ids = 0;

  constructor(private readonly options: LoadFunctionOptions) {
    this.limits = { ...FUNCTION_LIMITS, ...options.limits };
    this.log = options.log ?? console.log;
    this.kvs = options.kvsFile ? new KvsFile(options.kvsFile) : options.kvs !== undefined ? new KvsInline(options.kvs) : undefined;
  }

  async run(event: CfEvent): Promise<FunctionRun> {
    const fn = this.load();
    if (fn.source === undefined) throw new FunctionFailure(503, fn.error ?? 'no function');
    const started = performance.now();
    const reply = await this.workers.call(this.message(fn, event), this.limits.functionTimeoutMs);
    const ms = performance.now() - started;
    const tag = `cloudfront function ${event.context.eventType} ${(event.context.requestId ?? '').slice(0, 8)}`;
    for (const line of reply.logs) this.log(`${tag}: ${line}`);
    return { result: resultOf(reply), selectedOrigin: reply.origin, ms };
  }

  close(): void {
    this.workers.close();
  }

  private message(fn: CompiledFunction, event: CfEvent): WorkerRequest {
    return {
      id: ++this.ids,
      version: fn.version,
      filename: this.options.functionFile,
      source: fn.source!,
      eventType: event.context.eventType,
      eventJson: JSON.stringify(event),
      origins: this.options.origins ?? ['api', 'blobs'],
      kvs: this.kvs?.snapshot(),
    };
  }

  private load(): CompiledFunction {
    const file = this.options.functionFile;
    let stat;
    try {
      stat = statSync(file);
    } catch (error) {
      return { version: '', error: `cannot read the function file: ${describeError(error)}` };
    }
    const version = `${stat.mtimeMs}:${stat.size}`;
    if (this.compiled?.version !== version) this.compiled = compile(version, readFileSync(file, 'utf8'), this.limits.maxFunctionBytes);
    return this.compiled;
  }
}

function compile(version: string, source: string, maxBytes: number): CompiledFunction {
  const bytes = Buffer.byteLength(source);
  if (bytes > maxBytes) {
    return { version, error: `the function code is ${bytes} bytes, over CloudFront's ${maxBytes}-byte limit: CloudFront would refuse to publish it` };
  }
  return { version, source: `${toScript(source)}\n;globalThis.__cfHandler = typeof handler === 'function' ? handler : undefined;\n` };
}

/** The handler's value as CloudFront takes it: an object, or a validation error. */
function resultOf(reply: WorkerReply): CfRequest | CfResponse {
  if (!reply.ok) throw new FunctionFailure(503, reply.error ?? 'the function failed');
  if (reply.json === undefined) throw new FunctionFailure(502, 'the handler returned nothing');
  const value = JSON.parse(reply.json) as unknown;
  if (typeof value !== 'object' || value === null) throw new FunctionFailure(502, 'the handler must return a request or response object');
  return value as CfRequest | CfResponse;
}

// ---------------------------------------------------------------------------------------------
// The KeyValueStore.

interface KvsSource {
  snapshot(): KvsSnapshot;
}

/** A store imported from a file ([KVI]), read again when the file changes. */
class KvsFile implements KvsSource {
  private last?: KvsSnapshot;

  constructor(private readonly file: string) {}

  snapshot(): KvsSnapshot {
    let stat;
    try {
      stat = statSync(this.file);
    } catch (error) {
      return { version: '', entries: [], meta: { creationDateTime: '', lastUpdatedDateTime: '', keyCount: 0 }, error: `cannot read the key value store ${this.file}: ${describeError(error)}` };
    }
    const version = `${stat.mtimeMs}:${stat.size}`;
    if (this.last?.version === version) return this.last;
    const data = new Map<string, string>();
    let error: string | undefined;
    try {
      parseImport(readFileSync(this.file, 'utf8'), data);
    } catch (e) {
      error = `the key value store ${this.file} is not in the import format: ${describeError(e)}`;
    }
    const meta = { creationDateTime: stat.birthtime.toISOString(), lastUpdatedDateTime: stat.mtime.toISOString(), keyCount: data.size };
    this.last = { version, entries: [...data], meta, error };
    return this.last;
  }
}

function parseImport(text: string, into: Map<string, string>): void {
  const parsed = JSON.parse(text) as { data?: unknown };
  if (!Array.isArray(parsed.data)) throw new Error('expected {"data":[{"key":…,"value":…}]}');
  for (const item of parsed.data as { key?: unknown; value?: unknown }[]) {
    if (typeof item?.key !== 'string' || typeof item.value !== 'string') throw new Error('every item needs a string key and a string value');
    into.set(item.key, item.value);
  }
}

/** A store given as an object, fixed for the life of the function. */
class KvsInline implements KvsSource {
  private readonly fixed: KvsSnapshot;

  constructor(data: Record<string, string>) {
    const at = new Date().toISOString();
    const entries = Object.entries(data);
    this.fixed = { version: 'inline', entries, meta: { creationDateTime: at, lastUpdatedDateTime: at, keyCount: entries.length } };
  }

  snapshot(): KvsSnapshot {
    return this.fixed;
  }
}

// ---------------------------------------------------------------------------------------------
// Worker threads.

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
    const worker = await this.take();
    return new Promise<WorkerReply>((resolve, reject) => {
      const cleanup = () => {
        pending = false;
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
        reject(new FunctionFailure(503, describeError(error)));
      };
      // A main thread that was blocked (a Lambda cold start imports a bundle for seconds) runs due
      // timers before it reads the worker's queued reply: the verdict waits one turn of the event
      // loop (setImmediate runs after pending I/O), so a function that answered in time is not failed.
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (!pending) return;
          cleanup();
          this.kill(worker);
          reject(new FunctionFailure(503, `the function did not finish within ${timeoutMs} ms (CloudFront stops a function that exceeds its compute budget): timed out`));
        });
      }, timeoutMs);
      let pending = true;
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

  private async take(): Promise<Worker> {
    const worker = this.idle.pop();
    if (worker) return worker;
    const next = this.warming ?? this.spawn();
    this.warming = undefined;
    return next;
  }

  private spawn(): Promise<Worker> {
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 64 } });
    worker.unref();
    this.all.add(worker);
    return new Promise((resolve, reject) => {
      worker.once('message', () => resolve(worker));
      worker.once('error', (error) => {
        this.kill(worker);
        reject(new FunctionFailure(503, `cannot start a function worker: ${describeError(error)}`));
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

function compile(m) {
  if (compiled.version === m.version) return;
  try {
    compiled = { version: m.version, script: new vm.Script(m.source, { filename: m.filename }) };
  } catch (e) {
    compiled = { version: m.version, error: 'the function code does not compile: ' + describe(e) };
  }
}

// What the cloudfront module reaches outside the context; run.origin records the selected origin.
function hostFor(m, run) {
  const data = new Map(m.kvs ? m.kvs.entries : []);
  return {
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
      if (m.origins.indexOf(id) < 0) throw new Error('cf.selectRequestOriginById(' + JSON.stringify(id) + '): the distribution has no origin with that id (it has ' + m.origins.join(', ') + ')');
      run.origin = id;
    },
    unsupported(name) {
      throw new Error('cf.' + name + '() is not supported by the CloudFront emulator (infra/local/cloudfront-functions.ts); use cf.selectRequestOriginById()');
    }
  };
}

// console.log; CloudFront truncates function logs at 10 KB.
function loggerFor(run) {
  let logged = 0;
  return (...args) => {
    if (logged >= 10240) return;
    const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ').slice(0, 10240 - logged);
    logged += line.length;
    run.logs.push(line);
  };
}

function contextFor(m, run) {
  return vm.createContext(
    {
      __host: hostFor(m, run),
      __hostModules: { crypto: cryptoModule(), querystring: querystringModule() },
      __eventJson: m.eventJson,
      Buffer: Buffer,
      console: Object.freeze({ log: loggerFor(run) })
    },
    { codeGeneration: { strings: false, wasm: false }, name: 'cloudfront-function' }
  );
}

parentPort.on('message', (m) => {
  const run = { logs: [], origin: undefined };
  const reply = (r) => parentPort.postMessage(Object.assign({ id: m.id, logs: run.logs, origin: run.origin }, r));
  compile(m);
  if (compiled.error) return reply({ ok: false, error: compiled.error });
  const context = contextFor(m, run);
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
