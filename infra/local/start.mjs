#!/usr/bin/env node
// `npm start`: runs dist/local/main.mjs, infra/local/main.ts bundled by esbuild, made again first
// when a source has changed since (infra/program.mjs). The embedded emulators stay packages of
// their own, loaded only when the emulated deployment or BERTH_BACKEND=emulators asks for them.
import { launch } from '../program.mjs';
import { LOCAL_SERVER } from './program.mjs';

await launch(LOCAL_SERVER, 'infra/local/main.ts');
