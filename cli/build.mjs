// The CLI as one ES module, dist/cli.mjs (see infra/program.mjs). dist/cli.mjs sits one folder
// below the root, as cli/main.ts does: `new URL('../package.json', import.meta.url)` finds the
// same file from either.
import { program } from '../infra/program.mjs';

/** `npx berth`: cli/main.ts bundled into dist/cli.mjs. */
export const CLI = program('cli/main.ts', 'dist/cli.mjs');
