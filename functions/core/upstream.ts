/**
 * The HTTP client of the pull-through cache: talks the distribution API to one upstream registry
 * with its credentials. Anonymous, Basic (RFC 7617) and the Docker token flow (a 401 with
 * `WWW-Authenticate: Bearer realm=…,service=…`, a token fetched from the realm for the scope
 * `repository:<name>:pull` and kept until it expires; https://distribution.github.io/distribution/spec/auth/token/).
 * Redirects (to the upstream's own storage) are followed by hand so that credentials never go to
 * another origin, or handed back when the caller asks for them.
 */

/** The transport port: the shape of the global `fetch` (tests and Lambda use the real one). */
export type HttpFetch = (url: string, init: RequestInit) => Promise<Response>;

/** Credentials of an upstream registry. */
export interface UpstreamCredentials {
  username: string;
  password: string;
}

/** One upstream registry as a cache rule names it. */
export interface UpstreamTarget {
  /** The cache rule's prefix: tokens are kept per rule, as rules may log in as different users. */
  rule: string;
  /** Base URL, `https://host[:port]`. */
  base: string;
  /** Repository name on the upstream. */
  repository: string;
  /** Reads the credentials when the upstream asks for them; undefined: anonymous. */
  credentials?: () => Promise<UpstreamCredentials>;
}

/** The upstream could not be asked, or refused: the cache may fall back to what it holds. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    /** The upstream's HTTP status, when it answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** How long a token is kept when the token service does not say (its spec's default, seconds). */
const DEFAULT_TOKEN_SECONDS = 60;
/** A token is renewed this long before it expires (ms), so that no request carries a dying one. */
const TOKEN_MARGIN_MS = 10_000;
/** Redirects followed per request (the fetch standard's limit is 20; registries use one). */
const MAX_REDIRECTS = 5;
/** Time for an upstream to answer a manifest or token request, or start a blob (ms). */
const ANSWER_MS = 15_000;

/** A parsed `WWW-Authenticate` challenge. */
interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** A distribution API client for upstream registries, with a token cache shared by all of them. */
export class UpstreamClient {
  /** `Authorization` values by upstream base, repository and credentials, with their expiry (epoch ms). */
  private readonly authorizations = new Map<string, { value: string; expiresAt: number }>();

  constructor(private readonly fetch: HttpFetch) {}

  /**
   * Sends `GET`/`HEAD <base>/v2/<repository>/<path>`, authenticating as the upstream asks.
   * With `redirect: 'manual'` a redirect is returned (its `Location` absolute), else followed
   * without credentials when it leaves the upstream's origin.
   * @throws UpstreamError when the upstream cannot be reached, or refuses the credentials (401/403).
   */
  async request(target: UpstreamTarget, path: string, init: { method: 'GET' | 'HEAD'; headers?: Record<string, string>; redirect?: 'manual' | 'follow' }): Promise<Response> {
    const url = `${target.base}/v2/${target.repository}/${path}`;
    const key = `${target.rule} ${target.repository}`;
    let authorization = this.cached(key);
    let response = await this.send(url, init, authorization);
    if (response.status === 401) {
      const challenge = parseChallenge(response.headers.get('www-authenticate'));
      await response.body?.cancel();
      authorization = await this.authorize(target, challenge, key);
      response = await this.send(url, init, authorization);
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new UpstreamError(`${target.base} refused access to ${target.repository} (HTTP ${response.status})${target.credentials ? '' : ': the rule has no credentials'}`, response.status);
    }
    return response;
  }

  private cached(key: string): string | undefined {
    const entry = this.authorizations.get(key);
    return entry && entry.expiresAt > Date.now() ? entry.value : undefined;
  }

  /** The `Authorization` value the challenge asks for, kept for the next requests. */
  private async authorize(target: UpstreamTarget, challenge: Challenge | undefined, key: string): Promise<string> {
    const credentials = await target.credentials?.();
    const basic = credentials && `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    if (challenge?.scheme === 'basic' && basic) {
      this.authorizations.set(key, { value: basic, expiresAt: Number.POSITIVE_INFINITY });
      return basic;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) {
      throw new UpstreamError(`${target.base} asks for authentication Berth cannot give (${challenge?.scheme ?? 'no challenge'}${credentials ? '' : ', and the rule has no credentials'})`, 401);
    }
    const realm = new URL(challenge.params.realm);
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new UpstreamError(`${target.base} names a token realm that is not HTTP: ${realm.protocol}`, 401);
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', `repository:${target.repository}:pull`);
    const response = await this.fetchOrFail(realm.href, { headers: basic ? { Authorization: basic } : {}, redirect: 'follow', signal: AbortSignal.timeout(ANSWER_MS) });
    if (!response.ok) {
      await response.body?.cancel();
      throw new UpstreamError(`the token service of ${target.base} refused${credentials ? ` user ${credentials.username}` : ' anonymous access'} (HTTP ${response.status})`, response.status);
    }
    const body = (await response.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') throw new UpstreamError(`the token service of ${target.base} answered without a token`);
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const value = `Bearer ${token}`;
    this.authorizations.set(key, { value, expiresAt: Date.now() + seconds * 1000 - TOKEN_MARGIN_MS });
    return value;
  }

  /** Sends one request, following redirects by hand: credentials stay with the upstream's origin. */
  private async send(url: string, init: { method: string; headers?: Record<string, string>; redirect?: 'manual' | 'follow' }, authorization?: string): Promise<Response> {
    const origin = new URL(url).origin;
    let location = url;
    for (let hop = 0; ; hop++) {
      const sameOrigin = new URL(location).origin === origin;
      const headers = { ...init.headers, ...(authorization && sameOrigin ? { Authorization: authorization } : {}) };
      // Blob bodies may stream for long: only the wait for the answer's headers is bounded.
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new UpstreamError(`${origin} did not answer within ${ANSWER_MS / 1000} s`)), ANSWER_MS);
      const response = await this.fetchOrFail(location, { method: init.method, headers, redirect: 'manual', signal: controller.signal }).finally(() => clearTimeout(timer));
      const next = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || !next) return response;
      await response.body?.cancel();
      const absolute = new URL(next, location).href;
      if (init.redirect === 'manual') return new Response(null, { status: response.status, headers: { location: absolute } });
      if (hop >= MAX_REDIRECTS) throw new UpstreamError(`${origin} redirected more than ${MAX_REDIRECTS} times`);
      location = absolute;
    }
  }

  private async fetchOrFail(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetch(url, init);
    } catch (error) {
      if (error instanceof UpstreamError) throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new UpstreamError(`${new URL(url).origin} is unreachable: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
  }
}

/** `Bearer realm="…",service="…"` → scheme (lower case) and parameters; undefined when absent. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\S+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const [, name, quoted, bare] of match[2].matchAll(/([A-Za-z_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[name.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare;
  }
  return { scheme: match[1].toLowerCase(), params };
}
