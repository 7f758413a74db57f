/**
 * The local / self-hosted transport: a `node:http` server that hands each request to the same
 * router the Lambda entry uses, streaming request bodies into the core (a layer of any size
 * needs only a few S3 parts of memory) and blob bodies back out. One log line per request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fail } from '../../functions/core/errors.js';
import type { Registry } from '../../functions/core/registry.js';
import { route } from '../../functions/http/router.js';
import type { HttpRequest } from '../../functions/http/types.js';

/** Where request log lines go (stdout by default). */
export type RequestLog = (line: string) => void;

/** A server that answers the registry API for `registry`. Call `listen` on it. */
export function createRegistryServer(registry: Registry, log: RequestLog = console.log): Server {
  const server = createServer((req, res) => void serve(registry, req, res, log));
  // Uploads of large layers may take long; a fixed request timeout would cut them off.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  return server;
}

async function serve(registry: Registry, req: IncomingMessage, res: ServerResponse, log: RequestLog): Promise<void> {
  const started = performance.now();
  const received = { bytes: 0 };
  const request = toRequest(req, received);
  let sent = 0;
  const response = await route(registry, request);
  res.writeHead(response.status, response.headers);
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
  if (!req.complete) req.resume();
  const ms = (performance.now() - started).toFixed(1);
  log(`${req.method} ${request.path} ${response.status} ${ms}ms in=${received.bytes} out=${sent}`);
}

/** The transport-free request; `received.bytes` counts the body bytes the handler read. */
function toRequest(req: IncomingMessage, received: { bytes: number }): HttpRequest {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const length = headers['content-length'];
  return {
    // Behind a TLS-terminating proxy the client's scheme arrives in X-Forwarded-Proto.
    scheme: headers['x-forwarded-proto'] === 'https' ? 'https' : 'http',
    method: req.method ?? 'GET',
    path: q < 0 ? url : url.slice(0, q),
    query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
    headers,
    body: { chunks: clientBody(req, received), length: length === undefined ? undefined : Number(length) },
    // The peer of the connection: X-Forwarded-For is the client's to write, so it is not used.
    sourceIp: req.socket.remoteAddress ?? '',
  };
}

/** The request body; a client that disconnects mid-body is a client error, not the registry's. */
async function* clientBody(req: IncomingMessage, received: { bytes: number }): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of req) {
      received.bytes += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  } catch {
    throw fail('BLOB_UPLOAD_INVALID', 'the request body ended before its end (client disconnected)');
  }
}
