/**
 * A small HTTP client over node:http / node:https with keep-alive, for the registry, the token
 * service, presigned S3 URLs and the Docker Engine socket. Bodies are a Buffer or a re-openable
 * stream with a known length (always sent with `Content-Length`, which S3 part uploads need);
 * answers are buffered up to a limit or handed out as a stream.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

/** A request body that can be sent again (retries, a second try after a 401). */
export interface BodySource {
  /** Bytes. */
  length: number;
  open(): Readable;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | BodySource;
  /** Unix socket to connect to instead of the URL's host (Docker Engine). */
  socketPath?: string;
  /** Idle time (ms) after which the request fails; default 120 s. */
  idleMs?: number;
}

/** A buffered answer. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 32 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 32 }),
};

/** Sends a request and returns the response stream (the caller must consume or destroy it). */
export function open(url: string | URL, init: RequestInit = {}): Promise<IncomingMessage> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const headers: Record<string, string> = { 'User-Agent': 'berth-push', ...init.headers };
  const body = init.body;
  if (body !== undefined) headers['Content-Length'] = String(body.length);
  else if (init.method && !['GET', 'HEAD', 'DELETE'].includes(init.method)) headers['Content-Length'] = '0';
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request(
      target,
      { method: init.method ?? 'GET', headers, agent: init.socketPath ? undefined : secure ? agents.https : agents.http, socketPath: init.socketPath },
      resolve,
    );
    request.setTimeout(init.idleMs ?? 120_000, () => request.destroy(new Error(`no answer from ${target.host} for ${(init.idleMs ?? 120_000) / 1000} s`)));
    request.once('error', reject);
    if (body === undefined) request.end();
    else if (Buffer.isBuffer(body)) request.end(body);
    else {
      const stream = body.open();
      stream.once('error', (error) => request.destroy(error));
      stream.pipe(request);
    }
  });
}

/** Sends a request and buffers the answer (at most `maxBody` bytes, default 16 MiB). */
export async function send(url: string | URL, init: RequestInit = {}, maxBody = 16 * 1024 * 1024): Promise<Answer> {
  const response = await open(url, init);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    size += (chunk as Buffer).length;
    if (size > maxBody) {
      response.destroy();
      throw new Error(`answer of ${new URL(url).host} is larger than ${maxBody} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return { status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) };
}

/** The first value of a response header. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Closes idle keep-alive connections so the process can exit. */
export function closeAgents(): void {
  agents.http.destroy();
  agents.https.destroy();
}
