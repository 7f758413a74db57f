/**
 * What the `api` bundle is made of and what would shrink it. infra/build.mjs itself is run with
 * its `esbuild` import wrapped (esbuild-hook.mjs → esbuild-wrapper.mjs): same options, plus a
 * metafile, plus at most one change, written to a scratch folder (dist/ is left alone). So the
 * numbers follow whatever infra/build.mjs does today.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Metafile } from 'esbuild';
import { join } from 'node:path';
import { ROOT, runOk } from '../e2e/helpers.js';

export interface BundleVariant {
  name: string;
  /** What it changes, in one line. */
  change: string;
  /** For esbuild-wrapper.mjs: extra externals, mainFields, modules replaced by empty stubs. */
  options: { external?: string[]; mainFields?: string[]; stub?: string[] };
}

export const VARIANTS: BundleVariant[] = [
  { name: 'as built', change: 'infra/build.mjs as it is in this checkout', options: {} },
  {
    name: 'AWS SDK from the runtime',
    change: "external: ['@aws-sdk/*', '@smithy/*'] (the nodejs22.x runtime ships SDK v3; here loaded from node_modules)",
    options: { external: ['@aws-sdk/*', '@smithy/*'] },
  },
  {
    name: 'without the Lambda and Secrets Manager clients',
    change: 'stubs for @aws-sdk/client-lambda and @aws-sdk/client-secrets-manager (what a small signed fetch for the two calls, or moving them out of `api`, would save)',
    options: { stub: ['@aws-sdk/client-lambda', '@aws-sdk/client-secrets-manager'] },
  },
  {
    name: 'ESM entry points first',
    change: "mainFields: ['module', 'main'] (packages' ES module builds, which tree-shake)",
    options: { mainFields: ['module', 'main'] },
  },
  {
    name: 'ESM first, without the two clients',
    change: 'the two changes above together',
    options: { mainFields: ['module', 'main'], stub: ['@aws-sdk/client-lambda', '@aws-sdk/client-secrets-manager'] },
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

/** Runs infra/build.mjs with `variant` into `dir`; returns the api bundle's path, size and metafile. */
export async function buildVariant(variant: BundleVariant, dir: string): Promise<{ file: string; bytes: number; metafile: Metafile }> {
  await runOk(process.execPath, ['--import', join(ROOT, 'test/bench/esbuild-hook.mjs'), 'infra/build.mjs'], {
    env: { BENCH_ESBUILD_OUTDIR: dir, BENCH_ESBUILD_VARIANT: JSON.stringify(variant.options), NODE_OPTIONS: '' },
    timeoutMs: 300_000,
  });
  const file = join(dir, 'dist/api/index.mjs');
  return { file, bytes: (await stat(file)).size, metafile: JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as Metafile };
}

/** The composition of a bundle from its metafile. */
export function composition(metafile: Metafile): BundleReport {
  const output = Object.entries(metafile.outputs).find(([path, o]) => o.entryPoint && path.endsWith('api/index.mjs'))![1];
  const totals = new Map<string, number>();
  let zodLocales = 0;
  for (const [file, info] of Object.entries(output.inputs)) {
    totals.set(owner(file), (totals.get(owner(file)) ?? 0) + info.bytesInOutput);
    if (/zod\/v4\/locales\//.test(file)) zodLocales += info.bytesInOutput;
  }
  return {
    bytes: output.bytes,
    byOwner: [...totals].map(([o, b]) => ({ owner: o, bytes: b })).sort((a, b) => b.bytes - a.bytes),
    largestFiles: Object.entries(output.inputs)
      .map(([file, info]) => ({ file, bytes: info.bytesInOutput }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 8),
    zodLocales,
  };
}
