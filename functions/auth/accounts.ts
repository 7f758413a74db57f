/**
 * Accounts (users and robots), their roles and repository patterns, and what they may do to a
 * repository given its visibility.
 */
import * as z from '../zod.js';

/** The roles an account can have, least to most. */
export const ROLES = ['reader', 'writer', 'admin'] as const;
/** One of {@link ROLES}. */
export type Role = (typeof ROLES)[number];

/** Actions each role grants on the repositories its patterns match. */
const ROLE_ACTIONS: Record<Role, string[]> = {
  reader: ['pull'],
  writer: ['pull', 'push'],
  admin: ['pull', 'push', 'delete'],
};

/** Prefix of robot account names (`robot$ci`), which user names cannot contain. */
export const ROBOT_PREFIX = 'robot$';

/** User names: lower-case letters, digits, `.`, `_`, `-`; 1–64 characters. */
export const accountName = z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'names use a-z, 0-9, ".", "_", "-" (1-64 characters)'));

/** Repository patterns: a repository name where `*` stands for any characters, `/` included. */
export const repositoryPattern = z.string().check(z.regex(/^[a-z0-9*][a-z0-9._\-/*]{0,254}$/, 'not a repository pattern'));

/** A stored account. `credentialVersion` changes with the password, voiding refresh tokens. */
export interface Account {
  name: string;
  kind: 'user' | 'robot';
  role: Role;
  /** Patterns of repositories the role applies to; empty means every repository. */
  repositories: string[];
  passwordHash: string;
  credentialVersion: number;
  createdAt: number;
}

/** Repository visibility: public repositories can be pulled by anyone. */
export type Visibility = 'public' | 'private';

/** Whether `repository` matches one of `patterns` (no patterns: all). */
export function matchesAny(patterns: readonly string[], repository: string): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((pattern) => matches(pattern, repository));
}

/** Whether `name` matches `pattern`, where `*` stands for any characters (`/` included). */
export function matches(pattern: string, name: string): boolean {
  return globToRegExp(pattern).test(name);
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/**
 * The repository actions `account` (undefined: anonymous) has on `repository`: its role's
 * actions where a pattern matches, plus `pull` on public repositories for everyone.
 */
export function repositoryActions(account: Account | undefined, repository: string, visibility: Visibility): string[] {
  const actions = new Set<string>(visibility === 'public' ? ['pull'] : []);
  if (account && matchesAny(account.repositories, repository)) for (const action of ROLE_ACTIONS[account.role]) actions.add(action);
  return [...actions];
}
