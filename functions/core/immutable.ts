/**
 * Immutable tags (`npx berth repo immutable <pattern> on|off [--except <tag>…]`): in repositories
 * matching a rule's pattern, a tag that exists cannot be moved to another digest or deleted,
 * except tags matching one of the rule's exceptions (typically `latest`). Pushing the same
 * digest again is allowed (clients re-push). Enforced for manifest PUTs and DELETEs of the
 * distribution API (and so `docker push`) and for `npx berth rm`; the tag write itself is
 * conditional, so two first pushes of one immutable tag cannot both win.
 */
import { matches, repositoryPattern } from '../auth/accounts.js';
import { fail, type RegistryError } from './errors.js';
import type { ImmutableRule, MetadataStore } from '../storage/ports.js';

/** Tag patterns (rule exceptions, retention's tag filters): a tag where `*` stands for any characters. */
export const TAG_PATTERN = /^[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}$/;

/**
 * @throws RegistryError UNSUPPORTED (400) unless `pattern` is a repository pattern (`team/*`).
 * @returns the pattern.
 */
export function checkRepositoryPattern(pattern: string): string {
  if (!repositoryPattern.safeParse(pattern).success) throw fail('UNSUPPORTED', `not a repository pattern: ${pattern}`, null, { status: 400 });
  return pattern;
}

/**
 * @throws RegistryError UNSUPPORTED (400) unless `pattern` is a tag pattern ({@link TAG_PATTERN}).
 * @returns the pattern.
 */
export function checkTagPattern(pattern: string): string {
  if (!TAG_PATTERN.test(pattern)) throw fail('UNSUPPORTED', `not a tag (or tag pattern): ${pattern}`, null, { status: 400 });
  return pattern;
}

/** The immutability rules of one registry. */
export class ImmutableTags {
  constructor(private readonly metadata: MetadataStore) {}

  /**
   * Makes the tags of repositories matching `pattern` immutable, except tags matching `except`
   * (replacing the pattern's rule, if any).
   * @throws RegistryError UNSUPPORTED (400) for a bad repository or tag pattern.
   */
  async set(pattern: string, except: string[]): Promise<ImmutableRule> {
    const rule = { pattern: checkRepositoryPattern(pattern), except: except.map(checkTagPattern) };
    await this.metadata.putImmutableRule(rule);
    return rule;
  }

  /** Turns the rule of `pattern` off; false when there was none. */
  remove(pattern: string): Promise<boolean> {
    return this.metadata.deleteImmutableRule(pattern);
  }

  /** A lookup of the rule that governs each tag of `repository` (one read of the rules). */
  async of(repository: string): Promise<(tag: string) => ImmutableRule | undefined> {
    const rules = (await this.metadata.listImmutableRules()).filter((rule) => matches(rule.pattern, repository));
    return (tag) => rules.find((rule) => !rule.except.some((exception) => matches(exception, tag)));
  }
}

/** DENIED (403) naming the rule that keeps `repository:tag` where it is. */
export function immutableTag(repository: string, tag: string, rule: ImmutableRule, action: 'moved to another digest' | 'deleted'): RegistryError {
  const exceptions = rule.except.length > 0 ? `, except ${rule.except.join(', ')}` : '';
  return fail(
    'DENIED',
    `tag ${tag} of ${repository} is immutable (rule "${rule.pattern}"${exceptions}) and cannot be ${action}; push a new tag, or turn the rule off: npx berth repo immutable ${rule.pattern} off`,
    { repository, tag, rule: rule.pattern },
  );
}
