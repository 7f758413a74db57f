/**
 * Berth as `npm start` runs it (`node infra/local/start.mjs`, infra/local/main.ts bundled: the native
 * metadata store and blobs as files, or the emulators with `BERTH_BACKEND=emulators` in the environment) on a
 * free port over a fresh data folder, its output going to a file like the reference registry's
 * (so that reading its request log costs the benchmark process nothing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cleanup, freePort, ROOT, stopChild, waitFor } from '../e2e/helpers.js';

/**
 * The arguments of `node` in package.json's `start` script (`exec node <flags> <file>`), so that the
 * benchmark runs exactly what `npm start` runs (its V8 flags included) as a process of its own.
 */
async function npmStartArguments(): Promise<string[]> {
  const { scripts } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = scripts.start.trim().split(/\s+/);
  if (words[0] !== 'exec' || words[1] !== 'node') throw new Error(`package.json's start script is not "exec node …": ${scripts.start}`);
  return words.slice(2);
}

export class BerthProcess {
  private constructor(
    readonly port: number,
    readonly dataDir: string,
    readonly logFile: string,
    readonly child: ChildProcess,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  static async start(cleanup: Cleanup): Promise<BerthProcess> {
    const dir = await cleanup.tempDir('berth');
    const dataDir = join(dir, 'data');
    const logFile = join(dir, 'berth.log');
    const port = await freePort();
    const env: Record<string, string | undefined> = { ...process.env };
    for (const name of ['HOST', 'BERTH_S3_ENDPOINT', 'BERTH_DYNAMODB_ENDPOINT', 'BERTH_AUTH', 'BERTH_BLOB_DELIVERY', 'BERTH_PART_SIZE', 'NODE_OPTIONS']) delete env[name];
    Object.assign(env, { PORT: String(port), HOST: '127.0.0.1', BERTH_DATA_DIR: dataDir });
    const log = openSync(logFile, 'a');
    const child = spawn(process.execPath, await npmStartArguments(), { cwd: ROOT, env, stdio: ['ignore', log, log] });
    closeSync(log);
    const berth = new BerthProcess(port, dataDir, logFile, child);
    cleanup.add(`stop Berth (pid ${child.pid})`, () => stopChild(child));
    await waitFor(
      `Berth on ${berth.url}`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Berth exited:\n${await berth.log()}`);
        const response = await fetch(`${berth.url}/v2/`).catch(() => undefined);
        await response?.body?.cancel();
        return response?.status === 200;
      },
      60_000,
      100,
    );
    return berth;
  }

  log(): Promise<string> {
    return readFile(this.logFile, 'utf8').then((text) => text.split('\n').slice(-40).join('\n'), () => '');
  }

  stop(): Promise<void> {
    return stopChild(this.child);
  }
}
