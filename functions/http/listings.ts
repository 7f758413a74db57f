/** Listing endpoints: base (end-1), tags (end-8), referrers (end-12), catalog. */
import { isRepositoryName, isTag, parseDigest } from '../core/grammar.js';
import { fail } from '../core/errors.js';
import { MediaTypes } from '../core/manifest.js';
import { isSealedPosition } from '../core/catalog.js';
import type { Registry } from '../core/registry.js';
import { linkHeader, parseLimit } from './pagination.js';
import { json, type AuthorizedRequest, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

/** GET /v2/ — the API version check every client starts with. */
export async function base(): Promise<HttpResponse> {
  return json(200, {});
}

/** GET /v2/<name>/tags/list?n=&last= */
export async function listTags(registry: Registry, request: HttpRequest, { name }: RouteParams): Promise<HttpResponse> {
  const limit = parseLimit(request.query.get('n'));
  const last = cursor(request, isTag, 'UNSUPPORTED');
  const page = await registry.manifests.tags(name, limit, last);
  return json(200, { name, tags: page.items }, linkHeader(`/v2/${name}/tags/list`, limit, page));
}

/** GET /v2/_catalog?n=&last= — `last` is a repository name, or a sealed position (see core/catalog.ts). */
export async function listRepositories(registry: Registry, request: AuthorizedRequest): Promise<HttpResponse> {
  const limit = parseLimit(request.query.get('n'));
  const last = cursor(request, (value) => isRepositoryName(value) || isSealedPosition(value), 'NAME_INVALID');
  const page = await registry.catalog.list(limit, last, (repository) => request.caller.mayPull(repository));
  return json(200, { repositories: page.items }, linkHeader('/v2/_catalog', limit, page));
}

/** GET /v2/<name>/referrers/<digest>?artifactType= — an image index, empty when there are none. */
export async function listReferrers(registry: Registry, request: HttpRequest, { name, digest }: RouteParams): Promise<HttpResponse> {
  const artifactType = request.query.get('artifactType') ?? undefined;
  const index = await registry.manifests.referrers(name, parseDigest(digest), artifactType);
  return {
    status: 200,
    headers: {
      'Content-Type': MediaTypes.ociIndex,
      'Content-Length': String(index.length),
      ...(artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {}),
    },
    body: index,
  };
}

/** `last` must be a name of the listed kind; anything else cannot be a position in the listing. */
function cursor(request: HttpRequest, valid: (value: string) => boolean, code: 'UNSUPPORTED' | 'NAME_INVALID'): string | undefined {
  const last = request.query.get('last');
  if (last === null) return undefined;
  if (!valid(last)) throw fail(code, `invalid last: ${last.slice(0, 100)}`, null, { status: 400 });
  return last;
}
