/**
 * Helpers of the Go-client suite: the crane, oras and regctl binaries (built from the Go module
 * proxy by install.sh, once), a real `npm start` server per test on a free loopback port with a
 * fresh data folder, and a runner that fails with the command's output and the server's log.
 *
 * With BERTH_TEST_S3_ENDPOINT / BERTH_TEST_DYNAMODB_ENDPOINT (see test/backends/start.sh) set,
 * each server runs on those back ends, on a table and bucket of its own.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { externalBackends, provision } from '../backends/provision.js';

const root = resolve(import.meta.dirname, '../..');

let binDir: string | undefined;
/** Absolute path of a client binary, building the clients first if any is missing. */
export function bin(name: 'crane' | 'oras' | 'regctl'): string {
  binDir ??= execFileSync('bash', [join(root, 'test/clients/install.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return join(binDir, name);
}

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** A running `npm start` (`node infra/local/start.mjs`: infra/local/main.ts bundled) child process. */
export interface Berth {
  /** `127.0.0.1:<port>`, as clients name the registry. */
  host: string;
  url: string;
  /** Everything the server printed: one line per request (`METHOD path status …`). */
  log(): string[];
  stop(): Promise<void>;
}

export async function startBerth(): Promise<Berth> {
  const port = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-clients-'));
  const external = externalBackends() ? await provision('clients') : {};
  const child: ChildProcess = spawn(process.execPath, ['infra/local/start.mjs'], {
    cwd: root,
    // Anonymous access, as `npm start` has it by default: these tests are about the protocol.
    env: { ...process.env, ...external, PORT: String(port), HOST: '127.0.0.1', BERTH_DATA_DIR: dataDir, BERTH_AUTH: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}):\n${output}`);
    const ok = await fetch(`${url}/v2/`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`npm start did not answer on ${url} within 30 s:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 200));
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    log: () => output.split('\n').filter(Boolean),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A scratch folder that is also the clients' HOME (their config and credentials stay in it). */
export async function scratch(): Promise<{ dir: string; env: NodeJS.ProcessEnv; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-client-home-'));
  const env = { ...process.env, HOME: dir, DOCKER_CONFIG: join(dir, '.docker'), XDG_CONFIG_HOME: join(dir, '.config') };
  return { dir, env, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a client command; fails the test with its output (and the server's last log lines) when
 * it exits non-zero, or after 3 minutes.
 */
export function run(berth: Berth | undefined, file: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<RunResult> {
  return new Promise((done, fail) => {
    execFile(file, args, { env, cwd, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 }, (error, stdout, stderr) => {
      if (error) {
        const log = berth ? `\n-- server log (last 40 lines) --\n${berth.log().slice(-40).join('\n')}` : '';
        fail(new Error(`${file.split('/').pop()} ${args.join(' ')} failed (${error.code ?? error.signal}):\n${stdout}\n${stderr}${log}`));
      } else {
        done({ stdout, stderr });
      }
    });
  });
}

/** Writes a tar file with `files` (name → bytes) using the system tar; returns its path. */
export async function makeTar(dir: string, name: string, files: Record<string, Uint8Array>): Promise<string> {
  const content = join(dir, `${name}.d`);
  await mkdir(content, { recursive: true });
  for (const [file, bytes] of Object.entries(files)) await writeFile(join(content, file), bytes);
  const tar = join(dir, `${name}.tar`);
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', tar, '-C', content, '.']);
  return tar;
}

export function randomFiles(prefix: string, count: number, size: number): Record<string, Uint8Array> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}-${i}.bin`, randomBytes(size)]));
}

/** Requests the server saw, as `METHOD path status` lines, filtered by method and path fragment. */
export function requests(berth: Berth, method: string, pathPart = ''): string[] {
  return berth.log().filter((line) => line.startsWith(`${method} `) && line.split(' ')[1]?.includes(pathPart));
}

/** Fetches a manifest's exact bytes over HTTP (no client involved) and checks its digest. */
export async function manifestBytes(berth: Berth, repository: string, reference: string, accept: string): Promise<Buffer> {
  const response = await fetch(`${berth.url}/v2/${repository}/manifests/${reference}`, { headers: { Accept: accept } });
  assert.equal(response.status, 200, `GET manifest ${repository}:${reference}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.equal(response.headers.get('docker-content-digest'), sha256(bytes));
  return bytes;
}
