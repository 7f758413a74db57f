/** The registry's own address as the client used it, for token realms and challenges. */
import type { Realm } from '../auth/service.js';
import type { HttpRequest } from './types.js';

const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/;

/** Scheme and `Host` of the request; a Host header that is not a host name is never echoed. */
export function realmOf(request: HttpRequest): Realm {
  const host = request.headers.host ?? '';
  return { scheme: request.scheme === 'http' ? 'http' : 'https', host: HOST.test(host) ? host : 'localhost' };
}
