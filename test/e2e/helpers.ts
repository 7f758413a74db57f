/**
 * Shared helpers of the end-to-end suite: running real clients (docker, skopeo, ctr) as child
 * processes, a registry server (`infra/local/main.ts`) per test file as its own process on a
 * free port over a fresh data folder, test images, and cleanup of everything a test creates.
 *
 * Prerequisites (test/e2e/setup.sh): dockerd running, skopeo, containerd (`ctr`), debootstrap, openssl.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startContainerd, type ContainerdDaemon } from '../frontdoor/daemons.js';

/** The repository root (where `infra/local/main.ts` lives). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Distinguishes the images and tags of this run from anything else on the shared dockerd. */
export const RUN_ID = randomBytes(4).toString('hex');

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Child processes

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill (SIGKILL, by PID) after this long; the result then has `timedOut`. */
  timeoutMs?: number;
  /** Sees output as it arrives (stdout and stderr). */
  onOutput?: (text: string) => void;
  /** Receives the child right after spawning (for its PID). */
  onSpawn?: (child: ChildProcess) => void;
  /** Written to the child's standard input (otherwise it gets none). */
  input?: string;
}

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived. */
  output: string;
  timedOut: boolean;
}

/** Runs a command to its end; never throws for a failing exit (see {@link runOk}). */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const line = [command, ...args].map(quote).join(' ');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    options.onSpawn?.(child);
    if (options.input !== undefined) {
      child.stdin!.on('error', () => undefined); // a child that exits without reading its input
      child.stdin!.end(options.input);
    }
    let stdout = '';
    let stderr = '';
    let output = '';
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
          }, options.timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      output += text;
      options.onOutput?.(text);
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      output += text;
      options.onOutput?.(text);
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${line}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ command: line, code, signal, stdout, stderr, output, timedOut });
    });
  });
}

/** Runs a command and throws, with its whole output, unless it exits 0. */
export async function runOk(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(describeFailure(result));
  return result;
}

/** A readable account of a finished command, for assertion messages. */
export function describeFailure(result: RunResult): string {
  const how = result.timedOut ? 'timed out' : result.signal ? `was killed by ${result.signal}` : `exited ${result.code}`;
  return `\`${result.command}\` ${how}; output:\n${result.output.trimEnd()}`;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Waits for a child to exit (resolves at once when it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => child.once('exit', () => resolvePromise()));
}

/** SIGTERM by PID, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = exited(child);
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }, graceMs);
  await gone;
  clearTimeout(timer);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolvePromise) => setTimeout(resolvePromise, ms));
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Temporary folders and cleanup

/** Things to undo after a test file, in reverse order of registration. */
export class Cleanup {
  private readonly steps: Array<{ what: string; undo: () => Promise<unknown> }> = [];

  add(what: string, undo: () => Promise<unknown>): void {
    this.steps.push({ what, undo });
  }

  /** A fresh temporary folder, removed at cleanup. */
  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `berth-e2e-${prefix}-`));
    this.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  /** Removes the local docker images `refs` at cleanup (whatever of them still exists). */
  images(...refs: string[]): void {
    for (const ref of refs) this.add(`docker rmi ${ref}`, () => removeImages(ref));
  }

  async run(): Promise<void> {
    const problems: string[] = [];
    for (const { what, undo } of this.steps.splice(0).reverse()) {
      try {
        await undo();
      } catch (error) {
        problems.push(`${what}: ${(error as Error).message}`);
      }
    }
    if (problems.length > 0) console.error(`cleanup problems:\n${problems.join('\n')}`);
  }
}

/** Total size in bytes of the files under `dir` (files may vanish while it walks). */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await folderBytes(path);
    else if (entry.isFile()) total += await stat(path).then((s) => s.size, () => 0);
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// The registry under test

/** A free TCP port (listen on port 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolvePromise, reject) => server.once('error', reject).listen(0, '0.0.0.0', resolvePromise));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
  return port;
}

/** The status of a GET of `url` over HTTPS trusting `ca` (PEM) only; undefined when it cannot connect. */
export function httpsStatus(url: string, ca: string): Promise<number | undefined> {
  return new Promise((done) => {
    httpsGet(url, { ca }, (response) => done(response.resume().statusCode))
      .on('error', () => done(undefined))
      .end();
  });
}

/** `npm start` as a child process: `node infra/local/start.mjs` (infra/local/main.ts bundled). */
export class RegistryProcess {
  /** Everything it printed (stdout and stderr), one entry per line. */
  readonly lines: string[] = [];
  private partial = '';

