/**
 * The local / self-hosted transport: a `node:http` (or, with a certificate, `node:https`) server that hands each request to the same
 * router the Lambda entry uses, streaming request bodies into the core (a layer of any size
 * needs only a few S3 parts of memory) and blob bodies back out. One log line per request.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { finished, Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import { fail } from '../../functions/core/errors.js';
import type { Registry } from '../../functions/core/registry.js';
import { route } from '../../functions/http/router.js';
import type { HttpRequest } from '../../functions/http/types.js';
import type { AuditSink } from '../../functions/http/audit.js';
import { OBJECT_URL_PATH, type FileBlobStore } from '../../functions/storage/files.js';
import { serveObjectUrl } from './object-urls.js';

/** Where request log lines go (stdout by default). */
export type RequestLog = (line: string) => void;

/** The default of {@link ServerOptions.bodyIdleMs}: a slow network pauses for seconds, not a minute. */
export const BODY_IDLE_MS = 60_000;

export interface ServerOptions {
  /** Where request log lines go (stdout by default). */
  log?: RequestLog;
  /** A request body from which no byte arrives for this long fails (400, connection closed). */
  bodyIdleMs?: number;
  /** Where audit records go (default: JSON lines on stdout, http/audit.ts). */
  audit?: AuditSink;
  /** Certificate and key (PEM): HTTPS instead of HTTP, on the same port. */
  tls?: { cert: Buffer; key: Buffer };
  /** The file store whose presigned URLs (`/_berth/objects/…`) this server answers, when blobs are files. */
  objects?: FileBlobStore;
}

/**
 * A server that answers the registry API for `registry`. Call `listen` on it. Its timeouts: the
 * request line and headers within 60 s; a body at any pace, but never silent for `bodyIdleMs`;
 * no bound on a whole request, since an upload of a large layer may take long.
 */
export function createRegistryServer(registry: Registry, options: ServerOptions = {}): Server {
  const settings = { log: options.log ?? console.log, bodyIdleMs: options.bodyIdleMs ?? BODY_IDLE_MS, audit: options.audit, objects: options.objects };
  const handle = (req: IncomingMessage, res: ServerResponse) => void requestHost.run(hostOf(req), () => serve(registry, req, res, settings));
  const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handle) : createServer(handle);
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  return server;
}

/** The `Host` of the request being answered (what {@link currentRequestHost} returns). */
const requestHost = new AsyncLocalStorage<string | undefined>();

/**
 * The host (`name[:port]`) the client named in the request this code runs for, or undefined outside
 * a request or when its `Host` is no plain host name or address: the name a URL made for that client
 * (a presigned URL of the file store) must carry for it to reach this server.
 */
export function currentRequestHost(): string | undefined {
  return requestHost.getStore();
}

/** RFC 9110 §7.2 `Host`: a name, an IPv4 or a bracketed IPv6 address, and a port; nothing else. */
function hostOf(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  return host !== undefined && /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(host) ? host : undefined;
}

type ServerSettings = Required<Omit<ServerOptions, 'audit' | 'tls' | 'objects'>> & Pick<ServerOptions, 'audit' | 'objects'>;

interface BodyState {
  /** Body bytes the handler read. */
  bytes: number;
  /** The body fell silent for longer than the idle timeout. */
  stalled: boolean;
}

async function serve(registry: Registry, req: IncomingMessage, res: ServerResponse, settings: ServerSettings): Promise<void> {
  const { log } = settings;
  const started = performance.now();
  if (settings.objects && req.url?.startsWith(OBJECT_URL_PATH)) {
    const status = await serveObjectUrl(settings.objects, req, res);
    // Without the query: it holds the signature.
    log(`${req.method} ${req.url.split('?')[0]} ${status} ${(performance.now() - started).toFixed(1)}ms`);
    return;
  }
  const received: BodyState = { bytes: 0, stalled: false };
  const request = toRequest(req, received, settings.bodyIdleMs);
  let sent = 0;
  const response = await route(registry, request, { audit: settings.audit });
  // The rest of a stalled body may never come: answer, then close the connection rather than wait for it.
  res.writeHead(response.status, received.stalled ? { ...response.headers, connection: 'close' } : response.headers);
  try {
    if (response.body instanceof Readable) {
      response.body.on('data', (chunk: Buffer) => (sent += chunk.length));
      await pipeline(response.body, res);
    } else {
      sent = response.body?.length ?? 0;
      res.end(response.body);
    }
  } catch {
    res.destroy();
  }
  // A body the handler did not read (an error before the upload started) is drained, not left
  // to stall the connection.
  // Once the answer is out (destroying sooner could cut it off).
  if (received.stalled) finished(res, () => req.destroy());
  else if (!req.complete) req.resume();
  const ms = (performance.now() - started).toFixed(1);
  log(`${req.method} ${request.path} ${response.status} ${ms}ms in=${received.bytes} out=${sent}`);
}

/** The transport-free request; `received` follows the body as the handler reads it. */
function toRequest(req: IncomingMessage, received: BodyState, bodyIdleMs: number): HttpRequest {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const length = headers['content-length'];
  return {
    // Behind a TLS-terminating proxy the client's scheme arrives in X-Forwarded-Proto.
    scheme: (req.socket as TLSSocket).encrypted || headers['x-forwarded-proto'] === 'https' ? 'https' : 'http',
    method: req.method ?? 'GET',
    path: q < 0 ? url : url.slice(0, q),
    query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
    headers,
    body: { chunks: clientBody(req, received, bodyIdleMs), length: length === undefined ? undefined : Number(length) },
    // The peer of the connection: X-Forwarded-For is the client's to write, so it is not used.
    sourceIp: req.socket.remoteAddress ?? '',
    requestId: randomUUID(),
  };
}

/**
 * The request body; a client that disconnects mid-body, or sends no byte for `idleMs` while the
 * handler waits for one, is a client error, not the registry's. Time the handler spends on what it
 * read (writing to S3) does not count: the clock runs only while it waits.
 */
async function* clientBody(req: IncomingMessage, received: BodyState, idleMs: number): AsyncGenerator<Uint8Array> {
  const chunks = req[Symbol.asyncIterator]();
  let ended = false;
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const silence = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), idleMs)));
      let next: IteratorResult<Buffer> | 'stalled';
      try {
        next = await Promise.race([chunks.next() as Promise<IteratorResult<Buffer>>, silence]);
      } catch {
        throw fail('BLOB_UPLOAD_INVALID', 'the request body ended before its end (client disconnected)');
      } finally {
        clearTimeout(timer);
      }
      if (next === 'stalled') {
        received.stalled = true;
        throw fail('BLOB_UPLOAD_INVALID', `no byte of the request body arrived for ${idleMs / 1000} s`);
      }
      if (next.done) {
        ended = true;
        return;
      }
      received.bytes += next.value.length;
      yield next.value;
    }
  } finally {
    // A handler that stops reading early ends the body, as `for await` would; a stalled one is
    // left for serve() to answer before it closes the connection.
    if (!ended && !received.stalled) await chunks.return?.();
  }
}
