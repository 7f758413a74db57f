/**
 * `BERTH_EMULATE_LAMBDA=1 npm start` as a child process on a free loopback port over a fresh data
 * folder, and the few docker helpers the emulation tests need.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { externalBackends, provision } from '../backends/provision.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface EmulatedRegistry {
  url: string;
  /** Its BERTH_DATA_DIR (token and upload keys, the emulated KeyValueStore, the embedded back ends). */
  dataDir: string;
  host: string;
  log: string[];
  tail(lines?: number): string;
  /** The first log line matching `pattern`, waiting up to `ms` for it (output arrives asynchronously). */
  waitForLog(pattern: RegExp, ms?: number): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** Starts `npm start` (infra/local/start.mjs) with `BERTH_EMULATE_LAMBDA=1` (one node process, stopped by its PID). */
export async function startEmulatedRegistry(env: Record<string, string> = {}): Promise<EmulatedRegistry> {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-emulated-'));
  const port = await freePort();
  // On the back-end run (MinIO + moto) the deployment is emulated on them, each registry on a fresh table and bucket.
  const external = externalBackends() ? await provision('emulated') : {};
  const child: ChildProcess = spawn(process.execPath, ['infra/local/start.mjs'], {
    cwd: ROOT,
    env: { ...process.env, ...external, PORT: String(port), HOST: '127.0.0.1', BERTH_DATA_DIR: dataDir, BERTH_EMULATE_LAMBDA: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  let buffered = '';
  const collect = (text: string) => {
    buffered += text;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    log.push(...lines);
  };
  child.stdout!.setEncoding('utf8').on('data', collect);
  child.stderr!.setEncoding('utf8').on('data', collect);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 120_000;
  while (!log.some((l) => l.includes('registry listening'))) {
    if (child.exitCode !== null) throw new Error(`the emulated registry exited ${child.exitCode}:\n${log.join('\n')}${buffered}`);
    if (Date.now() > deadline) throw new Error(`the emulated registry did not start:\n${log.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    dataDir,
    host: `127.0.0.1:${port}`,
    log,
    tail: (lines = 40) => log.slice(-lines).join('\n'),
    async waitForLog(pattern, ms = 5000) {
      const until = Date.now() + ms;
      for (;;) {
        const line = log.find((l) => pattern.test(l));
        if (line !== undefined) return line;
        if (Date.now() > until) throw new Error(`no log line matches ${pattern}:\n${log.slice(-40).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command to its end (output interleaved), killing it by PID after `timeoutMs`. */
export function run(command: string, args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (output += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (output += t));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

/** A docker CLI with its own config folder (no stored logins), for one test file. */
export class Docker {
  private readonly images = new Set<string>();
  private constructor(private readonly config: string) {}

  static async create(): Promise<Docker> {
    const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 30_000 });
    if (info.code !== 0) throw new Error(`dockerd is not reachable (start it: dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none &):\n${info.output}`);
    return new Docker(await mkdtemp(join(tmpdir(), 'berth-docker-config-')));
  }

  run(args: string[], timeoutMs = 600_000): Promise<RunResult> {
    return run('docker', args, { env: { DOCKER_CONFIG: this.config }, timeoutMs });
  }

  async ok(args: string[], timeoutMs?: number): Promise<string> {
    const result = await this.run(args, timeoutMs);
    if (result.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${result.code}:\n${result.output}`);
    return result.output;
  }

  /** `docker import` of a tarball made of `files` (contents, or a size for random bytes). */
  async importImage(ref: string, files: Record<string, string | Buffer>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'berth-image-'));
    try {
      for (const [name, content] of Object.entries(files)) {
        await mkdir(dirname(join(dir, 'root', name)), { recursive: true });
        await writeFile(join(dir, 'root', name), content);
      }
      const tar = await run('tar', ['-C', join(dir, 'root'), '-cf', join(dir, 'image.tar'), '.']);
      if (tar.code !== 0) throw new Error(tar.output);
      this.images.add(ref);
      await this.ok(['import', join(dir, 'image.tar'), ref]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  track(ref: string): void {
    this.images.add(ref);
  }

  async cleanup(): Promise<void> {
    for (const ref of this.images) await this.run(['rmi', '-f', ref], 60_000);
    await rm(this.config, { recursive: true, force: true });
  }
}
