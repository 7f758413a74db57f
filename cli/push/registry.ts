/**
 * A client of one registry's HTTP API (OCI distribution plus Berth's `_berth/uploads`
 * extension) with docker's authentication: a request is sent with the credentials or token
 * cached for its scopes; a `401` with a `Bearer` challenge sends the stored credentials to the
 * realm (`GET <realm>?service=&scope=…` with Basic credentials, or `POST` with
 * `grant_type=refresh_token` for an identity token) and the request is repeated with the token.
 * Tokens are cached per set of scopes until shortly before they expire.
 */
import { parseChallenge, type Challenge } from './challenge.js';
import type { Credentials } from './docker-config.js';
import { header, send, type Answer, type BodySource } from './http.js';

/** A failure of the registry or its token service, with the OCI error text when there was one. */
export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface CallOptions {
  /** Scopes the request needs (`repository:<name>:pull,push`). */
  scopes: string[];
  headers?: Record<string, string>;
  body?: Buffer | BodySource;
  /** Largest answer body to buffer (bytes). */
  maxBody?: number;
}

interface CachedToken {
  value: string;
  /** Epoch ms. */
  expiresAt: number;
}

export class RegistryClient {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();

  /**
   * @param base `http(s)://host[:port]`
   * @param credentials the stored credentials (read lazily, once), or undefined for anonymous.
   */
  constructor(
    readonly base: string,
    private readonly credentials: () => Promise<Credentials | undefined>,
  ) {}

  /** `GET /v2/`: checks that a registry answers and learns its challenge. @throws Error when unreachable. */
  async ping(): Promise<void> {
    let answer: Answer;
    try {
      answer = await send(`${this.base}/v2/`, { idleMs: 30_000 });
    } catch (error) {
      throw new RegistryError(`cannot reach the registry at ${this.base}: ${(error as Error).message}`, 0);
    }
    if (answer.status === 401) this.challenge = parseChallenge(header(answer.headers, 'www-authenticate'));
    else if (answer.status !== 200) throw new RegistryError(`GET ${this.base}/v2/ answered ${answer.status}: is this a registry?`, answer.status);
  }

  /** Sends `method path` with authorization for `scopes`; a 401 is answered once by (re)authenticating. */
  async call(method: string, path: string, options: CallOptions): Promise<Answer> {
    const url = path.startsWith('http') ? path : `${this.base}${path}`;
    const send1 = async () =>
      send(url, { method, headers: { ...options.headers, ...(await this.authorization(options.scopes)) }, body: options.body }, options.maxBody);
    let answer = await send1();
    if (answer.status === 401) {
      const challenge = parseChallenge(header(answer.headers, 'www-authenticate'));
      if (!challenge) throw new RegistryError(`${method} ${path}: 401 without a challenge`, 401);
      this.challenge = challenge;
      this.tokens.delete(scopeKey(options.scopes));
      answer = await send1();
      if (answer.status === 401) throw await this.refused(method, path.replace(/\?.*/, ''), options.scopes);
    }
    return answer;
  }

  /** Throws a {@link RegistryError} for an answer that is not one of `expected`. */
  static expect(answer: Answer, what: string, ...expected: number[]): Answer {
    if (!expected.includes(answer.status)) throw errorOf(answer, what);
    return answer;
  }

  private async authorization(scopes: string[]): Promise<Record<string, string>> {
    const challenge = this.challenge;
    if (!challenge) return {};
    const credentials = await this.storedCredentials();
    if (challenge.scheme === 'basic') {
      if (!credentials || !('password' in credentials)) return {};
      return { Authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return {};
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return { Authorization: `Bearer ${cached.value}` };
    const token = await this.fetchToken(challenge, scopes, credentials);
    this.tokens.set(key, token);
    return { Authorization: `Bearer ${token.value}` };
  }

  private async fetchToken(challenge: Challenge, scopes: string[], credentials: Credentials | undefined): Promise<CachedToken> {
    const realm = new URL(challenge.params.realm);
    const service = challenge.params.service;
    let answer: Answer;
    if (credentials && 'identityToken' in credentials) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.identityToken, client_id: 'berth' });
      if (service) form.set('service', service);
      for (const scope of scopes) form.append('scope', scope);
      answer = await send(realm, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()) });
    } else {
      if (service) realm.searchParams.set('service', service);
      for (const scope of scopes) realm.searchParams.append('scope', scope);
      realm.searchParams.set('client_id', 'berth');
      const headers: Record<string, string> = credentials
        ? { Authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
        : {};
      answer = await send(realm, { headers });
    }
    if (answer.status === 401) {
      throw new RegistryError(credentials ? `login to ${hostOfBase(this.base)} failed: ${errorOf(answer, 'token').message}; run docker login ${hostOfBase(this.base)}` : `${hostOfBase(this.base)} needs a login: run docker login ${hostOfBase(this.base)}`, 401, 'UNAUTHORIZED');
    }
    if (answer.status !== 200) throw errorOf(answer, `token service ${realm.origin}${realm.pathname}`);
    const parsed = JSON.parse(answer.body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const value = parsed.token ?? parsed.access_token;
    if (!value) throw new RegistryError(`the token service ${realm.origin} answered no token`, answer.status);
    const seconds = Math.max(parsed.expires_in ?? 60, 30);
    return { value, expiresAt: Date.now() + (seconds - 15) * 1000 };
  }

  private storedPromise: Promise<Credentials | undefined> | undefined;
  private storedCredentials(): Promise<Credentials | undefined> {
    return (this.storedPromise ??= this.credentials());
  }

  private async refused(method: string, path: string, scopes: string[]): Promise<RegistryError> {
    const host = hostOfBase(this.base);
    if (!(await this.storedCredentials())) return new RegistryError(`${host} needs a login: run docker login ${host}`, 401, 'UNAUTHORIZED');
    return new RegistryError(`${method} ${path}: denied (${scopes.join(' ')}) for the account docker login stored for ${host}`, 401, 'DENIED');
  }
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}

function hostOfBase(base: string): string {
  return new URL(base).host;
}

/** A readable error from an answer: the first OCI error's code and message, else the status. */
export function errorOf(answer: Answer, what: string): RegistryError {
  let code: string | undefined;
  let message = `${what}: HTTP ${answer.status}`;
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as { errors?: { code?: string; message?: string }[]; message?: string };
    const first = parsed.errors?.[0];
    if (first) {
      code = first.code;
      message = `${what}: ${first.code ?? answer.status}${first.message ? `: ${first.message}` : ''}`;
    } else if (parsed.message) message = `${what}: HTTP ${answer.status}: ${parsed.message}`;
  } catch {
    const text = answer.body.toString('utf8').trim();
    if (text && text.length < 300 && !text.includes('<')) message += `: ${text}`;
  }
  return new RegistryError(message, answer.status, code);
}
