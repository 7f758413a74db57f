/**
 * The web interface: server-rendered pages on the registry's own host, for every path outside
 * `/v2`, `/v1` and `/token` (functions/http/router.ts). Reading works without JavaScript; the
 * only script (`/-/app.js`) adds copy buttons and confirmations.
 *
 * | route | page or action |
 * |---|---|
 * | `GET /?q=&sort=&page=` | repositories the viewer may pull: search, sort, paging |
 * | `GET /r/<name>?page=` | a repository: tags, sizes, platforms, pull commands; settings for admins |
 * | `GET /r/<name>/-/manifests/<reference>` | an image or index: layers, config, platforms, referrers |
 * | `POST /r/<name>/-/delete` | deletes `reference` (tag or digest; the `delete` action) |
 * | `POST /r/<name>/-/settings` | sets visibility and description (registry admins) |
 * | `GET /admin`, `POST /admin/<action>` | storage chart, accounts, immutable-tag and retention rules (registry admins) |
 * | `GET|POST /login`, `POST /logout` | sign-in (users, not robots; the login throttle applies) |
 *
 * `-` is no repository path component (distribution-spec grammar), so `/-/` ends every name.
 * Sessions are sealed cookies (Auth.signIn); every POST carries the session's CSRF token (the
 * sign-in form: a random one from its own cookie, double-submitted) and is refused without it.
 */
import { timingSafeEqual, randomBytes } from 'node:crypto';
import { accountName, ROBOT_PREFIX, ROLES, type Account, type Role } from '../auth/accounts.js';
import { generateRobotToken, newAccount } from '../auth/passwords.js';
import type { Caller } from '../auth/service.js';
import { readLimited } from '../core/body.js';
import { fail, RegistryError } from '../core/errors.js';
import { isRepositoryName, lookupReference, parseReference } from '../core/grammar.js';
import { checkRepositoryPattern } from '../core/immutable.js';
import type { Registry } from '../core/registry.js';
import { RETENTION_KINDS, retentionRule, type RetentionKind } from '../core/retention.js';
import { realmOf } from '../http/realm.js';
import type { Trail } from '../http/audit.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import { ASSETS } from './assets.js';
import type { Html } from './html.js';
import { adminPage, errorPage, imagePage, loginPage, repositoriesPage, repositoryPage, type AdminData, type Viewer } from './pages.js';
import { imageOf, referrersOf, repositoryList, SORTS, tagList, TextBudget, visibleRepository, type Sort } from './views.js';

const SESSION_COOKIE = 'berth_session';
const CSRF_COOKIE = 'berth_csrf';
/** Form bodies are small: names, a description, a password. */
const MAX_FORM_BYTES = 16 * 1024;

/**
 * No script but the interface's own file, no inline script or style, no framing, forms only to
 * this host (CSP Level 3); the chart is inline SVG, which needs no source.
 */
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

/**
 * What the page after a form says it did, by the `done` parameter of the redirect: fixed texts,
 * so that a crafted link cannot make the page say anything else.
 */
const NOTICES: Record<string, string | undefined> = Object.assign(Object.create(null), {
  tag: 'The tag was deleted.',
  manifest: 'The manifest and its tags were deleted.',
  settings: 'Settings saved.',
});

/** One request as the pages see it. */
interface Visit {
  registry: Registry;
  request: HttpRequest;
  caller: Caller;
  account?: Account;
  viewer: Viewer;
  /** A cookie to set with the response (a new visitor's CSRF token). */
  cookie?: string;
  form?: URLSearchParams;
}


