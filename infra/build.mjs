// Bundles each Lambda entry point with esbuild for the nodejs22.x runtime (arm64): one minified
// ES module per function with its source map, AWS SDK included so the code runs against the
// SDK version it was tested with.
import { build } from 'esbuild';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * zod re-exports its 40-odd message locales (`export * as locales`), which defeats tree shaking
 * and puts ~350 KB into every bundle, a fifth of the cold-start parse. Berth's messages are
 * English: the locale index resolves to English alone.
 */
const englishOnlyZod = {
  name: 'english-only-zod',
  setup(build) {
    const en = join(dirname(createRequire(import.meta.url).resolve('zod/v4/locales/en.js')), 'en.js');
    build.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${join('node_modules', 'zod')}`) ? { path: 'zod-locales-en', namespace: 'zod-locales' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'zod-locales' }, () => ({ contents: `export { default as en } from ${JSON.stringify(en)};`, loader: 'js', resolveDir: dirname(en) }));
  },
};

const entries = { api: 'functions/api.ts', verify: 'functions/verify.ts', gc: 'functions/gc.ts' };

for (const [name, entry] of Object.entries(entries)) {
  const outfile = `dist/${name}/index.mjs`;
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    plugins: [englishOnlyZod],
    // For platform 'node' esbuild prefers the `main` (CommonJS) builds, which the AWS SDK ships
    // without tree shaking; its ES module builds shrink the bundle by a quarter and the cold start with it.
    mainFields: ['module', 'main'],
    // Some bundled CommonJS dependencies call require(); give the ES module one.
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  console.log(`${outfile}: ${(await stat(outfile)).size} bytes`);
}
