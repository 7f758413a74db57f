/**
 * Registry tokens: short-lived JWTs (HS256, key generated per deployment) whose `access` claim
 * lists what the holder may do, verified without a database read; and refresh tokens for
 * `offline_token` / OAuth2 `refresh_token` grants. Verification pins the algorithm and checks
 * `iss`, `aud`, `exp` and `nbf` (jose); header fields such as `jwk`, `jku` or `kid` are never
 * used to choose a key.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import * as z from '../zod.js';
import { fail } from '../core/errors.js';
import type { Access } from './access.js';

const ALGORITHM = 'HS256';
const ISSUER = 'berth';

/** Lifetimes in seconds: access tokens are re-requested by clients as needed; refresh tokens last a month. */
export const ACCESS_TOKEN_SECONDS = 300;
export const REFRESH_TOKEN_SECONDS = 30 * 24 * 3600;

const accessClaims = z.object({
  sub: z.string(),
  use: z.literal('access'),
  access: z.array(z.object({ type: z.enum(['repository', 'registry']), name: z.string(), actions: z.array(z.string()) })),
});
const refreshClaims = z.object({ sub: z.string(), use: z.literal('refresh'), ver: z.int() });

/** An issued token and its lifetime. */
export interface IssuedToken {
  token: string;
  expiresIn: number;
  /** RFC 3339 time of issue. */
  issuedAt: string;
}

/** Where the signing key comes from: read once, on first use (on Lambda, from Secrets Manager). */
export type KeySource = () => Promise<Uint8Array>;

/** Issues and verifies access and refresh tokens with the deployment's key. */
export class TokenService {
  private key?: Promise<Uint8Array>;

  /** @param source the deployment's signing key, at least 32 random bytes. */
  constructor(private readonly source: KeySource) {}

  /** An access token for `subject` (empty for anonymous) at `audience` (the registry host). */
  issueAccess(subject: string, audience: string, access: Access[]): Promise<IssuedToken> {
    return this.sign({ use: 'access', access }, subject, audience, ACCESS_TOKEN_SECONDS);
  }

  /** A refresh token, void once the account's `credentialVersion` changes. */
  issueRefresh(subject: string, audience: string, credentialVersion: number): Promise<IssuedToken> {
    return this.sign({ use: 'refresh', ver: credentialVersion }, subject, audience, REFRESH_TOKEN_SECONDS);
  }

  /** @throws RegistryError UNAUTHORIZED for anything but a valid, unexpired access token for `audience`. */
  async verifyAccess(token: string, audience: string): Promise<{ subject: string; access: Access[] }> {
    const claims = accessClaims.safeParse(await this.verify(token, audience));
    if (!claims.success) throw invalidToken();
    return { subject: claims.data.sub, access: claims.data.access };
  }

  /** @throws RegistryError UNAUTHORIZED for anything but a valid, unexpired refresh token for `audience`. */
  async verifyRefresh(token: string, audience: string): Promise<{ subject: string; credentialVersion: number }> {
    const claims = refreshClaims.safeParse(await this.verify(token, audience));
    if (!claims.success) throw invalidToken();
    return { subject: claims.data.sub, credentialVersion: claims.data.ver };
  }

  private async sign(claims: Record<string, unknown>, subject: string, audience: string, seconds: number): Promise<IssuedToken> {
    const { SignJWT } = await loadJose();
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + seconds)
      .setJti(crypto.randomUUID())
      .sign(await this.signingKey());
    return { token, expiresIn: seconds, issuedAt: new Date(now * 1000).toISOString() };
  }

  /**
   * Encrypts `value` so that only this deployment can read it (AES-256-GCM under a key derived
   * from the signing key with HKDF): for positions a caller may hold but not read (core/catalog.ts).
   * @returns base64url of IV, ciphertext and tag.
   */
  async seal(value: string): Promise<string> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', await this.sealingKey(), iv);
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** What {@link seal} sealed, or undefined for anything else (tampered, another deployment's). */
  async open(sealed: string): Promise<string | undefined> {
    const bytes = Buffer.from(sealed, 'base64url');
    if (bytes.length < 12 + 16) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', await this.sealingKey(), bytes.subarray(0, 12));
      decipher.setAuthTag(bytes.subarray(bytes.length - 16));
      return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** The sealing key: never the signing key itself (one key, one algorithm). */
  private async sealingKey(): Promise<Buffer> {
    return Buffer.from(hkdfSync('sha256', await this.signingKey(), new Uint8Array(0), 'berth sealed positions', 32));
  }

  private signingKey(): Promise<Uint8Array> {
    this.key ??= this.source().then((key) => {
      if (key.length < 32) throw new Error('token signing key must have at least 32 bytes');
      return key;
    });
    // A failed read (Secrets Manager briefly unreachable) is retried by the next request.
    this.key.catch(() => (this.key = undefined));
    return this.key;
  }

  private async verify(token: string, audience: string): Promise<unknown> {
    const { errors, jwtVerify } = await loadJose();
    try {
      const { payload } = await jwtVerify(token, await this.signingKey(), { algorithms: [ALGORITHM], issuer: ISSUER, audience, clockTolerance: 5 });
      return payload;
    } catch (error) {
      if (error instanceof errors.JOSEError || error instanceof TypeError) throw invalidToken();
      throw error;
    }
  }
}

/** jose, loaded with the first token: a cold start that serves an anonymous pull never parses it. */
function loadJose() {
  return import('./jose.js');
}

function invalidToken() {
  return fail('UNAUTHORIZED', 'invalid or expired token');
}
