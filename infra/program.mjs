// A Node program as one ES module: a TypeScript entry with the sources and packages it imports,
// bundled and minified by esbuild, so that starting it takes Node alone (tsx would compile every
// TypeScript file again at each start, keep the compiler in memory, and Node would load the
// packages file by file). Used for `npx berth` (dist/cli.mjs) and `npm start` (dist/local/main.mjs);
// each is made by `npm run build`, and again by its launcher whenever a source has changed.
import { readFile, rename, stat, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = new URL('..', import.meta.url);

/**
 * The bundle of `entry` (a path relative to the repository root) at `bundle` (likewise), with
 * `external` packages left to Node (loaded from node_modules when the program imports them).
 * @returns `{ url, isFresh(), build() }`: the bundle's file URL; whether it exists and is newer
 *   than every file it was made from (recorded beside it); and the build, which writes a
 *   temporary file and renames it (a concurrent start never reads half a file) and resolves to
 *   the size in bytes (it throws what esbuild throws, or a file system error).
 */
export function program(entry, bundle, external = []) {
  const url = new URL(bundle, ROOT);
  const inputs = new URL(bundle.replace(/\.mjs$/, '.inputs.json'), ROOT);
  return {
    url,
    async isFresh() {
      try {
        const built = (await stat(url)).mtimeMs;
        const files = JSON.parse(await readFile(inputs, 'utf8'));
        const times = await Promise.all(files.map(async (file) => (await stat(new URL(file, ROOT))).mtimeMs));
        return times.every((time) => time <= built);
      } catch {
        return false;
      }
    },
    async build() {
      const { build } = await import('esbuild');
      const temporary = `${fileURLToPath(url)}.${process.pid}.tmp`;
      await mkdir(dirname(temporary), { recursive: true });
      const result = await build({
        absWorkingDir: fileURLToPath(ROOT),
        entryPoints: [entry],
        outfile: temporary,
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'esm',
        minify: true,
        external,
        // The packages' ES module builds (the AWS SDK's tree-shake); CommonJS ones call require().
        mainFields: ['module', 'main'],
        banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
        metafile: true,
        logLevel: 'silent',
      });
      // Packages change with an install, which rewrites npm's record of node_modules: one file to
      // compare instead of a thousand.
      const sources = Object.keys(result.metafile.inputs).filter((file) => !file.includes('node_modules/'));
      const installed = await stat(new URL('node_modules/.package-lock.json', ROOT)).then(() => ['node_modules/.package-lock.json'], () => []);
      await writeFile(inputs, JSON.stringify([...sources, 'package.json', ...installed]));
      await rename(temporary, url);
      return (await stat(url)).size;
    },
  };
}

/**
 * Imports the bundle of `target` (see {@link program}), made first when it is missing or stale;
 * where it cannot be made (esbuild not installed, a read-only checkout), the TypeScript entry
 * runs through tsx.
 */
export async function launch(target, entry) {
  const fresh = (await target.isFresh()) || (await target.build().then(() => true, () => false));
  if (fresh) return import(target.url.href);
  const { register } = await import('tsx/esm/api');
  register();
  return import(new URL(entry, ROOT).href);
}
