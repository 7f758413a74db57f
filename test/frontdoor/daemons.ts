/**
 * Private daemons for the front-door end-to-end tests: a containerd, a Docker 29 `dockerd` on
 * top of it, and a BuildKit `buildkitd`, each in a fresh temporary folder, listening on unix
 * sockets in that folder, and stopped by PID (SIGTERM, then SIGKILL) by its `stop()`, which
 * also unmounts whatever the daemon left mounted below its folder and removes the folder.
 *
 * The binaries come from `test/frontdoor/tools.sh` (built from the Go module proxy into
 * ~/.cache/berth/…); {@link frontdoorTools} runs it and returns their paths. Nothing here pulls
 * from Docker Hub. Needs root (the daemons mount snapshots) and runc (Debian package `runc`).
 *
 *   const tools = await frontdoorTools(['containerd', 'docker', 'buildkit']);
 *   const containerd = await startContainerd(tools.CONTAINERD!);
 *   const docker = await startDocker29({ dockerd: tools.DOCKERD!, containerd });
 *   await runOk('docker', ['push', ref], { env: docker.env });
 *   await docker.stop(); await containerd.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cleanup, ROOT, run, runOk, stopChild, waitFor } from '../e2e/helpers.js';

/** What every start function returns. */
export interface Daemon {
  /** The daemon's temporary folder (root, state, sockets, config, `daemon.log`). */
  readonly dir: string;
  readonly pid: number;
  /** The last `lines` lines of its log, for failure messages. */
  log(lines?: number): Promise<string>;
  /** Stops it by PID (SIGTERM, SIGKILL after a grace period), unmounts leftovers, removes `dir`. */
  stop(): Promise<void>;
}

export interface ContainerdDaemon extends Daemon {
  /** The gRPC socket path (`ctr -a <address>`, `dockerd --containerd <address>`). */
  readonly address: string;
  /** `containerd --version` of the binary, e.g. `v2.4.2` or `1.6.20~ds1`. */
  readonly version: string;
}

export interface DockerDaemon extends Daemon {
  /** `unix://…/docker.sock`, for `DOCKER_HOST`. */
  readonly host: string;
  /** `{ DOCKER_HOST }` to pass as `env` to `run('docker', …)`. */
  readonly env: Record<string, string>;
}

export interface BuildkitDaemon extends Daemon {
  /** `unix://…/buildkitd.sock`, for `buildctl --addr`. */
  readonly address: string;
}

/** Where tools.sh put the binaries: CONTAINERD, CTR, DOCKERD, BUILDKITD, BUILDCTL, NERDCTL, RUNC, DOCKER. */
export type FrontdoorTools = Partial<Record<'CONTAINERD' | 'CTR' | 'DOCKERD' | 'BUILDKITD' | 'BUILDCTL' | 'NERDCTL' | 'RUNC' | 'DOCKER', string>>;

/**
 * Runs `test/frontdoor/tools.sh <tools…>` (which builds what is not cached yet: minutes the first
 * time on a new machine) and parses its `NAME=/abs/path` lines.
 */
export async function frontdoorTools(tools: Array<'containerd' | 'docker' | 'buildkit' | 'nerdctl'> = ['containerd', 'docker', 'buildkit']): Promise<FrontdoorTools> {
  const result = await runOk('bash', [join(ROOT, 'test/frontdoor/tools.sh'), ...tools], {
    env: { PATH: `${process.env.PATH ?? ''}:/usr/local/go/bin` },
    timeoutMs: 60 * 60_000,
  });
  const paths: Record<string, string> = {};
  for (const line of result.stdout.split('\n')) {
    const match = /^([A-Z]+)=(\/.*)$/.exec(line.trim());
    if (match) paths[match[1]] = match[2];
  }
  return paths as FrontdoorTools;
}

// ---------------------------------------------------------------------------------------------
// Common machinery

