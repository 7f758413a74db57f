/**
 * Routes requests to handlers with the OCI path grammar (repository names contain slashes, so
 * the suffix after the name decides the route) and renders every failure as OCI error JSON.
 */
import { ErrorCodes, fail, RegistryError } from '../core/errors.js';
import { isRepositoryName, parseRepositoryName } from '../core/grammar.js';
import type { Registry } from '../core/registry.js';
import { deleteBlob, getBlob, headBlob } from './blobs.js';
import { cancelDirect, completeDirect, directParts, directStatus, startDirect } from './direct.js';
import { base, listReferrers, listRepositories, listTags } from './listings.js';
import { deleteManifest, getManifest, headManifest, putManifest } from './manifests.js';
import { ping, search } from './search.js';
import { getToken, postToken } from './token.js';
import { json, type AuthorizedRequest, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';
import type { Access } from '../auth/access.js';
import { ADMIN_SCOPE, type Caller } from '../auth/service.js';
import { adminCollect, adminDeleteRepository, adminRepositories, adminTags, adminUsage } from './admin.js';
import { realmOf } from './realm.js';
import { isWebPath } from '../web/paths.js';
import { appendChunk, cancelUpload, finishUpload, startUpload, uploadStatus } from './uploads.js';
import { auditLogger, auditRecord, countedBody, startTrail, type AuditSink, type Trail } from './audit.js';

type Handler = (registry: Registry, request: AuthorizedRequest, params: RouteParams) => Promise<HttpResponse>;
/**
 * What a request to an endpoint needs (token scope); `public` endpoints need no caller at all,
 * `identify` ones serve anyone but answer according to who the caller is.
 */
type Needs = ((params: RouteParams) => Access[]) | 'public' | 'identify';
/** Scopes a request can use without needing them, named in its challenge (a mount's source). */
type Wants = (request: HttpRequest) => Access[];
type Endpoint = [Handler, Needs, Wants?];

interface Route {
  pattern: RegExp;
  methods: Record<string, Endpoint>;
}

const on = (action: string) => (params: RouteParams): Access[] => [{ type: 'repository', name: params.name, actions: [action] }];
const pull = on('pull');
const push = on('push');
const remove = on('delete');
const nothing = () => [];
const browse = (): Access[] => [{ type: 'registry', name: 'catalog', actions: ['*'] }];
const administer = (): Access[] => [{ ...ADMIN_SCOPE, actions: [...ADMIN_SCOPE.actions] }];
const mountSource = (request: HttpRequest): Access[] => {
  const from = request.query.get('from');
  return request.query.has('mount') && from !== null && isRepositoryName(from) ? [{ type: 'repository', name: from, actions: ['pull'] }] : [];
};

const routes: Route[] = [
  { pattern: /^\/token$/, methods: { GET: [getToken, 'public'], POST: [postToken, 'public'] } },
  { pattern: /^\/v1\/_ping$/, methods: { GET: [ping, 'public'] } },
  { pattern: /^\/v1\/search$/, methods: { GET: [search, 'identify'] } },
  { pattern: /^\/v2\/?$/, methods: { GET: [base, nothing] } },
  { pattern: /^\/v2\/_catalog$/, methods: { GET: [listRepositories, browse] } },
  // Admin routes (README, "Repository management"): `_berth` is no repository name, so no route below can take them.
  { pattern: /^\/v2\/_berth\/repositories$/, methods: { GET: [adminRepositories, administer] } },
  { pattern: /^\/v2\/_berth\/repositories\/(?<name>.+)\/tags$/, methods: { GET: [adminTags, administer] } },
  { pattern: /^\/v2\/_berth\/repositories\/(?<name>.+)$/, methods: { DELETE: [adminDeleteRepository, administer] } },
  { pattern: /^\/v2\/_berth\/usage$/, methods: { GET: [adminUsage, administer] } },
  { pattern: /^\/v2\/_berth\/gc$/, methods: { POST: [adminCollect, administer] } },
  { pattern: /^\/v2\/(?<name>.+)\/_berth\/uploads\/?$/, methods: { POST: [startDirect, push] } },
  { pattern: /^\/v2\/(?<name>.+)\/_berth\/uploads\/(?<id>[0-9a-f-]{36})$/, methods: { GET: [directStatus, push], DELETE: [cancelDirect, push] } },
  { pattern: /^\/v2\/(?<name>.+)\/_berth\/uploads\/(?<id>[0-9a-f-]{36})\/parts$/, methods: { GET: [directParts, push] } },
  { pattern: /^\/v2\/(?<name>.+)\/_berth\/uploads\/(?<id>[0-9a-f-]{36})\/complete$/, methods: { POST: [completeDirect, push] } },
  {
    pattern: /^\/v2\/(?<name>.+)\/blobs\/uploads(?:\/(?<id>[^/]*))?$/,
    methods: {
      POST: [startUpload, push, mountSource],
      GET: [uploadStatus, push],
      PATCH: [appendChunk, push],
      PUT: [finishUpload, push],
      DELETE: [cancelUpload, push],
    },
  },
  { pattern: /^\/v2\/(?<name>.+)\/blobs\/(?<digest>[^/]+)$/, methods: { HEAD: [headBlob, pull], GET: [getBlob, pull], DELETE: [deleteBlob, remove] } },
  {
    pattern: /^\/v2\/(?<name>.+)\/manifests\/(?<reference>[^/]+)$/,
    methods: { HEAD: [headManifest, pull], GET: [getManifest, pull], PUT: [putManifest, push], DELETE: [deleteManifest, remove] },
  },
  { pattern: /^\/v2\/(?<name>.+)\/tags\/list$/, methods: { GET: [listTags, pull] } },
  { pattern: /^\/v2\/(?<name>.+)\/referrers\/(?<digest>[^/]+)$/, methods: { GET: [listReferrers, pull] } },
];

/** What each state-changing endpoint does, as the audit trail names it (http/audit.ts refines some by outcome). */
const ACTIONS = new Map<Handler, string>([
  [startUpload, 'blob.upload.start'],
  [appendChunk, 'blob.upload.chunk'],
  [finishUpload, 'blob.push'],
  [cancelUpload, 'blob.upload.cancel'],
  [startDirect, 'blob.upload.start'],
  [completeDirect, 'blob.push'],
  [cancelDirect, 'blob.upload.cancel'],
  [deleteBlob, 'blob.delete'],
  [putManifest, 'manifest.push'],
  [deleteManifest, 'manifest.delete'],
  [adminDeleteRepository, 'repository.delete'],
  [adminCollect, 'gc'],
]);
/**
 * Pulls a Docker Hub mirror rule may serve under `docker.io/`. Not a blob HEAD: pushes ask it of
 * repositories that do not exist yet, and an answer from Docker Hub would make them skip uploads.
 */
const MIRRORED_READS = new Set<Handler>([headManifest, getManifest, getBlob, listTags]);

/** Headers on every response (the reference registry's version header, which docker checks). */
const COMMON_HEADERS = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/** Where the router reports: failures that are not the client's fault, and the audit trail. */
export interface RouteSinks {
  onError?: (error: unknown) => void;
  /** Default: Powertools' Logger on stdout (http/audit.ts). */
  audit?: AuditSink;
}

let defaultAudit: AuditSink | undefined;

/** Answers one request and writes its audit record, if it changed anything; never throws. */
export async function route(registry: Registry, request: HttpRequest, sinks: RouteSinks = {}): Promise<HttpResponse> {
  const trail = startTrail();
  let response: HttpResponse;
  // The request as seen from the client: behind the front door, with the viewer's address.
  let seen = request;
  try {
    seen = { ...request, sourceIp: await viewerAddress(registry, request) };
    // A host name outside BERTH_HOSTS is refused (421) before anything, web pages included.
    realmOf(request, registry.hosts);
    // Everything outside the registry's APIs is the web interface (functions/web), on the same host.
    response = isWebPath(request.path)
      ? await (await import('../web/handler.js')).serveWeb(registry, seen, sinks.onError ?? console.error, trail)
      : await dispatch(registry, { ...seen, body: countedBody(request.body, trail) }, trail);
  } catch (error) {
    if (!(error instanceof RegistryError)) (sinks.onError ?? console.error)(error);
    response = errorResponse(error);
  }
  response.headers = { ...COMMON_HEADERS, ...response.headers };
  if (request.method === 'HEAD') delete response.body;
  const record = auditRecord(seen, trail, response);
  if (record) (sinks.audit ?? (defaultAudit ??= auditLogger()))(record);
  return response;
}

async function dispatch(registry: Registry, request: HttpRequest, trail: Trail): Promise<HttpResponse> {
  const path = decodePath(request.path);
  for (const { pattern, methods } of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    // HEAD is GET without a body wherever no cheaper HEAD handler exists (RFC 9110 §9.3.2).
    const endpoint = methods[request.method] ?? (request.method === 'HEAD' ? methods.GET : undefined);
    if (!endpoint) {
      const allowed = [...Object.keys(methods), ...('GET' in methods && !('HEAD' in methods) ? ['HEAD'] : [])];
      throw fail('UNSUPPORTED', `method ${request.method.slice(0, 10)} is not allowed here`, null, { headers: { Allow: allowed.join(', ') } });
    }
    const [handler, needs, wants] = endpoint;
    trail.action = ACTIONS.get(handler);
    // Optional groups that did not take part (an upload URL without an id) are empty, not undefined.
    const params = Object.fromEntries(Object.entries(match.groups ?? {}).map(([k, v]) => [k, v ?? ''])) as RouteParams;
    trail.params = params;
    if (params.name !== undefined) parseRepositoryName(params.name);
    const realm = realmOf(request, registry.hosts);
    const authorization = request.headers.authorization;
    const caller = needs === 'public' ? PUBLIC : await registry.auth.caller(authorization, realm, request.sourceIp);
    trail.account = caller.account;
    // Docker's registry-mirrors ask for Docker Hub's names as they are (core/cache.ts): such a read
    // is served from, and checked against, the repository that holds it; the challenge names the name asked.
    const asked = params.name;
    if (MIRRORED_READS.has(handler)) params.name = await registry.cache.pullName(asked);
    if (typeof needs === 'function') await registry.auth.require(caller, needs(params), realm, authorization, wants?.(request), needs({ ...params, name: asked }));
    if (needs === push || needs === remove) await registry.cache.refuseWrites(params.name);
    return handler(registry, { ...request, caller, realm, audit: trail.note }, params);
  }
  throw fail('UNSUPPORTED', 'no such endpoint', { path: path.slice(0, 200) }, { status: 404 });
}

/**
 * The address of the client: the transport's, or behind the front door the viewer address its
 * function forwards (API Gateway sees only CloudFront's), believed only with the distribution's
 * proof, since anyone can call API Gateway's own endpoint with any header.
 */
async function viewerAddress(registry: Registry, request: HttpRequest): Promise<string> {
  const forwarded = request.headers['x-berth-viewer-address'];
  // The proof needs the upload key: if it cannot be read now, the request still goes on (as CloudFront's).
  const proven = forwarded ? await registry.frontDoor.cameThrough(request.headers['x-berth-origin']).catch(() => false) : false;
  return proven ? forwarded! : request.sourceIp;
}

/** Endpoints without a caller (the token service) get one that may do nothing. */
const PUBLIC: Caller = { account: undefined, may: async () => false, mayPull: async () => false, mayBrowse: () => false, mayAdminister: () => false };

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
