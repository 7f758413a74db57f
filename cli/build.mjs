// The CLI as one ES module, dist/cli.mjs: cli/main.ts with the sources and packages it imports,
// bundled and minified by esbuild. Starting it takes Node alone: tsx would compile every
// TypeScript file again at each start, and Node would load the packages file by file.
// Made by `npm run build`, and by cli/berth.mjs whenever a source it was made from has changed.
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// dist/cli.mjs sits one folder below the root, as cli/main.ts does: `new URL('../package.json',
// import.meta.url)` finds the same file from either.
export const CLI_BUNDLE = new URL('../dist/cli.mjs', import.meta.url);
/** The sources the bundle was made from (relative to the root), written beside it. */
const INPUTS = new URL('../dist/cli.inputs.json', import.meta.url);

/** Whether dist/cli.mjs exists and is newer than every file it was made from. */
export async function cliBundleIsFresh() {
  try {
    const built = (await stat(CLI_BUNDLE)).mtimeMs;
    const inputs = JSON.parse(await readFile(INPUTS, 'utf8'));
    const times = await Promise.all(inputs.map(async (file) => (await stat(new URL(`../${file}`, import.meta.url))).mtimeMs));
    return times.every((time) => time <= built);
  } catch {
    return false;
  }
}

/**
 * Bundles the CLI into dist/cli.mjs (written to a temporary file and renamed, so a concurrent
 * start never reads half a file). Returns its size in bytes.
 * @throws what esbuild throws (a syntax error in a source) or a file system error.
 */
export async function buildCli() {
  const { build } = await import('esbuild');
  const temporary = fileURLToPath(CLI_BUNDLE) + `.${process.pid}.tmp`;
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: ['cli/main.ts'],
    outfile: temporary,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: true,
    // The packages' ES module builds (the AWS SDK's tree-shake); CommonJS ones call require().
    mainFields: ['module', 'main'],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    metafile: true,
    logLevel: 'silent',
  });
  // Packages change with an install, which rewrites npm's record of node_modules: one file to
  // compare instead of a thousand.
  const sources = Object.keys(result.metafile.inputs).filter((file) => !file.includes('node_modules/'));
  const installed = await stat(new URL('../node_modules/.package-lock.json', import.meta.url)).then(() => ['node_modules/.package-lock.json'], () => []);
  await writeFile(INPUTS, JSON.stringify([...sources, 'package.json', ...installed]));
  await rename(temporary, CLI_BUNDLE);
  return (await stat(CLI_BUNDLE)).size;
}