/** Options every start function takes. */
export interface StartOptions {
  /** Registers `stop()` there too, so that a failing test still stops the daemon. */
  cleanup?: Cleanup;
  /** How long to wait for the daemon to answer (default 60 s). */
  readyTimeoutMs?: number;
}

async function freshDir(kind: string): Promise<string> {
  // Short paths: unix socket paths must stay under 108 bytes.
  return mkdtemp(join(tmpdir(), `berth-fd-${kind}-`));
}

/** Spawns `bin args` with stdout and stderr appended to `<dir>/daemon.log`. */
function spawnDaemon(dir: string, bin: string, args: string[], env: Record<string, string | undefined> = {}): ChildProcess {
  const log = openSync(join(dir, 'daemon.log'), 'a');
  try {
    return spawn(bin, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
}

function readLog(dir: string, lines = 60): Promise<string> {
  return readFile(join(dir, 'daemon.log'), 'utf8').then(
    (text) => text.split('\n').slice(-lines).join('\n'),
    () => '',
  );
}

/** Unmounts every mount point below `dir`, deepest first (daemons can leave snapshots or netns mounted). */
async function unmountBelow(dir: string): Promise<void> {
  const table = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = table
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .map((point) => point.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
  for (const point of points) await run('umount', ['-l', point]);
}

/**
 * Wraps a started child as a {@link Daemon}: waits until `ready()` is true (failing early with
 * the log when the child exits), and registers `stop()` with `cleanup`.
 */
async function supervise<T extends object>(
  what: string,
  dir: string,
  child: ChildProcess,
  ready: () => Promise<boolean>,
  options: StartOptions,
  extra: T,
): Promise<Daemon & T> {
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  let stopped: Promise<void> | undefined;
  const daemon: Daemon & T = {
    ...extra,
    dir,
    pid: child.pid!,
    log: (lines?: number) => readLog(dir, lines),
    stop: () =>
      (stopped ??= (async () => {
        await stopChild(child, 15_000);
        await unmountBelow(dir);
        await rm(dir, { recursive: true, force: true });
      })()),
  };
  options.cleanup?.add(`stop ${what} (pid ${child.pid})`, () => daemon.stop());
  try {
    await waitFor(
      `${what} to answer (log: ${join(dir, 'daemon.log')})`,
      async () => {
        if (exited()) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}); its log:\n${await readLog(dir)}`);
        return ready();
      },
      options.readyTimeoutMs ?? 60_000,
      250,
    );
  } catch (error) {
    if (error instanceof Error && !exited()) error.message += `\n--- ${what} log ---\n${await readLog(dir)}`;
    await daemon.stop();
    throw error;
  }
  return daemon;
}

// ---------------------------------------------------------------------------------------------
// containerd

export interface ContainerdOptions extends StartOptions {
  /** The matching `ctr` to probe readiness with (default: `ctr` beside `bin`, else from PATH). */
  ctr?: string;
  /** Its folder (created if missing; removed by `stop()`) instead of a fresh temporary one. */
  dir?: string;
}

/**
 * A containerd of its own under a fresh temporary folder: root, state, gRPC and ttrpc sockets
 * there; the CRI plugins disabled, no debug or metrics listener. Works with Debian's containerd
 * 1.6 (config `version = 2`) and with v2.x (the config version its `config default` prints:
 * 4 for v2.4, so no migration warning; version 4 puts the listeners in plugin sections). Both offer the `native` and `overlayfs` snapshotters
 * (overlayfs works on this machine's ext4 root; pick with `ctr … --snapshotter`).
 */
export async function startContainerd(bin: string, options: ContainerdOptions = {}): Promise<ContainerdDaemon> {
  const dir = options.dir ?? (await freshDir('containerd'));
  await mkdir(dir, { recursive: true });
  const address = join(dir, 'containerd.sock');
  const version = (await runOk(bin, ['--version'])).stdout.trim().split(/\s+/)[2] ?? 'unknown';
  // `containerd config default` names the newest config version the binary reads as `version = N`.
  const defaults = (await runOk(bin, ['config', 'default'])).stdout;
  const configVersion = Number(/^version = (\d+)/m.exec(defaults)?.[1] ?? 2);
  const disabled = ['io.containerd.grpc.v1.cri'];
  // containerd 2 splits CRI into several plugins; 1.6 ignores ids it does not know.
  if (configVersion >= 3) disabled.push('io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime', 'io.containerd.podsandbox.controller.v1.podsandbox', 'io.containerd.nri.v1.nri');
  // Config version 4 (containerd 2.4) moved [grpc], [ttrpc], [debug], [metrics] into plugin
  // sections; a top-level [grpc] there is silently ignored (it would listen on /run/containerd).
  const section = (name: string) => (configVersion >= 4 ? `[plugins.'io.containerd.server.v1.${name}']` : `[${name}]`);
  const config = [
    `version = ${configVersion}`,
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    `disabled_plugins = ${JSON.stringify(disabled)}`,
    section('grpc'),
    `  address = ${JSON.stringify(address)}`,
    section('ttrpc'),
    `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
    section('debug'),
    '  address = ""',
    section('metrics'),
    '  address = ""',
    // containerd 2's transfer service (what `ctr images pull` uses) unpacks only into the
    // snapshotters listed here; by default just overlayfs ("no unpack platforms defined" for
    // `--snapshotter native`).
    ...(configVersion >= 3
      ? ['overlayfs', 'native'].flatMap((snapshotter) => [
          `[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]`,
          `  platform = ${JSON.stringify(hostPlatform())}`,
          `  snapshotter = "${snapshotter}"`,
          '  differ = "walking"',
        ])
      : []),
    '',
  ].join('\n');
  await writeFile(join(dir, 'config.toml'), config);
  const ctr = options.ctr ?? (bin.includes('/') ? join(bin, '../ctr') : 'ctr');
  const child = spawnDaemon(dir, bin, ['--config', join(dir, 'config.toml')]);
  return supervise(`containerd ${version}`, dir, child, async () => (await run(ctr, ['-a', address, 'version'], { timeoutMs: 10_000 }).catch(() => undefined))?.code === 0, options, { address, version });
}

/** `linux/amd64` or `linux/arm64/v8`: the platform containerd unpacks for on this machine. */
function hostPlatform(): string {
  return process.arch === 'arm64' ? 'linux/arm64/v8' : `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;
}

// ---------------------------------------------------------------------------------------------
// Docker 29

export interface Docker29Options extends StartOptions {
  /** The Docker 29 daemon binary (moby/moby/v2 cmd/dockerd). */
  dockerd: string;
  /** The containerd it uses (its image store: the containerd snapshotter feature is on). */
  containerd: { address: string };
  /** The containerd snapshotter for images (`overlayfs` default; `native` works everywhere). */
  snapshotter?: string;
  /** Extra daemon.json settings (merged over the defaults). */
  config?: Record<string, unknown>;
}

/**
 * A Docker 29 daemon of its own under a fresh temporary folder (`--data-root`, `--exec-root`,
 * `--pidfile`, `-H unix://…`), on an existing containerd (`--containerd`), with the containerd
 * image store (`features.containerd-snapshotter`), no iptables and no bridge (containers, if
 * any, get no network). `127.0.0.1:<port>` and `localhost:<port>` registries are plain HTTP
 * without any `insecure-registries` entry. Use the machine's docker CLI with `env`
 * (`DOCKER_HOST`; add a private `DOCKER_CONFIG`, e.g. helpers' `Docker.env`); its API 1.50 is
 * within what Docker 29 accepts (1.40 to 1.56). Works on containerd 1.6 (Debian) and v2.4, with
 * the `overlayfs` or `native` snapshotter. `docker push` then goes through containerd's pusher:
 * HEAD blob, POST, one `PUT <Location>?digest=sha256%3A<hex>` with Content-Length and the whole
 * (gzip) layer, OCI image manifest.
 */
export async function startDocker29(options: Docker29Options): Promise<DockerDaemon> {
  const dir = await freshDir('docker');
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const config = {
    features: { 'containerd-snapshotter': true },
    'storage-driver': options.snapshotter ?? 'overlayfs',
    ...options.config,
  };
  await writeFile(join(dir, 'daemon.json'), `${JSON.stringify(config, null, 2)}\n`);
  const args = [
    '--config-file', join(dir, 'daemon.json'),
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'exec'),
    '--pidfile', join(dir, 'docker.pid'),
    '-H', host,
    '--containerd', options.containerd.address,
    '--containerd-namespace', 'moby',
    '--containerd-plugins-namespace', 'plugins.moby',
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    // Otherwise dockerd refuses to start without a docker-proxy binary ("userland-proxy is
    // enabled, but userland-proxy-path is not set"); no test publishes ports.
    '--userland-proxy=false',
  ];
  const child = spawnDaemon(dir, options.dockerd, args);
  return supervise('dockerd', dir, child, () => pingDocker(socket), options, { host, env: { DOCKER_HOST: host } });
}

/** True when `GET /_ping` on the Docker API socket answers 200 (no docker CLI needed). */
function pingDocker(socketPath: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const req = httpRequest({ socketPath, path: '/_ping', method: 'GET', timeout: 5_000 }, (response) => {
      response.resume();
      resolvePromise(response.statusCode === 200);
    });
    req.once('error', () => resolvePromise(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// BuildKit

export interface BuildkitOptions extends StartOptions {
  /** The buildkitd binary. */
  buildkitd: string;
  /** buildctl, to probe readiness (default: `buildctl` beside `buildkitd`). */
  buildctl?: string;
  /**
   * `oci` (default): buildkitd's own runc worker, state under its root; or a containerd worker on
   * `{ containerd: address }` (images and snapshots then live in that containerd).
   */
  worker?: 'oci' | { containerd: string; namespace?: string };
  /** Snapshotter of the worker: `native` (default, works anywhere) or `overlayfs`. */
  snapshotter?: string;
}

/**
 * A buildkitd of its own under a fresh temporary folder (`--root`, `--addr unix://…`, a config
 * file of its own so /etc/buildkit is not read). Builds with the built-in `dockerfile.v0`
 * frontend need no image from any registry as long as the Dockerfile has no `# syntax=` line
 * and only `FROM scratch`. Push with `--output type=image,name=127.0.0.1:<port>/…,push=true,
 * registry.insecure=true`.
 */
export async function startBuildkit(options: BuildkitOptions): Promise<BuildkitDaemon> {
  const dir = await freshDir('buildkit');
  const address = `unix://${join(dir, 'buildkitd.sock')}`;
  const worker = options.worker ?? 'oci';
  const snapshotter = options.snapshotter ?? 'native';
  await writeFile(join(dir, 'buildkitd.toml'), '# empty: defaults plus command-line flags\n');
  await mkdir(join(dir, 'root'), { recursive: true });
  const args = ['--config', join(dir, 'buildkitd.toml'), '--root', join(dir, 'root'), '--addr', address];
  if (worker === 'oci') {
    args.push('--oci-worker=true', '--containerd-worker=false', '--oci-worker-snapshotter', snapshotter);
  } else {
    args.push(
      '--oci-worker=false',
      '--containerd-worker=true',
      '--containerd-worker-addr', worker.containerd,
      '--containerd-worker-namespace', worker.namespace ?? 'buildkit',
      '--containerd-worker-snapshotter', snapshotter,
    );
  }
  const child = spawnDaemon(dir, options.buildkitd, args);
  const buildctl = options.buildctl ?? join(options.buildkitd, '../buildctl');
  return supervise(
    'buildkitd',
    dir,
    child,
    async () => (await run(buildctl, ['--addr', address, 'debug', 'workers'], { timeoutMs: 10_000 }).catch(() => undefined))?.code === 0,
    options,
    { address },
  );
}
