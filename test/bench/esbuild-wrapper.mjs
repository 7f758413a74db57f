// esbuild as infra/build.mjs sees it under test/bench/esbuild-hook.mjs: the same `build`, plus
//  * BENCH_ESBUILD_OUTDIR: write the bundles below this folder instead of dist/ (dist/ untouched);
//  * BENCH_ESBUILD_VARIANT: JSON {external?, mainFields?, stub?: [module names]} applied on top of
//    the script's own options (`stub` replaces those modules by empty classes);
//  * always a metafile, written next to each bundle as <outfile>.meta.json.
import * as esbuild from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

export * from 'esbuild';

const stubs = (names) => ({
  name: 'bench-stub',
  setup(b) {
    const filter = new RegExp(`^(${names.map((n) => n.replace(/[/.@-]/g, (c) => `\\${c}`)).join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'bench-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'bench-stub' }, () => ({
      // Any named import resolves to an empty class: enough for modules that are only constructed on demand.
      contents: 'module.exports = new Proxy({}, { get: (_, name) => name === "__esModule" ? false : class {} });',
      loader: 'js',
    }));
  },
});

export async function build(options) {
  const variant = process.env.BENCH_ESBUILD_VARIANT ? JSON.parse(process.env.BENCH_ESBUILD_VARIANT) : {};
  const opts = { ...options, metafile: true };
  if (variant.external) opts.external = [...(opts.external ?? []), ...variant.external];
  if (variant.mainFields) opts.mainFields = variant.mainFields;
  if (variant.stub) opts.plugins = [stubs(variant.stub), ...(opts.plugins ?? [])];
  if (process.env.BENCH_ESBUILD_OUTDIR) opts.outfile = join(process.env.BENCH_ESBUILD_OUTDIR, relative(process.cwd(), options.outfile));
  const result = await esbuild.build(opts);
  await writeFile(`${opts.outfile}.meta.json`, JSON.stringify(result.metafile));
  return result;
}

export default { ...esbuild, build };
