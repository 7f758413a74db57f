/** Medians, the result rows of the comparison and their Markdown rendering. */
import { readFile } from 'node:fs/promises';

/** One registry under test, as clients address it. */
export interface Target {
  label: 'Berth' | 'reference';
  /** `127.0.0.1:<port>` */
  host: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
}

/** One line of the comparison table: the same measurement against both registries. */
export interface Row {
  operation: string;
  metric: string;
  better: 'lower' | 'higher';
  berth: number[];
  reference: number[];
  /** Digits after the decimal point for the medians. */
  digits?: number;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function ratio(row: Row): number {
  return median(row.berth) / median(row.reference);
}

/** Alternating order of the two targets: round 0 Berth first, round 1 reference first, … */
export function ordered<T>(pair: [T, T], round: number): [T, T] {
  return round % 2 === 0 ? pair : [pair[1], pair[0]];
}

function format(value: number, digits: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The comparison table: the last column is Berth / reference. */
export function renderTable(rows: Row[]): string {
  const lines = [
    '| operation | metric (median) | better | Berth | reference | rounds | Berth / reference |',
    '|---|---|---|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const digits = row.digits ?? 2;
    const r = ratio(row);
    lines.push(
      `| ${row.operation} | ${row.metric} | ${row.better} | ${format(median(row.berth), digits)} | ${format(median(row.reference), digits)} | ${row.berth.length} | ${Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a'} |`,
    );
  }
  return lines.join('\n');
}

/** A plain Markdown table from a header and rows of cells. */
export function markdownTable(header: string[], rows: Array<Array<string | number>>, align?: string[]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${(align ?? header.map(() => '---')).join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

/** Progress goes to stderr so that stdout carries the report alone. */
export function progress(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export const MiB = 1024 * 1024;

/**
 * The peak resident set size of process `pid` so far, MiB (Linux `VmHWM` in `/proc/<pid>/status`),
 * or NaN when it cannot be read (the process ended, or no procfs).
 */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kiB = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  return kiB === undefined ? Number.NaN : Number(kiB) / 1024;
}
