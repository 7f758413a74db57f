/**
 * Retention rules (`npx berth retention …`), in the spirit of ECR lifecycle policies, per
 * repository pattern: keep the last N tags matching a tag pattern (by push time), expire tags
 * matching a pattern N days after their push, and let untagged manifests go after N days. Tag
 * rules delete tags only (conditionally: a tag re-pushed meanwhile stays); what the tags kept
 * alive goes at the garbage collection that follows (the daily `gc` applies the rules first).
 * Immutable tags (core/immutable.ts) are never expired.
 */
import { randomBytes } from 'node:crypto';
import { matches } from '../auth/accounts.js';
import { fail } from './errors.js';
import { checkRepositoryPattern, checkTagPattern, type ImmutableTags } from './immutable.js';
import type { MetadataStore, RetentionRule, TagRecord } from '../storage/ports.js';

const DAY_MS = 24 * 3600 * 1000;

/** What a retention rule sets: one of these, a whole number. */
export const RETENTION_KINDS = ['keepLast', 'expireDays', 'untaggedDays'] as const;
export type RetentionKind = (typeof RETENTION_KINDS)[number];

/**
 * A new retention rule with a fresh id: for the repositories matching `pattern`, `kind` set to
 * `value` (a whole number of tags or days, as typed), for the tags matching `tags` (not with
 * `untaggedDays`, which concerns untagged manifests).
 * @throws RegistryError UNSUPPORTED (400) for a bad pattern, number or combination.
 */
export function retentionRule(pattern: string, kind: RetentionKind, value: string, tags?: string): RetentionRule {
  const invalid = (message: string) => fail('UNSUPPORTED', message, null, { status: 400 });
  if (!/^\d{1,6}$/.test(value)) throw invalid(`a retention rule takes a whole number, not ${value.slice(0, 20)}`);
  if (kind === 'untaggedDays' && tags !== undefined) throw invalid('a tag pattern goes with keep-last and expire-days rules');
  return { id: randomBytes(3).toString('hex'), pattern: checkRepositoryPattern(pattern), tags: checkTagPattern(tags ?? '*'), [kind]: Number(value) };
}

/** What a rule does, in words (`keep last 3 tags v*`), for `retention ls` and the web interface. */
export function ruleSummary(rule: RetentionRule): string {
  if (rule.keepLast !== undefined) return `keep last ${rule.keepLast} tags ${rule.tags}`;
  if (rule.expireDays !== undefined) return `expire tags ${rule.tags} after ${rule.expireDays} days`;
  return `untagged manifests go after ${rule.untaggedDays} days`;
}

/** A tag a rule expires, and why. */
export interface ExpiredTag {
  tag: TagRecord;
  rule: RetentionRule;
  /** `keep last 3 of v*`, `older than 30 days (v*)`. */
  reason: string;
}

/** What the rules mean for the repositories; rules are read once per instance. */
export class Retention {
  private rules?: Promise<RetentionRule[]>;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly immutable: ImmutableTags,
  ) {}

  /** The tags of `repository` (all of them, as stored) that the rules expire at `now` (epoch ms). */
  async expiredTags(repository: string, tags: readonly TagRecord[], now: number): Promise<ExpiredTag[]> {
    const rules = (await this.all()).filter((rule) => matches(rule.pattern, repository));
    if (rules.length === 0) return [];
    const ruleOf = await this.immutable.of(repository);
    const expired = new Map<string, ExpiredTag>();
    for (const rule of rules) {
      const matching = tags.filter((tag) => matches(rule.tags, tag.tag) && !ruleOf(tag.tag)).sort((a, b) => b.updatedAt - a.updatedAt);
      if (rule.keepLast !== undefined) {
        for (const tag of matching.slice(rule.keepLast)) expired.set(tag.tag, { tag, rule, reason: `keep last ${rule.keepLast} of ${rule.tags}` });
      }
      if (rule.expireDays !== undefined) {
        for (const tag of matching.filter((t) => t.updatedAt < now - rule.expireDays! * DAY_MS)) {
          expired.set(tag.tag, { tag, rule, reason: `older than ${rule.expireDays} days (${rule.tags})` });
        }
      }
    }
    return [...expired.values()];
  }

  /** The age (ms) after which unreachable untagged manifests of `repository` go, when a rule sets one. */
  async untaggedAgeMs(repository: string): Promise<number | undefined> {
    const days = (await this.all()).filter((rule) => rule.untaggedDays !== undefined && matches(rule.pattern, repository)).map((rule) => rule.untaggedDays!);
    return days.length > 0 ? Math.max(...days) * DAY_MS : undefined;
  }

  /**
   * Applies the tag rules to every repository now: deletes (or with `dryRun` only lists) the
   * expired tags. Returns them.
   */
  async apply(dryRun: boolean, now = Date.now()): Promise<{ repository: string; expired: ExpiredTag }[]> {
    const result = [];
    let last: string | undefined;
    do {
      const page = await this.metadata.listRepositories(1000, last);
      for (const { name } of page.items) {
        const { tags } = await this.metadata.readRepository(name);
        for (const expired of await this.expiredTags(name, tags, now)) {
          if (dryRun || (await this.metadata.collect({ kind: 'tag', repository: name, tag: expired.tag.tag, digest: expired.tag.digest, updatedAt: expired.tag.updatedAt }))) {
            result.push({ repository: name, expired });
          }
        }
      }
      last = page.last;
    } while (last);
    return result;
  }

  /** Stores a rule made by {@link retentionRule}. */
  async add(rule: RetentionRule): Promise<void> {
    await this.metadata.putRetentionRule(rule);
    this.rules = undefined;
  }

  /** Removes rule `id`; false when there was none. */
  async remove(id: string): Promise<boolean> {
    this.rules = undefined;
    return this.metadata.deleteRetentionRule(id);
  }

  private all(): Promise<RetentionRule[]> {
    return (this.rules ??= this.metadata.listRetentionRules());
  }
}
