/**
 * zod for Berth's schemas: its functional API (`zod/mini`), whose checks tree-shake — the chained
 * API put ~190 kB into every Lambda bundle (test/bench/RESULTS.md) — with English messages, which
 * zod/mini leaves to the caller (https://zod.dev/packages/mini). Import it as a namespace
 * (`import * as z`), which esbuild still tree-shakes.
 */
import { config } from 'zod/mini';
import { en } from 'zod/locales';

config(en());

export * from 'zod/mini';
