#!/usr/bin/env node
// `npx berth`: runs dist/cli.mjs, the CLI bundled by esbuild (cli/build.mjs), made again first when
// a source has changed since; where it cannot be made (esbuild not installed, a read-only
// checkout), the TypeScript runs through tsx.
import { buildCli, CLI_BUNDLE, cliBundleIsFresh } from './build.mjs';

async function bundled() {
  if (await cliBundleIsFresh()) return true;
  try {
    await buildCli();
    return true;
  } catch {
    return false;
  }
}

if (await bundled()) {
  await import(CLI_BUNDLE.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./main.ts');
}
