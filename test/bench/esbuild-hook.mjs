// `node --import ./test/bench/esbuild-hook.mjs infra/build.mjs`: runs the real build script with
// its `esbuild` import redirected to esbuild-wrapper.mjs, which adds a metafile and, driven by
// BENCH_ESBUILD_* variables, one change and another output folder. infra/ is not touched.
import { register } from 'node:module';

register('./esbuild-loader.mjs', import.meta.url);
