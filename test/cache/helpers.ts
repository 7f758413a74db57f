/**
 * What the pull-through cache tests share: crane (built by test/clients/install.sh) with a
 * credentials file of its own, images pushed to an upstream (two platform images of several
 * layers and an index of both), and Debian's `docker-registry` with htpasswd Basic auth.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ReferenceRegistry, ensureReferenceInstalled } from '../bench/reference.js';
import { type Cleanup, describeFailure, run, runOk, type RunResult } from '../e2e/helpers.js';

/** crane, from `bash test/clients/install.sh` (printed folder) or `CRANE`. */
export async function craneBinary(): Promise<string> {
  if (process.env.CRANE) return process.env.CRANE;
  const folder = (await runOk('bash', ['test/clients/install.sh'], { timeoutMs: 600_000 })).stdout.trim();
  return join(folder, 'crane');
}

/** crane with a `DOCKER_CONFIG` of its own, holding credentials for the given hosts. */
export class Crane {
  private constructor(
    readonly binary: string,
    readonly configDir: string,
  ) {}

  static async create(cleanup: Cleanup, auths: Record<string, { username: string; password: string }> = {}): Promise<Crane> {
    const dir = await cleanup.tempDir('crane-config');
    const entries = Object.fromEntries(Object.entries(auths).map(([host, c]) => [host, { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') }]));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: entries }));
    return new Crane(await craneBinary(), dir);
  }

  run(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    return run(this.binary, [...args, '--insecure'], { env: { DOCKER_CONFIG: this.configDir }, timeoutMs });
  }

  async ok(args: string[], timeoutMs = 300_000): Promise<string> {
    const result = await this.run(args, timeoutMs);
    if (result.code !== 0) throw new Error(describeFailure(result));
    return result.stdout.trim();
  }

  /** `crane digest`: the manifest digest a reference names now. */
  digest(ref: string): Promise<string> {
    return this.ok(['digest', ref]);
  }
}

/** What {@link pushImages} pushed. */
export interface PushedImages {
  /** The image index of both platforms (tagged `<tag>`). */
  index: string;
  /** The linux/amd64 image (three layers), and its config digest (docker's image id). */
  amd64: string;
  amd64Config: string;
  /** The linux/arm64 image (two layers). */
  arm64: string;
}

/** A tarball of one file of `size` random bytes, as a layer. */
async function layer(dir: string, name: string, size: number): Promise<string> {
  const root = join(dir, name);
  await mkdir(root, { recursive: true });
  await writeFile(join(root, `${name}.bin`), randomBytes(size));
  const tarball = join(dir, `${name}.tar`);
  await runOk('tar', ['--numeric-owner', '-C', root, '-cf', tarball, '.']);
  return tarball;
}

/**
 * Pushes to `<host>/<repository>`: a linux/amd64 image of three layers (tag `<tag>-amd64`), a
 * linux/arm64 image of two (`<tag>-arm64`), and an image index of both (`<tag>`); every layer random.
 */
export async function pushImages(crane: Crane, cleanup: Cleanup, host: string, repository: string, tag: string, layerBytes = 512 * 1024): Promise<PushedImages> {
  const dir = await cleanup.tempDir('layers');
  const ref = (suffix: string) => `${host}/${repository}:${tag}${suffix}`;
  const amd = await Promise.all([layer(dir, 'a1', layerBytes), layer(dir, 'a2', layerBytes / 2), layer(dir, 'a3', 1000)]);
  const arm = await Promise.all([layer(dir, 'b1', layerBytes), layer(dir, 'b2', 1000)]);
  await crane.ok(['append', ...amd.flatMap((file) => ['-f', file]), '-t', ref('-amd64')]);
  await crane.ok(['mutate', '--set-platform', 'linux/amd64', ref('-amd64'), '-t', ref('-amd64')]);
  await crane.ok(['append', ...arm.flatMap((file) => ['-f', file]), '-t', ref('-arm64')]);
  await crane.ok(['mutate', '--set-platform', 'linux/arm64', ref('-arm64'), '-t', ref('-arm64')]);
  // Docker media types throughout (a manifest list of schema 2 images), as docker builds push them.
  await crane.ok(['index', 'append', '--docker-empty-base', '-m', ref('-amd64'), '-m', ref('-arm64'), '-t', ref('')]);
  const amd64 = await crane.digest(ref('-amd64'));
  const manifest = JSON.parse(await crane.ok(['manifest', ref('-amd64')])) as { config: { digest: string } };
  return { index: await crane.digest(ref('')), amd64, amd64Config: manifest.config.digest, arm64: await crane.digest(ref('-arm64')) };
}

/** Debian's `docker-registry` with Basic auth for one user (htpasswd -B from apache2-utils). */
export async function startBasicRegistry(cleanup: Cleanup, username: string, password: string): Promise<ReferenceRegistry> {
  await ensureReferenceInstalled(() => undefined);
  const dir = await cleanup.tempDir('htpasswd');
  const htpasswd = join(dir, 'htpasswd');
  const line = await runOk('htpasswd', ['-nbB', username, password]);
  await writeFile(htpasswd, line.stdout.trim() + '\n');
  return ReferenceRegistry.start(cleanup, { htpasswd });
}