/** Answers one request for the interface; never throws. `onError` receives failures that are not the visitor's. */
export async function serveWeb(registry: Registry, request: HttpRequest, onError: (error: unknown) => void, trail?: Trail): Promise<HttpResponse> {
  const asset = ASSETS[request.path];
  if (asset && (request.method === 'GET' || request.method === 'HEAD')) {
    return { status: 200, headers: { ...SECURITY_HEADERS, 'Content-Type': asset.type, 'Content-Length': String(asset.body.length), 'Cache-Control': 'public, max-age=300' }, body: asset.body };
  }
  let visit: Visit | undefined;
  try {
    visit = await start(registry, request);
    return await dispatch(visit, decodePath(request.path), trail);
  } catch (error) {
    if (!(error instanceof RegistryError)) onError(error);
    const failure = error instanceof RegistryError ? error : new RegistryError('INTERNAL', 'internal server error');
    const viewer = visit?.viewer ?? anonymousViewer(registry, request);
    const response = page(failure.status, errorPage(viewer, failure.status, failure.message), visit?.cookie);
    if (failure.headers?.['Retry-After']) response.headers['Retry-After'] = failure.headers['Retry-After'];
    return response;
  }
}

async function dispatch(visit: Visit, path: string, trail?: Trail): Promise<HttpResponse> {
  const { method } = visit.request;
  const get = method === 'GET' || method === 'HEAD';
  if (method === 'POST') {
    if (trail) audit(visit, path, trail);
    visit.form = await readForm(visit);
    if (trail) auditForm(visit.form, path, trail);
  }
  else if (!get) throw fail('UNSUPPORTED', `method ${method.slice(0, 10)} is not allowed here`);
  if (path === '/' && get) return repositories(visit);
  if (path === '/login') return get ? page(200, loginPage(visit.viewer), visit.cookie) : signIn(visit);
  if (path === '/logout' && !get) return signOut(visit);
  if (path === '/admin' && get) return admin(visit, {});
  if (path.startsWith('/admin/') && !get) return adminAction(visit, path.slice('/admin/'.length));
  const repository = /^\/r\/(?<name>.+?)(?:\/-\/(?<rest>.*))?$/.exec(path)?.groups;
  if (repository && isRepositoryName(repository.name)) {
    const { name, rest } = repository;
    if (rest === undefined && get) return repositoryView(visit, name);
    if (rest?.startsWith('manifests/') && get) return imageView(visit, name, rest.slice('manifests/'.length));
    if (rest === 'delete' && !get) return deleteReference(visit, name);
    if (rest === 'settings' && !get) return settings(visit, name);
  }
  throw fail('NAME_UNKNOWN', 'no such page', null, { status: 404 });
}

/**
 * Every form post changes something (or tries to): the audit trail gets it as `web.<what>` (a
 * sign-in as `login`), with the account and the repository, even when the form is refused.
 */
function audit(visit: Visit, path: string, trail: Trail): void {
  const repository = /^\/r\/(.+?)\/-\/(delete|settings)$/.exec(path);
  const admin = /^\/admin\/(.+)$/.exec(path)?.[1];
  if (path === '/login') trail.action = 'login';
  else if (repository) trail.action = `web.${repository[2]}`;
  else if (admin && Object.hasOwn(ADMIN_ACTIONS, admin)) trail.action = `web.admin.${admin}`;
  else return;
  trail.account = visit.account?.name;
  if (repository) trail.params = { name: repository[1] };
}

/** What only the form tells: the name a sign-in tried, the tag or digest a delete names. */
function auditForm(form: URLSearchParams, path: string, trail: Trail): void {
  if (path === '/login') trail.note.account = form.get('name') ?? undefined;
  if (trail.params && form.has('reference')) trail.params.reference = form.get('reference')!;
}

