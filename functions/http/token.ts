/**
 * The token service (`/token`): GET with Basic credentials (docker: `service`, repeated `scope`,
 * `offline_token`, `client_id`, `account`) and POST with an OAuth2 form (containerd, buildkit:
 * `grant_type=password` or `refresh_token`), as the distribution project's "Token Authentication
 * Specification" and "OAuth2 Token Authentication" describe them.
 */
import { parseScopes } from '../auth/access.js';
import { basicUserName } from '../auth/service.js';
import { readLimited } from '../core/body.js';
import { fail } from '../core/errors.js';
import type { Registry } from '../core/registry.js';
import { json, type AuthorizedRequest, type HttpResponse } from './types.js';

/** Token responses must not be cached by intermediaries. */
const NO_STORE = { 'Cache-Control': 'no-store' };

/** GET /token?service=&scope=&offline_token= */
export async function getToken(registry: Registry, request: AuthorizedRequest): Promise<HttpResponse> {
  const { host } = request.realm;
  const scopes = parseScopes(request.query.getAll('scope'), host);
  const offline = request.query.get('offline_token') === 'true';
  noteLogin(request, basicUserName(request.headers.authorization));
  return json(200, await registry.auth.tokenForBasic(request.headers.authorization, scopes, host, offline, request.sourceIp), NO_STORE);
}

/** POST /token (application/x-www-form-urlencoded) */
export async function postToken(registry: Registry, request: AuthorizedRequest): Promise<HttpResponse> {
  const { host } = request.realm;
  const form = new URLSearchParams((await readLimited(request.body, 64 * 1024, 'token request')).toString('utf8'));
  const scopes = parseScopes(form.getAll('scope'), host);
  const grant = form.get('grant_type');
  if (grant === 'password') {
    const offline = form.get('access_type') === 'offline';
    noteLogin(request, form.get('username') ?? '');
    return json(200, await registry.auth.tokenForPassword(form.get('username') ?? '', form.get('password') ?? '', scopes, host, offline, request.sourceIp), NO_STORE);
  }
  if (grant === 'refresh_token') {
    return json(200, await registry.auth.tokenForRefresh(form.get('refresh_token') ?? '', scopes, host), NO_STORE);
  }
  throw fail('UNSUPPORTED', `unsupported grant_type: ${String(grant).slice(0, 40)}; use password or refresh_token`, null, { status: 400 });
}

/** A token request with credentials is a login, for the audit trail: by the name tried, whatever the outcome. */
function noteLogin(request: AuthorizedRequest, username: string | undefined): void {
  if (username === undefined) return;
  request.audit.action = 'login';
  request.audit.account = username;
}

