/**
 * Authentication and authorization of registry requests (Docker token authentication): who the
 * caller is (Bearer token, Basic credentials, or nobody), what they may do, the token service
 * behind `/token`, and the 401 challenge that sends clients there.
 */
import { randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import * as z from '../zod.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, RegistryError } from '../core/errors.js';
import type { AccountStore, MetadataStore, RepositoryInfo } from '../storage/ports.js';
import { allows, formatScope, merge, type Access } from './access.js';
import { repositoryActions, ROBOT_PREFIX, type Account } from './accounts.js';
import { verifyPassword } from './passwords.js';
import type { IssuedToken, TokenService } from './tokens.js';

/** `required`: every request needs a token or credentials; `off`: anonymous full access (local default, like registry:2). */
export type AuthMode = 'required' | 'off';

/** Names an account can have: a user name, or `robot$` and one (see accounts.ts). */
const ACCOUNT_NAME = /^(robot\$)?[a-z0-9][a-z0-9._-]{0,63}$/;

/** How long a web session lasts (ms): a working day; signing in again is cheap. */
export const SESSION_MS = 12 * 3600 * 1000;
const sessionClaims = z.object({ sub: z.string(), ver: z.number(), exp: z.number(), csrf: z.string() });

/** Most scopes one token request may ask for; each costs a repository read. */
const MAX_SCOPES = 20;

/**
 * Login attempts of one name from one source address per window: each is counted before its
 * password is checked, and only a right password gives its count back, so at most this many
 * guesses per window and address reach the check, however many arrive at once.
 */
export const MAX_LOGIN_FAILURES = 5;
/** The window in which failed logins are counted (ms). */
export const LOGIN_WINDOW_MS = 15 * 60 * 1000;
/**
 * How long an attempt waits while the window is full of attempts still being checked (a client
 * that logs in several times at once), and after how long it first asks again (then twice as
 * long each time): the others' outcome decides.
 */
const LOGIN_QUEUE_MS = 3000;
const LOGIN_RETRY_MS = 100;

/** Where the token service is, for challenges: built from the request's own scheme and host. */
export interface Realm {
  scheme: string;
  host: string;
}

/** The caller of one request and what it may do. */
export interface Caller {
  /** The authenticated account's name; undefined: anonymous, or no logins (`BERTH_AUTH=off`). */
  readonly account: string | undefined;
  /** Whether `action` on `repository` is allowed. */
  may(repository: string, action: string): Promise<boolean>;
  /** Whether the caller may pull `repository` (for filtering listings). */
  mayPull(repository: RepositoryInfo): Promise<boolean>;
  /** Whether the caller may list the catalog / search (`registry:catalog:*`). */
  mayBrowse(): boolean;
  /**
   * Whether the caller may administer the whole registry (`registry:berth:admin`: the `_berth`
   * admin routes): admins whose role covers every repository.
   */
  mayAdminister(): boolean;
}

const EVERYTHING: Caller = { account: undefined, may: async () => true, mayPull: async () => true, mayBrowse: () => true, mayAdminister: () => true };

/** The scope of the admin routes (`/v2/_berth/…`). */
export const ADMIN_SCOPE = { type: 'registry', name: 'berth', actions: ['admin'] } as const;

/** Admins without repository patterns administer the registry; an admin of `team/*` does not. */
function administers(account: Account | undefined): boolean {
  return account?.role === 'admin' && account.repositories.length === 0;
}

/** What `/token` answers (distribution "Token Authentication Specification", OAuth2 form). */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
}

/** Who calls and what they may do: the request-side checks and the `/token` service, on the account store. */
export class Auth {
  constructor(
    readonly mode: AuthMode,
    private readonly tokens: TokenService,
    private readonly accounts: AccountStore,
    private readonly metadata: MetadataStore,
    /**
     * The repository a pull of a name reads: another one for a Docker Hub mirror name
     * (core/cache.ts `pullName`), the name itself otherwise.
     */
    private readonly served: (repository: string) => Promise<string>,
  ) {}

  /**
   * Identifies the caller of a request from its `Authorization` header.
   * @throws RegistryError UNAUTHORIZED (with a challenge) for a bad token or bad credentials.
   */
  async caller(authorization: string | undefined, realm: Realm, source: string): Promise<Caller> {
    if (this.mode === 'off') return EVERYTHING;
    const [scheme, value] = splitAuthorization(authorization);
    if (scheme === 'bearer') {
      const { subject, access } = await this.tokens.verifyAccess(value, realm.host).catch(rethrowWith(this.challenge(realm, [])));
      let account: Promise<Account | undefined> | undefined;
      return {
        account: subject || undefined,
        may: async (repository, action) => allows(access, 'repository', repository, action),
        mayPull: async (repository) => this.permits((account ??= this.accountOf(subject)), repository, 'pull'),
        mayBrowse: () => allows(access, 'registry', 'catalog', '*') || allows(access, 'registry', 'catalog', 'search'),
        mayAdminister: () => allows(access, 'registry', 'berth', 'admin'),
      };
    }
    if (scheme !== undefined && scheme !== 'basic') throw this.challenge(realm, []);
    let account: Account | undefined;
    if (scheme === 'basic') account = await this.login(...decodeBasic(value), source).catch(rethrowWith(this.challenge(realm, [])));
    return this.callerOf(account);
  }

