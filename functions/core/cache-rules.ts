/**
 * Cache rules (`npx berth cache add|ls|rm`): which repository prefix mirrors which upstream
 * registry, with which credentials (kept in a {@link SecretStore}, never in the rule) and how long
 * a tag is trusted. The pull-through itself is core/cache.ts.
 */
import { fail } from './errors.js';
import { isRepositoryName } from './grammar.js';
import { DEFAULT_TAG_TTL_SECONDS, repositoryAtOrUnder, within } from './cache.js';
import type { UpstreamCredentials } from './upstream.js';
import type { CacheRule, MetadataStore } from '../storage/ports.js';
import type { SecretStore } from '../storage/secrets.js';

/** Upstream hosts people call Docker Hub, and the host that serves its registry API. */
const DOCKER_HUB_API = 'https://registry-1.docker.io';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'hub.docker.com']);

/** A rule as an operator asks for it. */
export interface CacheRuleRequest {
  prefix: string;
  upstream: string;
  credentials?: UpstreamCredentials;
  ttlSeconds?: number;
}

/** Adds, lists and removes cache rules. */
export class CacheRules {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly secrets: SecretStore,
  ) {}

  /**
   * Adds (or replaces) the rule of `request.prefix`; credentials go to the secret store first.
   * @throws RegistryError NAME_INVALID (prefix), UNSUPPORTED (upstream URL), DENIED (a prefix that
   *   overlaps a repository or another rule).
   */
  async add(request: CacheRuleRequest): Promise<CacheRule> {
    const prefix = request.prefix.replace(/\/+$/, '');
    if (!isRepositoryName(prefix)) throw fail('NAME_INVALID', `not a repository prefix: ${prefix.slice(0, 100)}`);
    const upstream = upstreamBase(request.upstream);
    const ttlSeconds = request.ttlSeconds ?? DEFAULT_TAG_TTL_SECONDS;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0) throw fail('UNSUPPORTED', 'the tag TTL is a whole number of seconds', null, { status: 400 });
    const rules = await this.metadata.listCacheRules();
    const nested = rules.find((rule) => within(prefix, rule.prefix) || within(rule.prefix, prefix));
    if (nested) throw fail('DENIED', `prefix ${prefix} overlaps the cache rule "${nested.prefix}"`);
    const previous = rules.find((rule) => rule.prefix === prefix);
    // A rule replaced keeps its prefix: the repositories there are its cached ones.
    const repository = previous ? undefined : await repositoryAtOrUnder(this.metadata, prefix);
    if (repository) throw fail('DENIED', `prefix ${prefix} overlaps the repository ${repository}, which is not a cache: pick another prefix`);
    const rule: CacheRule = { prefix, upstream, ttlSeconds, createdAt: Date.now() };
    if (request.credentials) {
      rule.secret = await this.secrets.write(prefix, JSON.stringify(request.credentials));
      rule.username = request.credentials.username;
    }
    await this.metadata.putCacheRule(rule);
    if (previous?.secret && previous.secret !== rule.secret) await this.secrets.delete(previous.secret);
    return rule;
  }

  list(): Promise<CacheRule[]> {
    return this.metadata.listCacheRules();
  }

  /** Removes a rule and its credentials; the repositories it cached stay (read-write now). False when there was none. */
  async remove(prefix: string): Promise<boolean> {
    const rule = (await this.metadata.listCacheRules()).find((r) => r.prefix === prefix);
    if (!rule || !(await this.metadata.deleteCacheRule(prefix))) return false;
    if (rule.secret) await this.secrets.delete(rule.secret);
    return true;
  }

}

/**
 * `https://host[:port]` of an upstream registry; Docker Hub's names become its API host.
 * @throws RegistryError UNSUPPORTED for anything else: credentials, a path, a query, another scheme.
 */
export function upstreamBase(text: string): string {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`);
  } catch {
    throw badUpstream(`not a URL: ${text.slice(0, 100)}`);
  }
  if (url.username || url.password) throw badUpstream('the upstream URL must not hold credentials: give them with --username and --password-stdin');
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw badUpstream(`the upstream URL must be https:// (or http://), not ${url.protocol}`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) throw badUpstream('the upstream URL is the registry itself (https://host[:port]), without a path or query');
  if (DOCKER_HUB_NAMES.has(url.hostname)) return DOCKER_HUB_API;
  return url.origin;
}

function badUpstream(message: string) {
  return fail('UNSUPPORTED', message, null, { status: 400 });
}
