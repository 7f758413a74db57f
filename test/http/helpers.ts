/**
 * Helpers of the HTTP API suite: requests against a running registry (plain `fetch`, or raw
 * `node:http` where a path must reach the server exactly as written), blob and manifest pushes,
 * and the assertions every test repeats (OCI error JSON, upload session headers).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { TestRegistry } from '../support/stack.js';

export const MiB = 1024 * 1024;

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/**
 * The error codes of distribution-spec v1.1 ("Error Codes": the `code` field MUST be one of these).
 * Every error body the registry sends is checked against this list.
 */
export const SPEC_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
] as const;

/** For failures where the spec fixes the status but names no particular code: any code of its table. */
export const ANY_SPEC_CODE = SPEC_ERROR_CODES;

export type Digest = `sha256:${string}` | `sha512:${string}`;

export function sha256(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function sha512(bytes: Uint8Array | string): Digest {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

/** `n` random bytes (incompressible, so nothing on the way can shrink them). */
export function randomBlob(n: number): Buffer {
  return randomBytes(n);
}

/** A repository name unique within a run, so tests of one file never see each other's data. */
let counter = 0;
export function uniqueRepo(prefix = 'repo'): string {
  counter += 1;
  return `${prefix}/r${counter}-${randomBytes(3).toString('hex')}`;
}

/** A body streamed with chunked transfer encoding (no `Content-Length`), as docker sends layers. */
export function streamOf(parts: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < parts.length) controller.enqueue(parts[i++]);
      else controller.close();
    },
  });
}

/** `fetch` options, with the byte bodies the tests send (Buffer, Uint8Array, a stream). */
export type Init = Omit<RequestInit, 'body'> & { body?: Uint8Array | ReadableStream<Uint8Array> | string | null };

/** `fetch` against one registry with paths relative to it. */
export class Api {
  constructor(readonly stack: TestRegistry) {}

  get url(): string {
    return this.stack.url;
  }

  /** Whether blob GETs answer 307 to presigned URLs (real S3 back ends) rather than the bytes. */
  get redirects(): boolean {
    return this.stack.backends.config.delivery === 'redirect';
  }

  /** An absolute URL for `pathOrUrl` (a Location may be relative or absolute). */
  resolve(pathOrUrl: string): string {
    return new URL(pathOrUrl, this.url).toString();
  }

  fetch(path: string, init: Init = {}): Promise<Response> {
    const options = init.body instanceof ReadableStream ? { ...init, duplex: 'half' as const } : init;
    return fetch(this.resolve(path), options as RequestInit);
  }

  head(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.fetch(path, { method: 'HEAD', headers });
  }