/** Who is visiting (session cookie) and the CSRF token their forms carry. */
async function start(registry: Registry, request: HttpRequest): Promise<Visit> {
  const cookies = parseCookies(request.headers.cookie);
  const sealed = cookies.get(SESSION_COOKIE);
  const session = sealed ? await registry.auth.session(sealed) : undefined;
  // A session that no longer opens (expired, revoked) is ignored; signing in replaces it.
  let csrf = session?.csrf ?? cookies.get(CSRF_COOKIE);
  let set: string | undefined;
  if (!csrf) {
    csrf = randomBytes(24).toString('base64url');
    set = cookie(request, CSRF_COOKIE, csrf);
  }
  const caller = registry.auth.callerOf(session?.account);
  const viewer: Viewer = { ...anonymousViewer(registry, request), user: session?.account.name, admin: caller.mayAdminister(), csrf };
  return { registry, request, caller, account: session?.account, viewer, cookie: set };
}

function anonymousViewer(registry: Registry, request: HttpRequest): Viewer {
  return { admin: false, signIn: registry.auth.mode === 'required', csrf: '', host: realmOf(request).host };
}

/** The form of a POST, refused (403) unless it carries this visit's CSRF token and, when the browser names one, this origin. */
async function readForm(visit: Visit): Promise<URLSearchParams> {
  const { request, viewer } = visit;
  const origin = request.headers.origin;
  const self = `${realmOf(request).scheme}://${realmOf(request).host}`;
  if (origin !== undefined && origin !== self) throw fail('DENIED', 'form sent from another site');
  const type = request.headers['content-type']?.split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw fail('UNSUPPORTED', 'forms are sent as application/x-www-form-urlencoded', null, { status: 415 });
  const form = new URLSearchParams((await readLimited(request.body, MAX_FORM_BYTES, 'form')).toString('utf8'));
  const token = Buffer.from(form.get('csrf') ?? '');
  const expected = Buffer.from(viewer.csrf);
  // A new visitor's token was made for this very response: it cannot be the one sent.
  const fresh = visit.cookie !== undefined;
  if (fresh || token.length !== expected.length || !timingSafeEqual(token, expected)) {
    throw fail('DENIED', 'the form has expired or did not come from this site; reload the page and try again');
  }
  return form;
}

async function repositories(visit: Visit): Promise<HttpResponse> {
  const { query } = visit.request;
  const term = (query.get('q') ?? '').slice(0, 200);
  const requested = query.get('sort') as Sort;
  const sort = SORTS.includes(requested) ? requested : 'match';
  const list = await repositoryList(visit.registry, visit.caller, term, sort, pageNumber(query));
  return page(200, repositoriesPage(visit.viewer, term, sort, list), visit.cookie);
}

async function repositoryView(visit: Visit, name: string): Promise<HttpResponse> {
  const info = await visibleRepository(visit.registry, visit.caller, name);
  const tags = await tagList(visit.registry, name, pageNumber(visit.request.query));
  const rights = { delete: await visit.caller.may(name, 'delete') };
  const notice = NOTICES[visit.request.query.get('done') ?? ''];
  return page(200, repositoryPage(visit.viewer, info, tags, rights, notice), visit.cookie);
}

async function imageView(visit: Visit, name: string, reference: string): Promise<HttpResponse> {
  await visibleRepository(visit.registry, visit.caller, name);
  const budget = new TextBudget();
  const image = await imageOf(visit.registry, name, lookupReference(reference), budget);
  const referrers = await referrersOf(visit.registry, name, image.digest, budget);
  const rights = { delete: await visit.caller.may(name, 'delete') };
  return page(200, imagePage(visit.viewer, name, reference, image, referrers, rights), visit.cookie);
}

async function deleteReference(visit: Visit, name: string): Promise<HttpResponse> {
  await visibleRepository(visit.registry, visit.caller, name);
  if (!(await visit.caller.may(name, 'delete'))) throw fail('DENIED', `your account may not delete in ${name}`);
  const reference = field(visit, 'reference');
  // A pull-through cache's repositories are read-only here too.
  await visit.registry.cache.refuseWrites(name);
  await visit.registry.repositories.remove(name, parseReference(reference));
  return seeOther(`${repositoryPath(name)}?done=${reference.includes(':') ? 'manifest' : 'tag'}`, visit.cookie);
}

