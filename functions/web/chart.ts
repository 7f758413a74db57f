/**
 * Storage per repository as a server-rendered SVG bar chart: one bar per repository, largest
 * first, so sizes compare at a glance without any script. Names are escaped like all text.
 */
import { html, type Html } from './html.js';
import { formatBytes } from './format.js';

/** Bars drawn; the rest are summed into one "others" bar. */
const MAX_BARS = 15;
const WIDTH = 720;
const LABEL_WIDTH = 220;
const VALUE_WIDTH = 90;
const BAR_HEIGHT = 18;
const ROW = 26;

/** A horizontal bar chart of `repositories`' bytes, titled for screen readers. */
export function storageChart(repositories: readonly { name: string; bytes: number }[]): Html {
  const sorted = [...repositories].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  const bars = sorted.slice(0, MAX_BARS);
  const rest = sorted.slice(MAX_BARS);
  if (rest.length > 0) bars.push({ name: `${rest.length} others`, bytes: rest.reduce((sum, r) => sum + r.bytes, 0) });
  const largest = Math.max(1, ...bars.map((b) => b.bytes));
  const span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 10;
  const height = Math.max(1, bars.length) * ROW + 8;
  const rows = bars.map((bar, i) => {
    const y = 4 + i * ROW;
    const width = Math.max(bar.bytes > 0 ? 2 : 0, Math.round((bar.bytes / largest) * span));
    const label = bar.name.length > 32 ? `${bar.name.slice(0, 31)}…` : bar.name;
    return html`<g><title>${bar.name}: ${formatBytes(bar.bytes)}</title><text x="${LABEL_WIDTH - 8}" y="${y + 13}" text-anchor="end">${label}</text><rect x="${LABEL_WIDTH}" y="${y}" width="${width}" height="${BAR_HEIGHT}" fill="#2f6fb3"></rect><text x="${LABEL_WIDTH + width + 6}" y="${y + 13}">${formatBytes(bar.bytes)}</text></g>`;
  });
  return html`<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chart-title" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}"><title id="chart-title">Stored bytes per repository, largest first</title>${rows}</svg>`;
}
