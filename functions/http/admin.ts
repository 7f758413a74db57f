/**
 * Admin routes under `/v2/_berth/` (scope `registry:berth:admin`: admins over every repository;
 * README, "Repository management"), the HTTP face of `npx berth repo ls | tag ls | rm | du | gc`:
 *
 * | route | answer |
 * |---|---|
 * | `GET /v2/_berth/repositories` | `{repositories: [{name, visibility, tags, manifests, bytes, pushedAt}]}` |
 * | `GET /v2/_berth/repositories/<name>/tags` | `{name, tags: [{tag, digest, mediaType, size, updatedAt}]}` |
 * | `DELETE /v2/_berth/repositories/<name>` | 202 `{tags, manifests, links}` deleted; bytes go at the next GC |
 * | `GET /v2/_berth/usage` | `{total, blobs, unlinked, repositories: [{name, bytes}]}` (bytes) |
 * | `POST /v2/_berth/gc?grace=<duration>&dryRun=true` | the run's report; `finished: false`: POST again to continue |
 *
 * Tags and manifests are deleted with the distribution API's `DELETE /v2/<name>/manifests/<reference>`.
 */
import { fail } from '../core/errors.js';
import { DEFAULT_GRACE_MS, parseDuration } from '../core/gc.js';
import type { Registry } from '../core/registry.js';
import { json, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

/** A collection over HTTP stops after this long (ms) and reports `finished: false`: API Gateway waits 30 s at most. */
const GC_BUDGET_MS = 20_000;

export async function adminRepositories(registry: Registry): Promise<HttpResponse> {
  return json(200, { repositories: await registry.repositories.list() });
}

export async function adminTags(registry: Registry, _request: HttpRequest, { name }: RouteParams): Promise<HttpResponse> {
  const tags = await registry.repositories.tags(name);
  return json(200, { name, tags: tags.map(({ tag, digest, mediaType, size, updatedAt }) => ({ tag, digest, mediaType, size, updatedAt })) });
}

export async function adminDeleteRepository(registry: Registry, _request: HttpRequest, { name }: RouteParams): Promise<HttpResponse> {
  return json(202, await registry.repositories.remove(name));
}

export async function adminUsage(registry: Registry): Promise<HttpResponse> {
  return json(200, await registry.repositories.usage());
}

export async function adminCollect(registry: Registry, request: HttpRequest): Promise<HttpResponse> {
  const grace = request.query.get('grace');
  let graceMs = DEFAULT_GRACE_MS;
  try {
    if (grace !== null) graceMs = parseDuration(grace);
  } catch (error) {
    throw fail('UNSUPPORTED', (error as Error).message, null, { status: 400 });
  }
  const dryRun = request.query.get('dryRun') === 'true';
  return json(200, await registry.gc.run({ graceMs, dryRun, deadline: Date.now() + GC_BUDGET_MS }));
}
