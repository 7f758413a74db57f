// Bundles each Lambda entry point with esbuild for the nodejs22.x runtime (arm64): one minified
// ES module per function (dist/<function>/index.mjs) with its source map and the chunks it loads
// on demand (dist/<function>/chunks/), AWS SDK included so the code runs against the SDK version
// it was tested with.
import { build } from 'esbuild';
import { CLI } from '../cli/build.mjs';
import { LOCAL_SERVER } from './local/program.mjs';
import { readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';

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
  const result = await build({
    entryPoints: { index: entry },
    outdir: `dist/${name}`,
    // Modules loaded by import() (the SDK's rarely used credential providers, Berth's own lazy
    // parts) go to chunks next to the entry, which a cold start does not parse until they are needed.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
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
    metafile: true,
  });
  const written = Object.keys(result.metafile.outputs).map((file) => resolve(file));
  await removeStale(written);
  const code = written.filter((file) => file.endsWith('.mjs'));
  const sizes = await Promise.all(code.map(async (file) => (await stat(file)).size));
  const entrySize = sizes[code.findIndex((file) => file.endsWith(`${sep}index.mjs`))];
  console.log(`dist/${name}/index.mjs: ${entrySize} bytes; with its ${code.length - 1} chunks ${sizes.reduce((a, b) => a + b, 0)} bytes`);
}

/**
 * Deletes the chunks of earlier builds (their names carry a content hash) from the folders this
 * build wrote to: the package takes `dist/<function>/**` as it is.
 */
async function removeStale(written) {
  const keep = new Set(written);
  for (const dir of new Set(written.map((file) => dirname(file)))) {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isFile() && /\.mjs(\.map)?$/.test(entry.name) && !keep.has(join(dir, entry.name))) await rm(join(dir, entry.name));
    }
  }
}

console.log(`dist/cli.mjs (npx berth): ${await CLI.build()} bytes`);
console.log(`dist/local/main.mjs (npm start): ${await LOCAL_SERVER.build()} bytes`);
