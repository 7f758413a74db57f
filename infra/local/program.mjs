// The local server as one ES module, dist/local/main.mjs (see infra/program.mjs).
import { program } from '../program.mjs';

/** `npm start`: infra/local/main.ts bundled, the embedded emulators left to node_modules. */
export const LOCAL_SERVER = program('infra/local/main.ts', 'dist/local/main.mjs', ['dynalite', 's3rver']);