  private constructor(
    readonly port: number,
    readonly dataDir: string,
    readonly child: ChildProcess,
    /** `https` when the server was started with a certificate (`ca` of {@link RegistryProcess.start}). */
    readonly scheme: 'http' | 'https' = 'http',
  ) {}

  /** `127.0.0.1:<port>`, as clients name the registry. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `${this.scheme}://${this.host}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts a registry and waits until `GET /v2/` answers 200 (401 with `BERTH_AUTH=required` in
   * `env`, which is passed on to the server). Without `port`, a free one; without `dataDir`, a
   * fresh temporary folder (removed by `cleanup`). With `ca` (PEM), the server serves HTTPS
   * (`BERTH_TLS_CERT` and `BERTH_TLS_KEY` in `env`) with a certificate that CA signed.
   */
  static async start(
    cleanup: Cleanup,
    options: { port?: number; dataDir?: string; env?: Record<string, string>; ca?: string } = {},
  ): Promise<RegistryProcess> {
    const port = options.port ?? (await freePort());
    const dataDir = options.dataDir ?? (await cleanup.tempDir('data'));
    const env: Record<string, string | undefined> = { ...process.env };
    // The e2e suite tests the local stack on its embedded emulators, whatever the caller's
    // environment says; auth is off (like `npm start`) unless `options.env` turns it on.
    delete env.HOST;
    delete env.BERTH_S3_ENDPOINT;
    delete env.BERTH_DYNAMODB_ENDPOINT;
    delete env.BERTH_AUTH;
    Object.assign(env, options.env, { PORT: String(port), BERTH_DATA_DIR: dataDir });
    const ready = env.BERTH_AUTH === 'required' ? 401 : 200;
    const child = spawn(process.execPath, ['infra/local/start.mjs'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const registry = new RegistryProcess(port, dataDir, child, options.ca ? 'https' : 'http');
    cleanup.add(`stop registry (pid ${child.pid})`, () => stopChild(child));
    child.stdout!.setEncoding('utf8').on('data', (text: string) => registry.take(text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => registry.take(text));
    await waitFor(
      `the registry on port ${port} to answer GET /v2/ with ${ready}`,
      async () => {
        if (!registry.running) throw new Error(`the registry exited (${child.exitCode ?? child.signalCode}):\n${registry.tail()}`);
        const status = options.ca ? await httpsStatus(`${registry.url}/v2/`, options.ca) : await fetch(`${registry.url}/v2/`).then(
          async (response) => (await response.body?.cancel(), response.status),
          () => undefined,
        );
        // 200 where 401 was expected (or the reverse): auth is not what the test asked for.
        if ((status === 200 || status === 401) && status !== ready) {
          throw new Error(`GET /v2/ answered ${status}, expected ${ready} (BERTH_AUTH=${env.BERTH_AUTH ?? 'unset'})`);
        }
        return status === ready;
      },
      60_000,
      200,
    );
    return registry;
  }

  /**
   * `npx berth <args>` on this registry's data (it must be running), from the repository root.
   * Never throws for a failing exit; see {@link berthOk}.
   */
  berth(args: string[], input?: string): Promise<RunResult> {
    return run('npx', ['berth', ...args], { env: { BERTH_DATA_DIR: this.dataDir }, input, timeoutMs: 60_000 });
  }

  /** `npx berth <args>`, which must exit 0. */
  async berthOk(args: string[], input?: string): Promise<RunResult> {
    const result = await this.berth(args, input);
    if (result.code !== 0) throw new Error(describeFailure(result));
    return result;
  }

  /** `npx berth user add <name> --password-stdin --role <role> [--repo <pattern>…]`. */
  async addUser(name: string, password: string, role: 'reader' | 'writer' | 'admin', repos: string[] = []): Promise<void> {
    const result = await this.berthOk(['user', 'add', name, '--password-stdin', '--role', role, ...repos.flatMap((r) => ['--repo', r])], `${password}\n`);
    if (!result.stdout.includes(`added user ${name}`)) throw new Error(`unexpected output of ${result.command}:\n${result.output}`);
  }

  /** `npx berth robot add <name> --role <role> [--repo …]`: the printed user name and token. */
  async addRobot(name: string, role: 'reader' | 'writer' | 'admin', repos: string[] = []): Promise<{ username: string; token: string }> {
    const result = await this.berthOk(['robot', 'add', name, '--role', role, ...repos.flatMap((r) => ['--repo', r])]);
    const username = /^username:\s*(\S+)$/m.exec(result.stdout)?.[1];
    const token = /^token:\s*(\S+)$/m.exec(result.stdout)?.[1];
    if (!username || !token) throw new Error(`no username/token in the output of ${result.command}:\n${result.output}`);
    return { username, token };
  }

  private take(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop()!;
    this.lines.push(...parts);
  }

  /** The last `count` lines it printed, for failure messages. */
  tail(count = 60): string {
    return [...this.lines, this.partial].filter(Boolean).slice(-count).join('\n');
  }

  /**
   * Request log lines `METHOD /path STATUS …` matching `method`, `path` (regexp) and `status`, one
   * per request: behind the emulated CloudFront (`BERTH_EMULATE_LAMBDA=1`) a request it passes to
   * the API is logged twice, by CloudFront (`origin=api`) and by the API Gateway emulator; the
   * second line is the one kept.
   */
  requests(method: string, path: RegExp, status?: number): string[] {
    return this.lines.filter((line) => {
      const [m, p, s] = line.split(' ');
      return m === method && p !== undefined && path.test(p) && (status === undefined || Number(s) === status) && !line.includes(' origin=api');
    });
  }

  /** Stops it (SIGTERM, then SIGKILL) and waits until it is gone. */
  stop(): Promise<void> {
    return stopChild(this.child);
  }

  /** `kill -9`: no chance to finish anything. */
  async crash(): Promise<void> {
    const gone = exited(this.child);
    process.kill(this.pid, 'SIGKILL');
    await gone;
  }
}

/** A digest `sha256:<hex>` of `bytes`. */
export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Manifest media types docker, skopeo and containerd accept. */
export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

export interface FetchedManifest {
  status: number;
  digestHeader: string | null;
  contentType: string | null;
  bytes: Buffer;
  json: { config: { digest: string; mediaType: string }; layers: Array<{ digest: string; size: number; mediaType: string }>; mediaType?: string };
}

/** An `Authorization` header with Basic credentials (Berth accepts them directly on `/v2/`). */
export function basicAuth(username: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}

/** GET `/v2/<name>/manifests/<reference>` with the usual Accept list (and `headers`, e.g. {@link basicAuth}). */
export async function getManifest(registry: RegistryProcess, name: string, reference: string, headers: Record<string, string> = {}): Promise<FetchedManifest> {
  const response = await fetch(`${registry.url}/v2/${name}/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT, ...headers } });
  const bytes = Buffer.from(await response.arrayBuffer());
  return {
    status: response.status,
    digestHeader: response.headers.get('docker-content-digest'),
    contentType: response.headers.get('content-type'),
    bytes,
    json: response.status === 200 ? JSON.parse(bytes.toString('utf8')) : undefined,
  };
}

/** Status (and headers) of a `HEAD` on `path` (below `/v2/`). */
export async function head(registry: RegistryProcess, path: string): Promise<Response> {
  const response = await fetch(`${registry.url}/v2/${path}`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } });
  await response.body?.cancel();
  return response;
}

// ---------------------------------------------------------------------------------------------
// docker

/** A docker CLI bound to its own temporary `DOCKER_CONFIG`. */
export class Docker {
  private constructor(readonly configDir: string) {}

  static async create(cleanup: Cleanup): Promise<Docker> {
    const dir = await cleanup.tempDir('docker-config');
    await writeFile(join(dir, 'config.json'), '{}\n');
    return new Docker(dir);
  }

  get env(): Record<string, string> {
    return { DOCKER_CONFIG: this.configDir };
  }

  run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return run('docker', args, { ...options, env: { ...this.env, ...options.env } });
  }

  ok(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return runOk('docker', args, { ...options, env: { ...this.env, ...options.env } });
  }

  /** `docker login <host> -u <username> --password-stdin`; never throws (a refused login is a result too). */
  login(host: string, username: string, password: string): Promise<RunResult> {
    return this.run(['login', host, '-u', username, '--password-stdin'], { input: `${password}\n`, timeoutMs: 60_000 });
  }

  /** The registries `config.json` holds credentials for. */
  async loggedIn(): Promise<string[]> {
    const config = await readJson<{ auths?: Record<string, unknown> }>(join(this.configDir, 'config.json'));
    return Object.keys(config.auths ?? {});
  }

  async imageId(ref: string): Promise<string> {
    return (await this.ok(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
  }

  async layerCount(ref: string): Promise<number> {
    return Number((await this.ok(['image', 'inspect', '--format', '{{len .RootFS.Layers}}', ref])).stdout.trim());
  }

  async exists(ref: string): Promise<boolean> {
    return (await this.run(['image', 'inspect', ref])).code === 0;
  }

  /**
   * Removes the image `ref` from the daemon entirely (every tag of it), so that a later pull
   * must download its layers, and checks that it is gone.
   */
  async forget(ref: string): Promise<void> {
    const id = await this.imageId(ref);
    const list = async (field: string) =>
      (await this.ok(['image', 'inspect', '--format', `{{range .${field}}}{{println .}}{{end}}`, id])).stdout.split('\n').filter(Boolean);
    const tags = await list('RepoTags');
    const others = tags.filter((tag) => !tag.includes(RUN_ID));
    if (others.length > 0) throw new Error(`image ${id} of ${ref} also carries tags of others (${others.join(', ')}); not removing it`);
    if (tags.length > 0) await this.ok(['rmi', ...tags]);
    if (await this.exists(id)) await this.ok(['rmi', ...(await list('RepoDigests'))]);
    if (await this.exists(id)) throw new Error(`image ${id} still exists after docker rmi`);
  }

  /** `docker push`, which must succeed. Returns the output and the pushed manifest digest. */
  async push(ref: string, timeoutMs = 240_000): Promise<{ output: string; digest: string }> {
    const result = await this.ok(['push', ref], { timeoutMs });
    const digest = /digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(result.output)?.[1];
    if (!digest) throw new Error(`no digest in the output of docker push ${ref}:\n${result.output}`);
    return { output: result.output, digest };
  }

  /**
   * `docker pull`, which must succeed and must have downloaded `layers` layers (none of them
   * "Already exists" locally).
   */
  async pull(ref: string, layers: number, timeoutMs = 240_000): Promise<string> {
    const { output } = await this.ok(['pull', ref], { timeoutMs });
    const complete = output.split('\n').filter((line) => /: Pull complete$/.test(line.trim())).length;
    if (/Already exists/.test(output) || complete !== layers) {
      throw new Error(`docker pull ${ref} should have downloaded ${layers} layer(s), but reported ${complete} "Pull complete":\n${output}`);
    }
    return output;
  }
}

/** Removes local images by reference, ignoring those that do not exist. */
export async function removeImages(...refs: string[]): Promise<void> {
  for (const ref of refs) {
    const result = await run('docker', ['rmi', ref]);
    if (result.code !== 0 && !/No such image|image not known/i.test(result.output)) throw new Error(describeFailure(result));
  }
}

/** Writes `size` random bytes to `path` (streamed, 1 MiB at a time). */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(path);
  for (let left = size; left > 0; left -= MiB) {
    if (!out.write(randomBytes(Math.min(MiB, left)))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolvePromise, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolvePromise())));
}

/** A file tree: path → contents, or a number for that many random bytes. */
export type Tree = Record<string, string | number>;

async function writeTree(dir: string, tree: Tree): Promise<void> {
  for (const [path, content] of Object.entries(tree)) {
    const target = join(dir, path);
    if (typeof content === 'number') await writeRandomFile(target, content);
    else {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, content);
    }
  }
}

/**
 * `docker import` of a tarball of `tree` as `ref`, every file also stamped with the run id so
 * that no other image on the daemon shares its layer. Returns the image id.
 */
export async function importImage(docker: Docker, cleanup: Cleanup, ref: string, tree: Tree): Promise<string> {
  const dir = await cleanup.tempDir('import');
  const root = join(dir, 'rootfs');
  await writeTree(root, { ...tree, 'etc/berth-e2e': `${RUN_ID} ${ref} ${randomBytes(16).toString('hex')}\n` });
  const tarball = join(dir, 'rootfs.tar');
  await runOk('tar', ['--numeric-owner', '-C', root, '-cf', tarball, '.']);
  cleanup.images(ref);
  await docker.ok(['import', '--change', `LABEL berth-e2e=${RUN_ID}`, tarball, ref], { timeoutMs: 300_000 });
  await rm(dir, { recursive: true, force: true });
  return docker.imageId(ref);
}

/**
 * A multi-layer image built `FROM scratch` with one `COPY` per tree (legacy builder, as
 * CLIENTS.md says), with `labels` as `LABEL` steps. Returns the image id.
 */
export async function buildImage(docker: Docker, cleanup: Cleanup, ref: string, layers: Tree[], labels: Record<string, string> = {}): Promise<string> {
  const dir = await cleanup.tempDir('build');
  const steps = ['FROM scratch'];
  for (const [index, tree] of layers.entries()) {
    await writeTree(join(dir, `layer${index}`), { ...tree, [`layer${index}.stamp`]: `${RUN_ID} ${index} ${randomBytes(16).toString('hex')}\n` });
    steps.push(`COPY layer${index}/ /`);
  }
  steps.push(`LABEL berth-e2e=${RUN_ID}`);
  for (const [key, value] of Object.entries(labels)) steps.push(`LABEL ${key}=${JSON.stringify(value)}`);
  await writeFile(join(dir, 'Dockerfile'), `${steps.join('\n')}\n`);
  cleanup.images(ref);
  await docker.ok(['build', '--no-cache', '--rm', '--force-rm', '-t', ref, dir], { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 600_000 });
  await rm(dir, { recursive: true, force: true });
  return docker.imageId(ref);
}

// ---------------------------------------------------------------------------------------------
// skopeo

const SYSTEM_BLOB_INFO_CACHE = '/var/lib/containers/cache';

/**
 * skopeo with a blob-info cache of its own: skopeo's cache (/var/lib/containers/cache for root)
 * changes what it sends, so every command runs in a private mount namespace with a temporary
 * folder bound over that path, and with an empty auth file of its own (REGISTRY_AUTH_FILE).
 */
export class Skopeo {
  private constructor(
    readonly blobInfoCache: string,
    readonly authFile: string,
  ) {}

  static async create(cleanup: Cleanup): Promise<Skopeo> {
    const blobInfoCache = await cleanup.tempDir('skopeo-cache');
    const authFile = join(await cleanup.tempDir('skopeo-auth'), 'auth.json');
    await writeFile(authFile, '{"auths":{}}\n');
    await mkdir(SYSTEM_BLOB_INFO_CACHE, { recursive: true });
    return new Skopeo(blobInfoCache, authFile);
  }

  /** `skopeo <args>`; never throws for a failing exit. */
  run(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    return run(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', `mount --bind "$0" ${SYSTEM_BLOB_INFO_CACHE} && exec skopeo "$@"`, this.blobInfoCache, ...args],
      { env: { REGISTRY_AUTH_FILE: this.authFile }, timeoutMs },
    );
  }

  /** `skopeo <args>`, which must exit 0. */
  async ok(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    const result = await this.run(args, timeoutMs);
    if (result.code !== 0) throw new Error(describeFailure(result));
    return result;
  }
}

// ---------------------------------------------------------------------------------------------
// containerd

/**
 * `ctr` on a containerd of its own (test/frontdoor/daemons.ts's `startContainerd`: root, state and
 * sockets under `dir`, CRI plugins disabled, stopped by PID): Debian's `containerd` and `ctr` from
 * PATH unless `binaries` names others (e.g. containerd 2.4 from test/frontdoor/tools.sh).
 */
export class Containerd {
  private constructor(
    readonly daemon: ContainerdDaemon,
    readonly ctrBinary: string,
    readonly namespace: string,
  ) {}

  static async start(cleanup: Cleanup, dir: string, namespace = 'test', binaries: { containerd?: string; ctr?: string } = {}): Promise<Containerd> {
    const ctr = binaries.ctr ?? 'ctr';
    const daemon = await startContainerd(binaries.containerd ?? 'containerd', { cleanup, ctr, dir });
    return new Containerd(daemon, ctr, namespace);
  }

  get dir(): string {
    return this.daemon.dir;
  }

  /** The gRPC socket (`ctr -a`). */
  get socket(): string {
    return this.daemon.address;
  }

  /** The last lines of its log, for failure messages. */
  log(): Promise<string> {
    return this.daemon.log(40);
  }

  /** `ctr -a <socket> -n <namespace> <args>`; never throws for a failing exit. */
  run(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    return run(this.ctrBinary, ['-a', this.socket, '-n', this.namespace, ...args], { timeoutMs });
  }

  /** `ctr … <args>`, which must exit 0. */
  async ctr(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    const result = await this.run(args, timeoutMs);
    if (result.code !== 0) throw new Error(describeFailure(result));
    return result;
  }

  /** `ctr images ls` as ref → manifest digest. */
  async images(): Promise<Map<string, string>> {
    const lines = (await this.ctr(['images', 'ls'])).stdout.trim().split('\n').slice(1);
    return new Map(
      lines.filter(Boolean).map((line) => {
        const [ref, , digest] = line.split(/\s+/);
        return [ref, digest] as [string, string];
      }),
    );
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Reading files

export async function readJson<T = any>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

/** Runs `body`, adding the last log lines of the registry under test (if any yet) to any failure. */
export function withRegistryLog(registry: () => RegistryProcess | undefined, body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (error) {
      const current = registry();
      if (error instanceof Error && current) error.message += `\n--- registry log (last lines) ---\n${current.tail()}`;
      throw error;
    }
  };
}
