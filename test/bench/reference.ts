/**
 * The reference registry: Debian's `docker-registry` (CNCF distribution 2.8), installed from
 * Debian when missing, run as `/usr/bin/docker-registry serve <config.yml>` (never its systemd
 * service) with filesystem storage in a temporary folder, on a free loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cleanup, freePort, run, runOk, stopChild, waitFor } from '../e2e/helpers.js';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

/** Installs Debian's `docker-registry` unless its binary is there (`apt-get update` only if needed). */
export async function ensureReferenceInstalled(log: (line: string) => void): Promise<string> {
  try {
    await access(REGISTRY_BINARY);
  } catch {
    log('installing docker-registry from Debian (apt-get install -y docker-registry)');
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    const first = await run('apt-get', ['install', '-y', '--no-install-recommends', 'docker-registry'], { env, timeoutMs: 600_000 });
    if (first.code !== 0) {
      await runOk('apt-get', ['update'], { env, timeoutMs: 600_000 });
      await runOk('apt-get', ['install', '-y', '--no-install-recommends', 'docker-registry'], { env, timeoutMs: 600_000 });
    }
  }
  const version = await runOk(REGISTRY_BINARY, ['--version']);
  return version.stdout.trim().split(/\s+/).slice(1).join(' ');
}

/** A running reference registry. */
export class ReferenceRegistry {
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly child: ChildProcess,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Starts it with the configuration Debian ships (and `registry:2` uses): filesystem storage,
   * in-memory blob descriptor cache, deletes enabled, access log on; no auth, or with `htpasswd`
   * (a file of `user:bcrypt-hash` lines) Basic auth.
   */
  static async start(cleanup: Cleanup, options: { htpasswd?: string } = {}): Promise<ReferenceRegistry> {
    const dir = await cleanup.tempDir('reference');
    const port = await freePort();
    const config = [
      'version: 0.1',
      'log:',
      '  level: info',
      '  fields:',
      '    service: registry',
      'storage:',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      ...(options.htpasswd ? ['auth:', '  htpasswd:', '    realm: berth-test', `    path: ${options.htpasswd}`] : []),
      '',
    ].join('\n');
    await writeFile(join(dir, 'config.yml'), config);
    const logFile = openSync(join(dir, 'registry.log'), 'a');
    const child = spawn(REGISTRY_BINARY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', logFile, logFile] });
    closeSync(logFile);
    const registry = new ReferenceRegistry(port, dir, child);
    cleanup.add(`stop reference registry (pid ${child.pid})`, () => stopChild(child));
    await waitFor(
      `the reference registry on ${registry.url}`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited:\n${await registry.log()}`);
        const response = await fetch(`${registry.url}/v2/`).catch(() => undefined);
        await response?.body?.cancel();
        return response?.status === (options.htpasswd ? 401 : 200);
      },
      60_000,
      100,
    );
    return registry;
  }

  log(): Promise<string> {
    return this.fullLog().then((text) => text.split('\n').slice(-40).join('\n'));
  }

  /** Everything it logged (its access log included). */
  fullLog(): Promise<string> {
    return readFile(join(this.dir, 'registry.log'), 'utf8').catch(() => '');
  }

  stop(): Promise<void> {
    return stopChild(this.child);
  }
}