  /** What `account` (undefined: anonymous) may do, by its role and the repositories' visibility; everything while logins are off. */
  callerOf(account: Account | undefined): Caller {
    if (this.mode === 'off') return EVERYTHING;
    return {
      account: account?.name,
      may: async (repository, action) => this.permits(account, await this.repository(repository), action),
      mayPull: async (repository) => this.permits(account, repository, 'pull'),
      mayBrowse: () => true,
      mayAdminister: () => administers(account),
    };
  }

  /**
   * Signs a user in to the web interface (robots cannot): the password is checked by
   * {@link login}, throttle included. Returns the session, sealed for a cookie
   * ({@link TokenService.seal}: only this deployment can read or make one), and its CSRF token.
   * @throws RegistryError DENIED (robots), UNAUTHORIZED, TOOMANYREQUESTS.
   */
  async signIn(name: string, password: string, source: string): Promise<{ sealed: string; csrf: string; account: Account }> {
    if (name.startsWith(ROBOT_PREFIX)) throw fail('DENIED', 'robot accounts cannot sign in; they log in with their token from docker or CI');
    const account = await this.login(name, password, source);
    const csrf = randomBytes(24).toString('base64url');
    const claims: z.infer<typeof sessionClaims> = { sub: account.name, ver: account.credentialVersion, exp: Date.now() + SESSION_MS, csrf };
    return { sealed: await this.tokens.seal(JSON.stringify(claims)), csrf, account };
  }

  /**
   * The account and CSRF token of a sealed session; undefined when it is not one of this
   * deployment's, has expired, or its account is gone or changed credentials since (a new
   * password or `npx berth user revoke` ends every session).
   */
  async session(sealed: string): Promise<{ account: Account; csrf: string } | undefined> {
    const opened = await this.tokens.open(sealed);
    let claims;
    try {
      claims = opened === undefined ? undefined : sessionClaims.parse(JSON.parse(opened));
    } catch {
      return undefined;
    }
    if (!claims || claims.exp <= Date.now()) return undefined;
    const account = await this.accounts.getAccount(claims.sub);
    if (!account || account.kind !== 'user' || account.credentialVersion !== claims.ver) return undefined;
    return { account, csrf: claims.csrf };
  }

  /**
   * Checks that the caller has `needed`.
   * @param asked what the client asked for, as the challenge names it: `needed` itself, but for a
   *   read served from another repository (a Docker Hub mirror name, core/cache.ts `pullName`)
   *   the name the client knows; its token request for that name gets the served one too ({@link grant}).
   * @throws RegistryError UNAUTHORIZED with a challenge for `asked` and `wanted` (what the request
   *   can use without requiring it, such as pull on a mount's source): always without credentials
   *   (clients learn where the token service is from a 401 on their first request, even `/v2/`),
   *   and with `error="insufficient_scope"` when the caller lacks some of `needed`.
   */
  async require(
    caller: Caller,
    needed: readonly Access[],
    realm: Realm,
    authorization: string | undefined,
    wanted: readonly Access[] = [],
    asked: readonly Access[] = needed,
  ): Promise<void> {
    if (this.mode === 'off') return;
    if (authorization === undefined) throw this.challenge(realm, [...asked, ...wanted]);
    for (const access of needed) {
      const ok = access.type === 'registry' ? (access.name === 'catalog' ? caller.mayBrowse() : caller.mayAdminister()) : await everyAction(caller, access);
      if (!ok) throw this.challenge(realm, [...asked, ...wanted], true);
    }
  }

  /** `GET /token` with optional Basic credentials from `source` (the client's address): a token for what was asked and is allowed. */
  async tokenForBasic(authorization: string | undefined, scopes: Access[], audience: string, offline: boolean, source: string): Promise<TokenResponse> {
    const [scheme, value] = splitAuthorization(authorization);
    const account = scheme === 'basic' ? await this.login(...decodeBasic(value), source) : undefined;
    if (scheme !== undefined && scheme !== 'basic') throw fail('UNAUTHORIZED', 'the token service takes Basic credentials');
    return this.respond(account, scopes, audience, offline);
  }

