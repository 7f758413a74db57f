/** How numbers and times read on the pages. */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** Bytes in SI units as registries show image sizes (`12.3 MB`). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** Epoch ms or an RFC 3339 string as `2026-12-03 16:20 UTC`; undefined and unparsable as `—`. */
export function formatTime(time: number | string | undefined): string {
  if (time === undefined) return '—';
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return typeof time === 'string' ? time : '—';
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** `sha256:0123456789ab` (the first 12 hex digits, as docker shows image ids). */
export function shortDigest(digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return `${algorithm}:${hex.slice(0, 12)}`;
}
