/** Blob upload endpoints: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE. */
import { fail } from '../core/errors.js';
import { isDigest, isRepositoryName, parseDigest } from '../core/grammar.js';
import { parseContentRange } from '../core/range.js';
import { parseSegment } from '../core/signed-paths.js';
import type { Registry } from '../core/registry.js';
import { uploadHeaders } from '../core/sessions.js';
import type { BlobRecord } from '../storage/ports.js';
import { empty, type AuthorizedRequest, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** POST /v2/<name>/blobs/uploads/ — end-4a, end-4b (`?digest=`), end-11 (`?mount=&from=`). */
export async function startUpload(registry: Registry, request: AuthorizedRequest, { name }: RouteParams): Promise<HttpResponse> {
  const { query } = request;
  const mount = query.get('mount');
  const from = query.get('from');
  // A mount needs pull on the source; without it the blob's existence there must not show (202, never 201).
  // A mount that cannot happen, a malformed `mount` or `from` included, falls back to a new upload
  // session: distribution-spec "Mounting a blob from another repository" (SHOULD), as registry:2 does.
  if (mount !== null && from !== null && isDigest(mount) && isRepositoryName(from) && (await request.caller.may(from, 'pull'))) {
    const blob = await registry.uploads.mount(name, mount, from);
    if (blob) return created(name, blob);
  }
  const digest = query.get('digest');
  if (digest !== null) return created(name, await registry.uploads.uploadWhole(name, parseDigest(digest), request.body));
  const session = await registry.uploads.start(name);
  // The largest chunk one request may carry where the deployment has such a limit (Lambda).
  const limit: Record<string, string> = registry.maxChunk === undefined ? {} : { 'OCI-Chunk-Max-Length': String(registry.maxChunk) };
  return empty(202, { ...(await registry.frontDoor.uploadHeaders(session)), ...limit });
}

/** GET /v2/<name>/blobs/uploads/<id> — end-13: progress of a session. */
export async function uploadStatus(registry: Registry, _request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  const session = await registry.uploads.status(name, sessionId(id));
  return empty(204, uploadHeaders(session));
}

/** PATCH /v2/<name>/blobs/uploads/<id> — end-5: a chunk, streamed or with `Content-Range`. */
export async function appendChunk(registry: Registry, request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  const range = request.headers['content-range'];
  const session = await registry.uploads.append(name, sessionId(id), request.body, range === undefined ? undefined : parseContentRange(range));
  return empty(202, uploadHeaders(session));
}

/** PUT /v2/<name>/blobs/uploads/<id>?digest= — end-6: the last chunk (optional) and the digest. */
export async function finishUpload(registry: Registry, request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  const digest = request.query.get('digest');
  if (digest === null) throw fail('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
  const range = request.headers['content-range'];
  const blob = await registry.uploads.finish(
    name,
    sessionId(id),
    parseDigest(digest),
    request.body,
    range === undefined ? undefined : parseContentRange(range),
  );
  return created(name, blob);
}

/** DELETE /v2/<name>/blobs/uploads/<id> — cancels a session. */
export async function cancelUpload(registry: Registry, _request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  await registry.uploads.cancel(name, sessionId(id));
  return empty(204);
}

function created(name: string, blob: BlobRecord): HttpResponse {
  return empty(201, { Location: `/v2/${name}/blobs/${blob.digest}`, 'Docker-Content-Digest': blob.digest });
}

/** The session id of an upload URL's last segment; the front door's signature after it, if any, is the edge's business. */
function sessionId(segment: string): string {
  const id = parseSegment(segment)?.id ?? segment;
  if (!SESSION_ID.test(id)) throw fail('BLOB_UPLOAD_UNKNOWN', 'upload session unknown', { session: segment.slice(0, 64) });
  return id;
}
