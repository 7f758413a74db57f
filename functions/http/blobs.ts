/** Blob endpoints: HEAD and GET (end-2), DELETE (end-10). */
import { parseDigest } from '../core/grammar.js';
import type { Registry } from '../core/registry.js';
import type { BlobRecord } from '../storage/ports.js';
import { empty, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

/** HEAD /v2/<name>/blobs/<digest> — answered from metadata alone. */
export async function headBlob(registry: Registry, _request: HttpRequest, { name, digest }: RouteParams): Promise<HttpResponse> {
  const blob = await registry.blobs.stat(name, parseDigest(digest));
  return { status: 200, headers: blobHeaders(blob, blob.size) };
}

/** GET /v2/<name>/blobs/<digest> — 307 to a presigned URL, or the bytes (200, or 206 for a Range). */
export async function getBlob(registry: Registry, request: HttpRequest, { name, digest }: RouteParams): Promise<HttpResponse> {
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

function blobHeaders(blob: BlobRecord, length: number): Record<string, string> {
  return {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(length),
    'Docker-Content-Digest': blob.digest,
    'Accept-Ranges': 'bytes',
  };
}
