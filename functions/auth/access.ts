/**
 * Access requests and grants of the Docker token protocol ("Token Scope Documentation" of the
 * distribution project): `repository:<name>:pull,push`, `registry:catalog:*`. A token's
 * `access` claim lists what was both asked for and allowed.
 */
import { isRepositoryName } from '../core/grammar.js';

/** One resource and the actions on it. */
export interface Access {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

/** Actions Berth knows, per resource type. */
const KNOWN_ACTIONS: Record<Access['type'], Set<string>> = {
  repository: new Set(['pull', 'push', 'delete', '*']),
  // `admin`: registry:berth:admin, the scope of the `/v2/_berth/` admin routes.
  registry: new Set(['*', 'search', 'admin']),
};

/**
 * Parses `scope` values (each may hold several space-separated scopes). The resource name is
 * everything between the first and the last `:`, so names with a `host:port/` prefix parse; the
 * prefix is removed when it names a registry (has a port, or equals `host`). Unknown types,
 * actions and invalid names are dropped, as a token service must not fail on what it cannot grant.
 */
export function parseScopes(values: readonly string[], host?: string): Access[] {
  const result: Access[] = [];
  for (const scope of values.flatMap((value) => value.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first) continue;
    const type = scope.slice(0, first).replace(/\(.*\)$/, '');
    if (type !== 'repository' && type !== 'registry') continue;
    const name = type === 'repository' ? stripRegistryHost(scope.slice(first + 1, last), host) : scope.slice(first + 1, last);
    if (type === 'repository' && !isRepositoryName(name)) continue;
    const actions = scope.slice(last + 1).split(',').filter((a) => KNOWN_ACTIONS[type].has(a));
    if (actions.length > 0) merge(result, { type, name, actions });
  }
  return result;
}

function stripRegistryHost(name: string, host?: string): string {
  const slash = name.indexOf('/');
  if (slash < 0) return name;
  const head = name.slice(0, slash);
  return head.includes(':') || head === 'localhost' || (host !== undefined && head === host) ? name.slice(slash + 1) : name;
}

/** Adds `access` to `list`, joining actions on the same resource. */
export function merge(list: Access[], access: Access): void {
  const existing = list.find((a) => a.type === access.type && a.name === access.name);
  if (!existing) list.push({ ...access, actions: [...new Set(access.actions)] });
  else existing.actions = [...new Set([...existing.actions, ...access.actions])];
}

/** Whether `grants` allow `action` on the resource (`*` allows every action). */
export function allows(grants: readonly Access[], type: Access['type'], name: string, action: string): boolean {
  return grants.some((g) => g.type === type && g.name === name && (g.actions.includes(action) || g.actions.includes('*')));
}

/** The `scope` string of one access, as challenges and token requests spell it. */
export function formatScope(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}
