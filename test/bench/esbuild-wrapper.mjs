// esbuild as infra/build.mjs sees it under test/bench/esbuild-hook.mjs: the same `build`, plus
//  * BENCH_ESBUILD_OUTDIR: write the bundles below this folder instead of dist/ (dist/ untouched);
//  * BENCH_ESBUILD_VARIANT: JSON {external?, mainFields?} applied on top of the script's own options;
//  * always a metafile, written next to each bundle's entry as <entry>.meta.json.
import * as esbuild from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

export * from 'esbuild';

export async function build(options) {
  const variant = process.env.BENCH_ESBUILD_VARIANT ? JSON.parse(process.env.BENCH_ESBUILD_VARIANT) : {};
  const opts = { ...options, metafile: true };
  if (variant.external) opts.external = [...(opts.external ?? []), ...variant.external];
  if (variant.mainFields) opts.mainFields = variant.mainFields;
  const key = options.outdir === undefined ? 'outfile' : 'outdir';
  if (process.env.BENCH_ESBUILD_OUTDIR) opts[key] = join(process.env.BENCH_ESBUILD_OUTDIR, relative(process.cwd(), options[key]));
  const result = await esbuild.build(opts);
  // With code splitting (outdir) the entry is <outdir>/index.mjs.
  await writeFile(`${key === 'outdir' ? join(opts.outdir, 'index.mjs') : opts.outfile}.meta.json`, JSON.stringify(result.metafile));
  return result;
}

export default { ...esbuild, build };
