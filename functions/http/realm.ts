/** The registry's own address as the client used it, for token realms and challenges. */
import type { Realm } from '../auth/service.js';
import type { HttpRequest } from './types.js';

const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/;

/**
 * Scheme and host of the request as the client used them; a host that is not a host name is never
 * echoed. Behind the front door API Gateway must receive its own `Host`, so the CloudFront Function
 * forwards the client's in `X-Forwarded-Host`.
 */
export function realmOf(request: HttpRequest): Realm {
  const host = request.headers['x-forwarded-host'] || request.headers.host || '';
  return { scheme: request.scheme === 'http' ? 'http' : 'https', host: HOST.test(host) ? host : 'localhost' };
}