  /** `POST /token`, OAuth2 `grant_type=password`, from `source` (the client's address). */
  async tokenForPassword(username: string, password: string, scopes: Access[], audience: string, offline: boolean, source: string): Promise<TokenResponse> {
    return this.respond(await this.login(username, password, source), scopes, audience, offline);
  }

  /** `POST /token`, OAuth2 `grant_type=refresh_token`; the refresh token stays valid until it expires or the account's credentials change (new password, `user revoke`, `robot rotate`). */
  async tokenForRefresh(refreshToken: string, scopes: Access[], audience: string): Promise<TokenResponse> {
    const { subject, credentialVersion } = await this.tokens.verifyRefresh(refreshToken, audience);
    const account = await this.accounts.getAccount(subject);
    if (!account || account.credentialVersion !== credentialVersion) throw fail('UNAUTHORIZED', 'invalid or expired token');
    const response = await this.respond(account, scopes, audience, false);
    return { ...response, refresh_token: refreshToken };
  }

  /**
   * Checks a name and password in constant time, slowing down guessing: the attempt is counted
   * for the name and `source` (the client's address, see {@link sourceKey}) before the password
   * is checked; after {@link MAX_LOGIN_FAILURES} failures within {@link LOGIN_WINDOW_MS}, 429
   * until the window ends. Per address, so that a stranger's guesses do not lock out a colleague
   * elsewhere; `npx berth user unlock` forgets them.
   * @throws RegistryError UNAUTHORIZED (same message whether or not the account exists), TOOMANYREQUESTS.
   */
  async login(name: string, password: string, source: string): Promise<Account> {
    if (!ACCOUNT_NAME.test(name)) {
      // No such account can exist: spend the same time, touch no storage with the name.
      await verifyPassword(password, undefined);
      throw fail('UNAUTHORIZED', 'invalid username or password');
    }
    // Robot tokens are 256-bit random, beyond guessing: counting their failures would only let
    // anyone lock a CI robot out.
    const counted = !name.startsWith(ROBOT_PREFIX);
    const address = sourceKey(source);
    const claim = counted ? await this.claimAttempt(name, address) : undefined;
    let account: Account | undefined;
    let valid: boolean;
    try {
      account = await this.accounts.getAccount(name);
      valid = await verifyPassword(password, account?.passwordHash);
    } catch (error) {
      // Not the caller's failure: the attempt does not count.
      if (claim) await this.accounts.releaseLoginAttempt(name, address, claim.resetAt).catch(() => undefined);
      throw error;
    }
    if (claim) await (valid ? this.accounts.releaseLoginAttempt(name, address, claim.resetAt) : this.accounts.recordLoginFailure(name, address, claim.resetAt));
    if (!valid) throw fail('UNAUTHORIZED', 'invalid username or password');
    return account!;
  }

  /**
   * Counts a login attempt before its password is checked.
   * @throws RegistryError TOOMANYREQUESTS once the window holds {@link MAX_LOGIN_FAILURES} failures,
   *   or when it stays full of attempts still being checked for {@link LOGIN_QUEUE_MS}.
   */
  private async claimAttempt(name: string, source: string): Promise<{ resetAt: number }> {
    const deadline = Date.now() + LOGIN_QUEUE_MS;
    for (let wait = LOGIN_RETRY_MS; ; wait *= 2) {
      const now = Date.now();
      const attempt = await this.accounts.claimLoginAttempt(name, source, now, LOGIN_WINDOW_MS, MAX_LOGIN_FAILURES);
      if (attempt.claimed) return attempt;
      if (attempt.failures >= MAX_LOGIN_FAILURES) throw tooMany('too many failed logins', attempt.resetAt - now);
      if (now >= deadline) throw tooMany('too many logins at once', 1000);
      // Jitter spreads the waiting attempts' retries apart.
      await sleep(Math.min(wait * (0.5 + Math.random()), deadline - now));
    }
  }

  /** 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`. */
  challenge(realm: Realm, needed: readonly Access[], insufficient = false): RegistryError {
    const parts = [`realm="${realm.scheme}://${realm.host}/token"`, `service="${realm.host}"`];
    if (needed.length > 0) parts.push(`scope="${needed.map(formatScope).join(' ')}"`);
    if (insufficient) parts.push('error="insufficient_scope"');
    const message = insufficient ? 'requested access to the resource is denied' : 'authentication required';
    return fail('UNAUTHORIZED', message, needed.length > 0 ? needed : null, { headers: { 'WWW-Authenticate': `Bearer ${parts.join(',')}` } });
  }

