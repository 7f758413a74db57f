/**
 * Routes requests to handlers with the OCI path grammar (repository names contain slashes, so
 * the suffix after the name decides the route) and renders every failure as OCI error JSON.
 */
import { ErrorCodes, fail, RegistryError } from '../core/errors.js';
import { parseRepositoryName } from '../core/grammar.js';
import type { Registry } from '../core/registry.js';
import { deleteBlob, getBlob, headBlob } from './blobs.js';
import { base, listReferrers, listRepositories, listTags } from './listings.js';
import { deleteManifest, getManifest, headManifest, putManifest } from './manifests.js';
import { json, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';
import { appendChunk, cancelUpload, finishUpload, startUpload, uploadStatus } from './uploads.js';

type Handler = (registry: Registry, request: HttpRequest, params: RouteParams) => Promise<HttpResponse>;

interface Route {
  pattern: RegExp;
  methods: Record<string, Handler>;
}

const routes: Route[] = [
  { pattern: /^\/v2\/?$/, methods: { GET: base } },
  { pattern: /^\/v2\/_catalog$/, methods: { GET: listRepositories } },
  {
    pattern: /^\/v2\/(?<name>.+)\/blobs\/uploads(?:\/(?<id>[^/]*))?$/,
    methods: { POST: startUpload, GET: uploadStatus, PATCH: appendChunk, PUT: finishUpload, DELETE: cancelUpload },
  },
  { pattern: /^\/v2\/(?<name>.+)\/blobs\/(?<digest>[^/]+)$/, methods: { HEAD: headBlob, GET: getBlob, DELETE: deleteBlob } },
  {
    pattern: /^\/v2\/(?<name>.+)\/manifests\/(?<reference>[^/]+)$/,
    methods: { HEAD: headManifest, GET: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  { pattern: /^\/v2\/(?<name>.+)\/tags\/list$/, methods: { GET: listTags } },
  { pattern: /^\/v2\/(?<name>.+)\/referrers\/(?<digest>[^/]+)$/, methods: { GET: listReferrers } },
];

/** Headers on every response (the reference registry's version header, which docker checks). */
const COMMON_HEADERS = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/** Answers one request; never throws. `onError` receives failures that are not the client's fault. */
export async function route(registry: Registry, request: HttpRequest, onError: (error: unknown) => void = console.error): Promise<HttpResponse> {
  let response: HttpResponse;
  try {
    response = await dispatch(registry, request);
  } catch (error) {
    if (!(error instanceof RegistryError)) onError(error);
    response = errorResponse(error);
  }
  response.headers = { ...COMMON_HEADERS, ...response.headers };
  if (request.method === 'HEAD') delete response.body;
  return response;
}

async function dispatch(registry: Registry, request: HttpRequest): Promise<HttpResponse> {
  const path = decodePath(request.path);
  for (const { pattern, methods } of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    // HEAD is GET without a body wherever no cheaper HEAD handler exists (RFC 9110 §9.3.2).
    const handler = methods[request.method] ?? (request.method === 'HEAD' ? methods.GET : undefined);
    if (!handler) throw fail('UNSUPPORTED', `method ${request.method.slice(0, 10)} is not allowed here`);
    const params = { ...match.groups } as RouteParams;
    if (params.name !== undefined) parseRepositoryName(params.name);
    return handler(registry, request, params);
  }
  throw fail('UNSUPPORTED', 'no such endpoint', { path: path.slice(0, 200) }, { status: 404 });
}

/** Percent-decodes the path so `%2e%2e` meets the grammar as `..`; undecodable paths are refused. */
function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    throw fail('NAME_INVALID', 'path is not valid percent-encoding');
  }
}

/** OCI error JSON for a failure; unexpected errors become a 500 without details. */
export function errorResponse(error: unknown): HttpResponse {
  const failure = error instanceof RegistryError ? error : new RegistryError('INTERNAL', ErrorCodes.INTERNAL.message);
  const entry = { code: failure.code, message: failure.message, detail: failure.detail ?? null };
  return json(failure.status, { errors: [entry] }, failure.headers);
}