async function settings(visit: Visit, name: string): Promise<HttpResponse> {
  requireAdmin(visit);
  const visibility = field(visit, 'visibility');
  if (visibility !== 'public' && visibility !== 'private') throw fail('UNSUPPORTED', 'visibility is public or private', null, { status: 400 });
  await visit.registry.repositories.info(name);
  await visit.registry.repositories.setVisibility(name, visibility);
  await visit.registry.repositories.describe(name, field(visit, 'description').trim());
  return seeOther(`${repositoryPath(name)}?done=settings`, visit.cookie);
}

async function signIn(visit: Visit): Promise<HttpResponse> {
  const { registry, request } = visit;
  if (registry.auth.mode !== 'required') return seeOther('/', visit.cookie);
  const name = field(visit, 'name').trim();
  try {
    const session = await registry.auth.signIn(name, field(visit, 'password'), request.sourceIp);
    return seeOther('/', cookie(request, SESSION_COOKIE, session.sealed));
  } catch (error) {
    if (!(error instanceof RegistryError) || error.status === 500) throw error;
    const response = page(error.status, loginPage(visit.viewer, error.message, name), visit.cookie);
    if (error.headers?.['Retry-After']) response.headers['Retry-After'] = error.headers['Retry-After'];
    return response;
  }
}

function signOut(visit: Visit): HttpResponse {
  return seeOther('/', cookie(visit.request, SESSION_COOKIE, '', 0));
}

async function admin(visit: Visit, extra: Pick<AdminData, 'created' | 'notice'>, status = 200): Promise<HttpResponse> {
  requireAdmin(visit);
  const { repositories, accounts } = visit.registry;
  const [usage, list, rules] = await Promise.all([repositories.usage(), accounts.listAccounts(), repositories.rules()]);
  return page(status, adminPage(visit.viewer, { usage, accounts: list, rules, ...extra }), visit.cookie);
}

/** The admin page's forms: accounts (a robot's token is shown in this one response) and rules. */
const ADMIN_ACTIONS: Record<string, (visit: Visit) => Promise<HttpResponse>> = {
  robots: (visit) => addAccount(visit, 'robot'),
  users: (visit) => addAccount(visit, 'user'),
  'accounts/remove': async (visit) => {
    const name = field(visit, 'name');
    if (name === visit.account?.name) throw fail('DENIED', 'you cannot remove your own account here');
    if (!(await visit.registry.accounts.deleteAccount(name))) throw fail('NAME_UNKNOWN', `no such account: ${name}`, null, { status: 404 });
    return admin(visit, { notice: `Removed ${name}` });
  },
  immutable: async (visit) => {
    const rule = await visit.registry.immutable.set(field(visit, 'pattern').trim(), words(field(visit, 'except')));
    return admin(visit, { notice: `Tags of ${rule.pattern} are immutable` });
  },
  'immutable/remove': async (visit) => {
    await visit.registry.immutable.remove(field(visit, 'pattern'));
    return admin(visit, { notice: `Tags of ${field(visit, 'pattern')} are mutable again` });
  },
  retention: async (visit) => {
    const kind = field(visit, 'kind') as RetentionKind;
    if (!RETENTION_KINDS.includes(kind)) throw fail('UNSUPPORTED', `a rule is one of ${RETENTION_KINDS.join(', ')}`, null, { status: 400 });
    const tags = field(visit, 'tags').trim();
    const rule = retentionRule(field(visit, 'pattern').trim(), kind, field(visit, 'value').trim(), kind === 'untaggedDays' || tags === '' ? undefined : tags);
    await visit.registry.retention.add(rule);
    return admin(visit, { notice: `Added retention rule ${rule.id}` });
  },
  'retention/remove': async (visit) => {
    if (!(await visit.registry.retention.remove(field(visit, 'id')))) throw fail('NAME_UNKNOWN', 'no such retention rule', null, { status: 404 });
    return admin(visit, { notice: `Removed retention rule ${field(visit, 'id')}` });
  },
};