  get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.fetch(path, { method: 'GET', headers });
  }

  delete(path: string): Promise<Response> {
    return this.fetch(path, { method: 'DELETE' });
  }

  /** POST /v2/<repo>/blobs/uploads/ and the session's location (asserting the 202). */
  async startUpload(repo: string): Promise<{ response: Response; location: string; uuid: string }> {
    const response = await this.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'Content-Length': '0' } });
    assert.equal(response.status, 202, `POST upload to ${repo}: ${await response.clone().text()}`);
    const location = response.headers.get('location');
    assert.ok(location, 'POST upload answers a Location');
    return { response, location, uuid: response.headers.get('docker-upload-uuid') ?? '' };
  }

  /** PATCH a chunk to an upload location; `range` adds `Content-Range: <start>-<end>`. */
  patch(location: string, body: Uint8Array | ReadableStream<Uint8Array>, range?: [number, number]): Promise<Response> {
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    if (range) headers['Content-Range'] = `${range[0]}-${range[1]}`;
    return this.fetch(location, { method: 'PATCH', headers, body });
  }

  /** PUT `<location>?digest=<digest>` (with an optional last chunk and its `Content-Range`). */
  put(location: string, digest: string | undefined, body?: Uint8Array, range?: [number, number]): Promise<Response> {
    const url = new URL(this.resolve(location));
    if (digest !== undefined) url.searchParams.set('digest', digest);
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    if (range) headers['Content-Range'] = `${range[0]}-${range[1]}`;
    if (!body) headers['Content-Length'] = '0';
    return this.fetch(url.toString(), { method: 'PUT', headers, body });
  }

  /** Monolithic upload (single POST `?digest=`); asserts the 201 and returns the digest. */
  async pushBlob(repo: string, bytes: Uint8Array): Promise<Digest> {
    const digest = sha256(bytes);
    const response = await this.fetch(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(response.status, 201, `push blob to ${repo}: ${await response.text()}`);
    return digest;
  }

  /** PUT a manifest (bytes as given, or JSON of an object); does not assert the status. */
  async putManifest(
    repo: string,
    reference: string,
    manifest: unknown,
    contentType?: string,
  ): Promise<{ response: Response; bytes: Buffer; digest: Digest }> {
    const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    const mediaType = contentType ?? (isObject(manifest) && typeof manifest.mediaType === 'string' ? manifest.mediaType : undefined);
    const headers: Record<string, string> = mediaType ? { 'Content-Type': mediaType } : {};
    const response = await this.fetch(`/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers, body: bytes });
    return { response, bytes, digest: sha256(bytes) };
  }

  /** PUT a manifest and assert the 201 with its digest; returns bytes and digest. */
  async pushManifest(repo: string, reference: string, manifest: unknown, contentType?: string): Promise<{ bytes: Buffer; digest: Digest; response: Response }> {
    const result = await this.putManifest(repo, reference, manifest, contentType);
    assert.equal(result.response.status, 201, `push manifest ${repo}:${reference}: ${await result.response.clone().text()}`);
    assert.equal(result.response.headers.get('docker-content-digest'), result.digest);
    return result;
  }

  /** Pushes a config and one layer and an OCI image manifest referencing them. */
  async pushImage(repo: string, reference: string, extra: Partial<Record<string, unknown>> = {}): Promise<PushedImage> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(8).toString('hex') }));
    const layer = randomBlob(1024 + Math.floor(Math.random() * 1024));
    const configDigest = await this.pushBlob(repo, config);
    const layerDigest = await this.pushBlob(repo, layer);
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaTypes.ociLayer, digest: layerDigest, size: layer.length }],
      ...extra,
    };
    const { bytes, digest } = await this.pushManifest(repo, reference, manifest);
    return { manifest, bytes, digest, config: { digest: configDigest, size: config.length }, layer: { digest: layerDigest, size: layer.length, bytes: layer } };
  }

  /**
   * GET a blob, following a 307 to a presigned URL when the back end redirects. `registry` is
   * the registry's own answer (its headers), `content` the one carrying the bytes.
   */
  async getBlob(repo: string, digest: string, headers: Record<string, string> = {}): Promise<{ registry: Response; content: Response }> {
    const registry = await this.fetch(`/v2/${repo}/blobs/${digest}`, { headers, redirect: 'manual' });
    if (registry.status !== 307) return { registry, content: registry };
    assert.ok(registry.headers.get('location'), '307 carries a Location');
    const content = await fetch(registry.headers.get('location')!, { headers });
    return { registry, content };
  }

  /** The bytes a GET of blob `digest` of `repo` serves (200, or 307 followed). */
  async blobBytes(repo: string, digest: string): Promise<Buffer> {
    const { content } = await this.getBlob(repo, digest);
    assert.equal(content.status, 200, `GET blob ${digest}`);
    return Buffer.from(await content.arrayBuffer());
  }
}

export interface PushedImage {
  manifest: Record<string, unknown>;
  bytes: Buffer;
  digest: Digest;
  config: { digest: Digest; size: number };
  layer: { digest: Digest; size: number; bytes: Buffer };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !Array.isArray(value);
}

/** An image manifest over the given blobs (OCI unless `mediaType` says otherwise). */
export function imageManifest(
  config: { digest: string; size: number; mediaType?: string },
  layers: { digest: string; size: number; mediaType?: string }[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: config.mediaType ?? MediaTypes.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType ?? MediaTypes.ociLayer, digest: l.digest, size: l.size })),
    ...extra,
  };
}

/** A response read once: status, headers and body bytes (for `fetch` and raw requests alike). */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * A request whose path reaches the server exactly as written: `fetch` (WHATWG URL) would resolve
 * `..` and `%2e%2e` segments before sending, which hides the traversal from the registry.
 */
export function raw(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: Uint8Array): Promise<RawResponse> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: hostname, port, method, path, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) }, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

function headerOf(response: Response | RawResponse, name: string): string | undefined {
  if (response instanceof Response) return response.headers.get(name) ?? undefined;
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** What a failing request answered, for assertion messages. */
function describe(response: Response | RawResponse, text: string): string {
  return `status ${response.status}, body ${text.slice(0, 300)}`;
}

/**
 * Reads an error answer and asserts its shape: JSON `{"errors":[{"code","message","detail"}]}`
 * with upper-case codes, no stack trace or source path, never a 5xx. Returns the entries.
 */
export async function errorEntries(response: Response | RawResponse, what = ''): Promise<ErrorEntry[]> {
  const text = response instanceof Response ? await response.text() : response.body.toString('utf8');
  const label = what ? `${what}: ` : '';
  assert.ok(response.status < 500, `${label}never a 5xx (${describe(response, text)})`);
  assert.match(headerOf(response, 'content-type') ?? '', /^application\/json/, `${label}error body is JSON (${describe(response, text)})`);
  assert.doesNotMatch(text, /\bat .*:\d+:\d+|node:internal|\/functions\/|\.ts:\d+/, `${label}no stack trace in ${text.slice(0, 200)}`);
  let body: { errors?: ErrorEntry[] };
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${label}error body is not JSON: ${text.slice(0, 200)}`);
  }
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `${label}body has a non-empty "errors" array: ${text.slice(0, 200)}`);
  for (const entry of body.errors) {
    assert.equal(typeof entry.code, 'string', `${label}error code is a string`);
    assert.match(entry.code, /^[A-Z_]+$/, `${label}error code is upper case with underscores`);
    assert.equal(typeof entry.message, 'string', `${label}error message is a string`);
    assert.ok('detail' in entry, `${label}error entry has a "detail" member`);
  }
  return body.errors;
}

