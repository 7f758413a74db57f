/** `npx berth …` and `npm start` as a person runs them: child processes from the repository root. */
import { run, type RunResult } from '../e2e/helpers.js';

/** Runs `npx berth <args>` (cli/berth.mjs) on the data folder `dataDir`, with `input` on its standard input. */
export function berth(args: string[], options: { dataDir?: string; input?: string; env?: Record<string, string | undefined> } = {}): Promise<RunResult> {
  const env = { BERTH_DATA_DIR: options.dataDir, ...options.env };
  return run(process.execPath, ['cli/berth.mjs', ...args], { env, input: options.input, timeoutMs: 60_000 });
}

/** Runs `npm start -- <args>` (infra/local/main.ts) until it exits, or kills it after `timeoutMs`. */
export function start(args: string[], env: Record<string, string | undefined>, timeoutMs = 30_000): Promise<RunResult> {
  return run(process.execPath, ['infra/local/start.mjs', ...args], { env, timeoutMs });
}