async function adminAction(visit: Visit, action: string): Promise<HttpResponse> {
  requireAdmin(visit);
  const run = Object.hasOwn(ADMIN_ACTIONS, action) ? ADMIN_ACTIONS[action] : undefined;
  if (!run) throw fail('NAME_UNKNOWN', 'no such page', null, { status: 404 });
  return run(visit);
}

/** Adds a user (with the password given) or a robot (with a new token, shown in this response only). */
async function addAccount(visit: Visit, kind: Account['kind']): Promise<HttpResponse> {
  const { accounts } = visit.registry;
  const parsed = accountName.safeParse(field(visit, 'name').trim());
  if (!parsed.success) throw fail('UNSUPPORTED', parsed.error.issues[0].message, null, { status: 400 });
  const name = (kind === 'robot' ? ROBOT_PREFIX : '') + parsed.data;
  const role = field(visit, 'role') as Role;
  if (!ROLES.includes(role)) throw fail('UNSUPPORTED', `role is one of ${ROLES.join(', ')}`, null, { status: 400 });
  const patterns = words(field(visit, 'repositories')).map(checkRepositoryPattern);
  if (await accounts.getAccount(name)) throw fail('DENIED', `${name} exists already`, null, { status: 409 });
  const secret = kind === 'robot' ? generateRobotToken() : field(visit, 'password');
  if (kind === 'user' && secret.length < 8) throw fail('UNSUPPORTED', 'a password has at least 8 characters', null, { status: 400 });
  await accounts.putAccount(await newAccount(kind, name, role, patterns, secret));
  return kind === 'robot' ? admin(visit, { created: { name, token: secret } }, 201) : admin(visit, { notice: `Added user ${name}` }, 201);
}

/** Space- or comma-separated entries of a form field. */
function words(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

function requireAdmin(visit: Visit): void {
  if (!visit.caller.mayAdminister()) {
    throw fail('DENIED', visit.account || !visit.viewer.signIn ? 'only registry administrators may do this' : 'sign in as a registry administrator first', null, { status: visit.account ? 403 : 401 });
  }
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    throw fail('NAME_UNKNOWN', 'no such page', null, { status: 404 });
  }
}

function field(visit: Visit, name: string): string {
  return visit.form?.get(name) ?? '';
}

function pageNumber(query: URLSearchParams): number {
  const page = Number.parseInt(query.get('page') ?? '1', 10);
  return Number.isSafeInteger(page) && page > 0 ? page : 1;
}

function repositoryPath(name: string): string {
  return `/r/${name}`;
}

function page(status: number, body: Html, setCookie: string | undefined): HttpResponse {
  const bytes = Buffer.from(body.text);
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': String(bytes.length),
    // Pages show what one account may see: never from a shared cache.
    'Cache-Control': 'no-store',
  };
  if (setCookie) headers['Set-Cookie'] = setCookie;
  return { status, headers, body: bytes };
}

/** 303 after a form: the browser GETs the result, and reloading it sends nothing again. */
function seeOther(location: string, setCookie: string | undefined): HttpResponse {
  const headers: Record<string, string> = { ...SECURITY_HEADERS, Location: location, 'Content-Length': '0', 'Cache-Control': 'no-store' };
  if (setCookie) headers['Set-Cookie'] = setCookie;
  return { status: 303, headers };
}

/**
 * A cookie only this host's pages send back, never to scripts or other sites; `Secure` over
 * HTTPS. One per response at most: responses have one value per header name (http/types.ts).
 */
function cookie(request: HttpRequest, name: string, value: string, maxAge?: number): string {
  const attributes = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (realmOf(request).scheme === 'https') attributes.push('Secure');
  if (maxAge !== undefined) attributes.push(`Max-Age=${maxAge}`);
  return attributes.join('; ');
}

function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return cookies;
}
