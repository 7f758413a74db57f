/** Blob endpoints: HEAD and GET (end-2), DELETE (end-10). */
import { parseDigest } from '../core/grammar.js';
import type { Registry } from '../core/registry.js';
import type { BlobRecord } from '../storage/ports.js';
import { empty, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

/** HEAD /v2/<name>/blobs/<digest> — answered from metadata alone (or the upstream's HEAD, for a blob not cached yet). */
export async function headBlob(registry: Registry, _request: HttpRequest, { name, digest }: RouteParams): Promise<HttpResponse> {
  const parsed = parseDigest(digest);
  const upstreamSize = await registry.cache.blobSize(name, parsed);
  const blob = upstreamSize === undefined ? await registry.blobs.stat(name, parsed) : { digest: parsed, size: upstreamSize };
  return { status: 200, headers: blobHeaders(blob, blob.size) };
}

/**
 * GET /v2/<name>/blobs/<digest> — 307 to a presigned URL, or the bytes (200, or 206 for a Range);
 * a blob of a cached repository not cached yet: the upstream's redirect, or its bytes streamed through.
 */
export async function getBlob(registry: Registry, request: HttpRequest, { name, digest }: RouteParams): Promise<HttpResponse> {
  const fetched = await registry.cache.blob(name, parseDigest(digest));
  if (fetched?.kind === 'redirect') return empty(307, { Location: fetched.url, 'Docker-Content-Digest': fetched.digest });
  if (fetched?.kind === 'stream') return { status: 200, headers: blobHeaders(fetched, fetched.size), body: fetched.stream };
  const content = await registry.blobs.open(name, parseDigest(digest), request.headers.range);
  if (content.kind === 'redirect') {
    return empty(307, { Location: content.url, 'Docker-Content-Digest': content.blob.digest });
  }
  const { blob, range, stream } = content;
  if (!range) return { status: 200, headers: blobHeaders(blob, blob.size), body: stream };
  return {
    status: 206,
    headers: { ...blobHeaders(blob, range.end - range.start + 1), 'Content-Range': `bytes ${range.start}-${range.end}/${blob.size}` },
    body: stream,
  };
}

/** DELETE /v2/<name>/blobs/<digest> — unlinks the blob from the repository. */
export async function deleteBlob(registry: Registry, _request: HttpRequest, { name, digest }: RouteParams): Promise<HttpResponse> {
  await registry.blobs.delete(name, parseDigest(digest));
  return empty(202);
}

/** Headers of a blob's bytes; without `length` (an upstream that did not say) no Content-Length. */
function blobHeaders(blob: Pick<BlobRecord, 'digest'>, length: number | undefined): Record<string, string> {
  return {
    'Content-Type': 'application/octet-stream',
    ...(length === undefined ? {} : { 'Content-Length': String(length) }),
    'Docker-Content-Digest': blob.digest,
    'Accept-Ranges': 'bytes',
  };
}
