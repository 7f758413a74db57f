/**
 * What the `api` bundle is made of and what would shrink it. infra/build.mjs itself is run with
 * its `esbuild` import wrapped (esbuild-hook.mjs → esbuild-wrapper.mjs): same options, plus a
 * metafile, plus at most one change, written to a scratch folder (dist/ is left alone). So the
 * numbers follow whatever infra/build.mjs does today.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import type { Metafile } from 'esbuild';
import { join } from 'node:path';
import { ROOT, runOk } from '../e2e/helpers.js';

export interface BundleVariant {
  name: string;
  /** What it changes, in one line. */
  change: string;
  /** For esbuild-wrapper.mjs: extra externals, mainFields. */
  options: { external?: string[]; mainFields?: string[] };
}

export const VARIANTS: BundleVariant[] = [
  { name: 'as built', change: 'infra/build.mjs as it is in this checkout', options: {} },
  {
    name: 'AWS SDK from the runtime',
    change: "external: ['@aws-sdk/*', '@smithy/*'] (the nodejs22.x runtime ships SDK v3; here loaded from node_modules)",
    options: { external: ['@aws-sdk/*', '@smithy/*'] },
  },
  {
    name: 'CommonJS entry points first',
    change: "mainFields: ['main', 'module'] (esbuild's default for platform node: the SDK's CommonJS builds, which do not tree-shake)",
    options: { mainFields: ['main', 'module'] },
  },
];

/** The package (or source folder) an input file belongs to. */
function owner(file: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  return match ? match[1] : file.split('/').slice(0, 2).join('/');
}

export interface BundleReport {
  bytes: number;
  byOwner: Array<{ owner: string; bytes: number }>;
  largestFiles: Array<{ file: string; bytes: number }>;
  zodLocales: number;
}

/** Runs infra/build.mjs with `variant` into `dir`; returns the api bundle's entry, its size with its chunks, and the metafile. */
export async function buildVariant(variant: BundleVariant, dir: string): Promise<{ file: string; bytes: number; metafile: Metafile }> {
  await runOk(process.execPath, ['--import', join(ROOT, 'test/bench/esbuild-hook.mjs'), 'infra/build.mjs'], {
    env: { BENCH_ESBUILD_OUTDIR: dir, BENCH_ESBUILD_VARIANT: JSON.stringify(variant.options), NODE_OPTIONS: '' },
    timeoutMs: 300_000,
  });
  const file = join(dir, 'dist/api/index.mjs');
  return { file, bytes: await codeBytes(join(dir, 'dist/api')), metafile: JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as Metafile };
}

/** Bytes of the JavaScript a function ships: `dir`/index.mjs and its chunks (infra/build.mjs splits the code). */
export async function codeBytes(dir: string): Promise<number> {
  const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.mjs'));
  const sizes = await Promise.all(files.map(async (f) => (await stat(join(dir, f))).size));
  return sizes.reduce((a, b) => a + b, 0);
}

/** The composition of the api function's code (its entry and chunks) from the metafile. */
export function composition(metafile: Metafile): BundleReport {
  const outputs = Object.entries(metafile.outputs).filter(([path]) => /api\/(chunks\/)?[^/]+\.mjs$/.test(path)).map(([, o]) => o);
  const inputs = outputs.flatMap((o) => Object.entries(o.inputs));
  const totals = new Map<string, number>();
  let zodLocales = 0;
  for (const [file, info] of inputs) {
    totals.set(owner(file), (totals.get(owner(file)) ?? 0) + info.bytesInOutput);
    if (/zod\/v4\/locales\//.test(file)) zodLocales += info.bytesInOutput;
  }
  return {
    bytes: outputs.reduce((sum, o) => sum + o.bytes, 0),
    byOwner: [...totals].map(([o, b]) => ({ owner: o, bytes: b })).sort((a, b) => b.bytes - a.bytes),
    largestFiles: inputs
      .map(([file, info]) => ({ file, bytes: info.bytesInOutput }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 8),
    zodLocales,
  };
}
