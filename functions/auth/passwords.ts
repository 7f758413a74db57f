/**
 * Password and robot-token hashing with scrypt (node's crypto; RFC 7914). Verification takes the
 * same time whether or not the account exists, so timing reveals nothing about user names.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { Account, Role } from './accounts.js';

const scrypt = (password: string, salt: Buffer, length: number, options: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCallback(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))),
  );

/** N = 2^15, r = 8, p = 1: ~32 MiB and tens of milliseconds per check (OWASP's scrypt minimum is 2^17 at p=1 with r=8 for 64 MiB; 2^15 keeps Lambda at 1 GB comfortable). */
const PARAMS = { N: 2 ** 15, r: 8, p: 1 };
const KEY_LENGTH = 32;

/** `scrypt$N$r$p$salt$hash` (base64) of `password`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEY_LENGTH, { ...PARAMS, maxmem: 64 * 1024 * 1024 });
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** A well-formed hash of nothing anyone knows, checked when the account does not exist. */
const DECOY = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** Whether `password` matches `stored`; with `stored` undefined it spends the same time and says no. */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = (stored ?? DECOY).split('$');
  if (scheme !== 'scrypt') return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 64 * 1024 * 1024,
  });
  return timingSafeEqual(key, expected) && stored !== undefined;
}

/** A random robot token (256 bits), shown once. */
export function generateRobotToken(): string {
  return `berth_${randomBytes(32).toString('base64url')}`;
}

/**
 * A new account of `kind` named `name` (robots: with the `robot$` prefix) whose password or robot
 * token is `secret`, stored hashed.
 */
export async function newAccount(kind: Account['kind'], name: string, role: Role, repositories: string[], secret: string): Promise<Account> {
  return {
    name,
    kind,
    role,
    repositories,
    passwordHash: await hashPassword(secret),
    // Not 1: a re-created name must not revive refresh tokens issued to the account it replaces.
    credentialVersion: Date.now(),
    createdAt: Date.now(),
  };
}