  private async respond(account: Account | undefined, scopes: Access[], audience: string, offline: boolean): Promise<TokenResponse> {
    const granted = await this.grant(account, scopes);
    const access = await this.tokens.issueAccess(account?.name ?? '', audience, granted);
    const refresh = offline && account ? await this.tokens.issueRefresh(account.name, audience, account.credentialVersion) : undefined;
    return toResponse(access, refresh);
  }

  /**
   * The intersection of what was asked and what `account` (or anonymous) is allowed; a pull of a
   * name served from another repository grants pull on that one too, when allowed there: the
   * read is checked against the repository it reads.
   */
  private async grant(account: Account | undefined, requested: Access[]): Promise<Access[]> {
    if (requested.length > MAX_SCOPES) throw fail('DENIED', `at most ${MAX_SCOPES} scopes per token request`, null, { status: 400 });
    if (this.mode === 'off') return requested;
    const granted: Access[] = [];
    for (const access of requested) {
      if (access.type === 'registry') {
        if (access.name === 'catalog') merge(granted, { ...access, actions: access.actions.filter((a) => a === '*' || a === 'search') });
        if (access.name === 'berth' && administers(account)) merge(granted, { ...access, actions: access.actions.filter((a) => a === 'admin') });
        continue;
      }
      const allowed = repositoryActions(account, access.name, (await this.repository(access.name)).visibility);
      const actions = access.actions.includes('*') ? allowed : access.actions.filter((a) => allowed.includes(a));
      if (actions.length > 0) merge(granted, { ...access, actions });
      const served = access.actions.some((a) => a === 'pull' || a === '*') ? await this.served(access.name) : access.name;
      if (served !== access.name && (await this.permits(account, await this.repository(served), 'pull'))) merge(granted, { type: 'repository', name: served, actions: ['pull'] });
    }
    return granted.filter((a) => a.actions.length > 0);
  }

  private async permits(account: Account | undefined | Promise<Account | undefined>, repository: RepositoryInfo, action: string): Promise<boolean> {
    return repositoryActions(await account, repository.name, repository.visibility).includes(action);
  }

  private async repository(name: string): Promise<RepositoryInfo> {
    return (await this.metadata.getRepository(name)) ?? { name, visibility: 'private' };
  }

  private async accountOf(subject: string): Promise<Account | undefined> {
    return subject ? this.accounts.getAccount(subject) : undefined;
  }
}

async function everyAction(caller: Caller, access: Access): Promise<boolean> {
  for (const action of access.actions) if (!(await caller.may(access.name, action))) return false;
  return true;
}

function splitAuthorization(header: string | undefined): [string | undefined, string] {
  if (!header) return [undefined, ''];
  const space = header.indexOf(' ');
  if (space < 0) return [header.toLowerCase(), ''];
  return [header.slice(0, space).toLowerCase(), header.slice(space + 1).trim()];
}

/** The user name of Basic credentials in `authorization` (never the password); undefined without them, or malformed. */
export function basicUserName(authorization: string | undefined): string | undefined {
  const [scheme, value] = splitAuthorization(authorization);
  if (scheme !== 'basic') return undefined;
  try {
    return decodeBasic(value)[0];
  } catch {
    return undefined;
  }
}

function decodeBasic(value: string): [string, string] {
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw fail('UNAUTHORIZED', 'invalid username or password');
  return [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

/** Replaces an UNAUTHORIZED failure with `challenge` so that the client learns where to log in. */
function rethrowWith(challenge: RegistryError) {
  return (error: unknown): never => {
    if (error instanceof RegistryError && error.code === 'UNAUTHORIZED') {
      throw new RegistryError('UNAUTHORIZED', error.message, null, 401, challenge.headers);
    }
    throw error;
  };
}

function tooMany(what: string, retryMs: number) {
  const seconds = Math.max(1, Math.ceil(retryMs / 1000));
  return fail('TOOMANYREQUESTS', `${what}; try again in ${seconds} s`, null, { headers: { 'Retry-After': String(seconds) } });
}

/**
 * The address login attempts are counted against: an IPv4 address (IPv4-mapped IPv6 included)
 * as it is, an IPv6 address by its /64 prefix (one host usually holds a whole /64, so counting
 * single addresses would give it 2^64 times the guesses), anything else as `unknown`.
 */
export function sourceKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return 'unknown';
  const [head, tail = ''] = address.toLowerCase().split('%')[0].split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/64`;
}

function toResponse(access: IssuedToken, refresh?: IssuedToken): TokenResponse {
  return {
    token: access.token,
    access_token: access.token,
    expires_in: access.expiresIn,
    issued_at: access.issuedAt,
    ...(refresh ? { refresh_token: refresh.token } : {}),
  };
}
