/** The registry's own address as the client used it, for token realms, challenges and token audiences. */
import type { Realm } from '../auth/service.js';
import { fail } from '../core/errors.js';
import type { HttpRequest } from './types.js';

const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/;

/**
 * Scheme and host of the request as the client used them; a host that is not a host name is never
 * echoed. Behind the front door API Gateway must receive its own `Host`, so the CloudFront Function
 * forwards the client's in `X-Forwarded-Host`. That header is anyone's to set on a request sent
 * to the API's own endpoint, so where `hosts` (BERTH_HOSTS) is given only those are served: the
 * host is the audience of every token issued and accepted, and the realm clients send passwords to.
 * @param hosts allowed host names, lower case, `name` (any port) or `name:port`; undefined: any.
 * @throws RegistryError DENIED (421 Misdirected Request, RFC 9110 §15.5.20) for a host not in `hosts`.
 */
export function realmOf(request: HttpRequest, hosts?: readonly string[]): Realm {
  const named = request.headers['x-forwarded-host'] || request.headers.host || '';
  const host = HOST.test(named) ? named : 'localhost';
  if (hosts && !serves(hosts, host)) {
    throw fail('DENIED', `this registry does not serve the host name ${host}: tokens are issued and accepted for its configured host names only (BERTH_HOSTS)`, null, { status: 421 });
  }
  return { scheme: request.scheme === 'http' ? 'http' : 'https', host };
}

/** Whether `host` (`name[:port]`) is one of `hosts`: by name for entries without a port, else exactly. */
function serves(hosts: readonly string[], host: string): boolean {
  const lower = host.toLowerCase();
  const portless = (entry: string) => entry.replace(/^\[(.*)\]$/, '$1') === hostName(entry);
  return hosts.some((entry) => entry === lower || (portless(entry) && hostName(entry) === hostName(lower)));
}

/** A host name or address as `Host` names it, without port or IPv6 brackets, lower case. */
export function hostName(host: string): string {
  const lower = host.toLowerCase();
  const bracketed = /^\[(.*)\](:\d+)?$/.exec(lower);
  if (bracketed) return bracketed[1];
  const parts = lower.split(':');
  // More than one colon without brackets: an IPv6 address, which has no port.
  return parts.length === 2 ? parts[0] : lower;
}
