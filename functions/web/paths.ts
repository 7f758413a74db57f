/**
 * Which requests are the web interface's. Apart from the pages (handler.ts), so that the router
 * can tell without loading them: a registry client's cold start never parses the interface.
 */

/** Whether `path` (as received) belongs to the web interface rather than the registry's APIs (`/v2`, `/v1`, `/token`). */
export function isWebPath(path: string): boolean {
  return !/^\/(v2|v1)(\/|$)/.test(path) && path !== '/token';
}
