/** `n` / `last` / `Link` of paginated listings (distribution-spec end-8b, reference `_catalog`). */
import { fail } from '../core/errors.js';
import type { Page } from '../storage/ports.js';

/** Page size used when `n` is absent, and the largest honoured: bigger values are clamped. */
export const MAX_PAGE = 1000;

/**
 * Parses `n`: absent → {@link MAX_PAGE}; 0 → 0; larger than the maximum → clamped.
 * @throws RegistryError UNSUPPORTED (400) for a negative or non-numeric `n`.
 */
export function parseLimit(n: string | null): number {
  return integerParam(n, 'n', { fallback: MAX_PAGE, min: 0, max: MAX_PAGE });
}

/**
 * A whole-number query parameter: absent → `fallback`, above `max` → `max` (clamped, so
 * a huge value is no error), below `min` or not a number → 400.
 * @throws RegistryError UNSUPPORTED (400).
 */
export function integerParam(value: string | null, name: string, limits: { fallback: number; min: number; max: number }): number {
  if (value === null) return limits.fallback;
  if (!/^\d+$/.test(value) || Number(value) < limits.min) {
    throw fail('UNSUPPORTED', `${name} must be an integer of at least ${limits.min}, got ${value.slice(0, 30)}`, null, { status: 400 });
  }
  return Math.min(Number(value), limits.max);
}

/** The `Link: <path?n=…&last=…>; rel="next"` header of a page that has a successor. */
export function linkHeader(path: string, limit: number, page: Page<unknown>): Record<string, string> {
  if (page.last === undefined) return {};
  const query = new URLSearchParams({ n: String(limit), last: page.last });
  return { Link: `<${path}?${query}>; rel="next"` };
}
