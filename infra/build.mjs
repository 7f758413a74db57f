// Bundles each Lambda entry point with esbuild for the nodejs22.x runtime (arm64): one minified
// ES module per function with its source map, AWS SDK included so the code runs against the
// SDK version it was tested with.
import { build } from 'esbuild';
import { stat } from 'node:fs/promises';

const entries = { api: 'functions/api.ts', verify: 'functions/verify.ts' };

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
    // Some bundled CommonJS dependencies call require(); give the ES module one.
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  console.log(`${outfile}: ${(await stat(outfile)).size} bytes`);
}