export interface ErrorEntry {
  code: string;
  message: string;
  detail: unknown;
}

/**
 * Asserts an OCI error response: exactly `status` (never a 5xx), the shape of
 * {@link errorEntries}, every code one of the spec's table, and the first code `code` (or one of
 * `code`). (HEAD answers carry no body: check them with {@link expectHeadStatus}.)
 */
export async function expectError(
  response: Response | RawResponse,
  status: number,
  code: string | readonly string[],
  what = '',
): Promise<ErrorEntry[]> {
  const label = what ? `${what}: ` : '';
  if (response.status !== status) {
    const text = response instanceof Response ? await response.clone().text() : response.body.toString('utf8');
    assert.ok(response.status < 500, `${label}never a 5xx (${describe(response, text)})`);
    assert.equal(response.status, status, `${label}expected ${status} (${describe(response, text)})`);
  }
  const entries = await errorEntries(response, what);
  for (const entry of entries) {
    assert.ok(
      (SPEC_ERROR_CODES as readonly string[]).includes(entry.code),
      `${label}error code ${entry.code} is not one of the distribution-spec error codes (spec "Error Codes": the code MUST be one of ${SPEC_ERROR_CODES.join(', ')})`,
    );
  }
  const expected = typeof code === 'string' ? [code] : code;
  assert.ok(expected.includes(entries[0].code), `${label}expected code ${expected.length > 3 ? 'from the spec table' : expected.join(' or ')}, got ${entries[0].code}`);
  return entries;
}

/** Asserts the status of a HEAD answer (which has no body) and that it is no 5xx. */
export async function expectHeadStatus(response: Response, status: number, what = ''): Promise<void> {
  const text = await response.text();
  assert.ok(response.status < 500, `${what}: never a 5xx (got ${response.status})`);
  assert.equal(response.status, status, `${what}: expected ${status}, got ${response.status}`);
  assert.equal(text, '', `${what}: a HEAD answer has no body`);
}

/** Asserts the headers of an upload session answer (202 or 204): Location, Range and the UUID. */
export function expectSession(response: Response, repo: string, offset: number): { location: string; uuid: string } {
  const location = response.headers.get('location');
  assert.ok(location, 'session answer has a Location');
  const path = new URL(location, 'http://x').pathname;
  const match = new RegExp(`^/v2/${repo.replace(/[.]/g, '\\.')}/blobs/uploads/([^/?]+)$`).exec(path);
  assert.ok(match, `Location ${location} is an upload URL of ${repo}`);
  assert.match(match[1], /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i, 'the location contains a UUID');
  assert.equal(response.headers.get('docker-upload-uuid'), match[1], 'Docker-Upload-UUID names the session of the Location');
  assert.equal(response.headers.get('range'), `0-${Math.max(offset - 1, 0)}`, `Range reports ${offset} bytes received`);
  return { location, uuid: match[1] };
}

/** Reads a whole response body as bytes. */
export async function bytesOf(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer());
}

/** The target of a `Link: <url>; rel="next"` header, or undefined. */
export function nextLink(response: Response): string | undefined {
  const link = response.headers.get('link');
  if (!link) return undefined;
  const match = /^<([^>]+)>;\s*rel="?next"?$/.exec(link.trim());
  assert.ok(match, `Link header has the RFC 5988 form <url>; rel="next": ${link}`);
  return match[1];
}

/** A digest that nothing in the registry has. */
export function absentDigest(): Digest {
  return sha256(randomBytes(32));
}
