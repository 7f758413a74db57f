/**
 * Berth's direct upload extension (`/v2/<name>/_berth/uploads/…`): blob bytes go straight to S3
 * through presigned part URLs, and the registry verifies the digest before the blob is visible.
 * `_berth` cannot be a repository path component (names start components with [a-z0-9]), so
 * these routes never shadow a repository.
 *
 *   POST   /v2/<name>/_berth/uploads/?digest=<sha256>&size=<bytes>   → 202 {id, location, partSize, partCount, parts[], …}
 *   GET    /v2/<name>/_berth/uploads/<id>/parts?first=<n>&count=<k>   → 200 {parts[]}
 *   POST   /v2/<name>/_berth/uploads/<id>/complete  {"parts":[{"number","etag"}]} → 202 {state: verifying|verified|failed}
 *   GET    /v2/<name>/_berth/uploads/<id>                            → 200 {state, verified, …} (poll until verified)
 *   DELETE /v2/<name>/_berth/uploads/<id>                            → 204
 */
import * as z from '../zod.js';
import { readLimited } from '../core/body.js';
import type { DirectStatus } from '../core/direct.js';
import { MAX_URLS_PER_ANSWER } from '../core/direct.js';
import { fail } from '../core/errors.js';
import { parseDigest } from '../core/grammar.js';
import type { Registry } from '../core/registry.js';
import { integerParam } from './pagination.js';
import { empty, json, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

const completion = z.object({ parts: z.array(z.object({ number: z.int(), etag: z.string().check(z.minLength(1), z.maxLength(200)) })).check(z.maxLength(10_000)) });

/** POST /v2/<name>/_berth/uploads/?digest=&size= */
export async function startDirect(registry: Registry, request: HttpRequest, { name }: RouteParams): Promise<HttpResponse> {
  const digest = parseDigest(request.query.get('digest') ?? '');
  const size = integerParam(request.query.get('size'), 'size', { fallback: -1, min: 0, max: Number.MAX_SAFE_INTEGER });
  const { status, parts } = await registry.direct.start(name, digest, size);
  return json(202, { ...status, parts }, { Location: status.location });
}

/** GET /v2/<name>/_berth/uploads/<id>/parts?first=&count= */
export async function directParts(registry: Registry, request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  const first = integerParam(request.query.get('first'), 'first', { fallback: 1, min: 1, max: Number.MAX_SAFE_INTEGER });
  const count = integerParam(request.query.get('count'), 'count', { fallback: MAX_URLS_PER_ANSWER, min: 1, max: MAX_URLS_PER_ANSWER });
  return json(200, { parts: await registry.direct.partUrls(name, id, first, count) });
}

/** POST /v2/<name>/_berth/uploads/<id>/complete */
export async function completeDirect(registry: Registry, request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  const body = await readLimited(request.body, 2 * 1024 * 1024, 'completion');
  let parsed: z.infer<typeof completion>;
  try {
    parsed = completion.parse(JSON.parse(body.toString('utf8')));
  } catch {
    throw fail('BLOB_UPLOAD_INVALID', 'the body must be {"parts":[{"number":1,"etag":"…"},…]}');
  }
  return statusResponse(await registry.direct.complete(name, id, parsed.parts));
}

/** GET /v2/<name>/_berth/uploads/<id> */
export async function directStatus(registry: Registry, _request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  return statusResponse(await registry.direct.status(name, id));
}

/** DELETE /v2/<name>/_berth/uploads/<id> */
export async function cancelDirect(registry: Registry, _request: HttpRequest, { name, id }: RouteParams): Promise<HttpResponse> {
  await registry.direct.cancel(name, id);
  return empty(204);
}

/** 200 once verified (with `Docker-Content-Digest`), 202 while verifying, 400 DIGEST_INVALID when it failed. */
function statusResponse(status: DirectStatus): HttpResponse {
  if (status.state === 'failed') throw fail('DIGEST_INVALID', status.error ?? 'verification failed', { upload: status.id });
  const headers: Record<string, string> = { Location: status.location };
  if (status.state === 'verified') headers['Docker-Content-Digest'] = status.digest;
  return json(status.state === 'verified' ? 200 : 202, status, headers);
}
