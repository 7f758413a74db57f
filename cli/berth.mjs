#!/usr/bin/env node
// `npx berth`: runs dist/cli.mjs, the CLI bundled by esbuild, made again first when a source has
// changed since (infra/program.mjs).
import { launch } from '../infra/program.mjs';
import { CLI } from './build.mjs';

await launch(CLI, 'cli/main.ts');
