/**
 * `docker search <registry>/<term>`: the v1 ping and search endpoints as docker's daemon calls
 * them (`GET /v1/_ping`, `GET /v1/search?q=&n=&page=`), answered for what the caller may pull.
 */
import { fail } from '../core/errors.js';
import type { Registry } from '../core/registry.js';
import { integerParam } from './pagination.js';
import { json, type AuthorizedRequest, type HttpResponse } from './types.js';

const MAX_RESULTS = 100;
const DEFAULT_RESULTS = 25;

/** GET /v1/_ping — docker checks it before a v1 search. */
export async function ping(): Promise<HttpResponse> {
  return json(200, { standalone: true }, { 'X-Docker-Registry-Standalone': 'true' });
}

/** GET /v1/search?q=<term>&n=<1..100>&page=<k> */
export async function search(registry: Registry, request: AuthorizedRequest): Promise<HttpResponse> {
  if (!request.caller.mayBrowse()) {
    throw registry.auth.challenge(request.realm, [{ type: 'registry', name: 'catalog', actions: ['search'] }], true);
  }
  const query = request.query.get('q') ?? '';
  if (query.length > 255) throw fail('UNSUPPORTED', 'the search term is longer than 255 characters', null, { status: 400 });
  const size = integerParam(request.query.get('n'), 'n', { fallback: DEFAULT_RESULTS, min: 1, max: MAX_RESULTS });
  const page = integerParam(request.query.get('page'), 'page', { fallback: 1, min: 1, max: Number.MAX_SAFE_INTEGER });
  const found = await registry.search.search(query, (repository) => request.caller.mayPull(repository), size, page);
  return json(200, {
    query,
    num_results: found.total,
    num_pages: Math.ceil(found.total / size),
    page,
    page_size: size,
    results: found.results.map((repository) => ({
      name: repository.name,
      description: repository.description ?? '',
      // Berth has no stars, official images or automated builds: these are the truthful values.
      star_count: 0,
      is_official: false,
      is_automated: false,
    })),
  });
}
