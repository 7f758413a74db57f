/**
 * The registry the browser tests look at: `npm start` with BERTH_AUTH=required on a random port
 * and a fresh data folder, accounts made with `npx berth`, and images pushed over plain HTTP.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { berth } from '../support/cli.js';

/** A running `npm start` and what it was started with. */
export interface Server {
  url: string;
  host: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** Starts `npm start` (BERTH_AUTH=required, and `env`) and waits until it listens. */
export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-web-'));
  const port = 20000 + Math.floor(Math.random() * 30000);
  const child = spawn('npm', ['start', '--silent'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', BERTH_DATA_DIR: dataDir, BERTH_AUTH: 'required', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  // The emulated deployment builds the Lambda bundle first.
  const deadline = Date.now() + 180_000;
  while (!/listening on/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const host = `127.0.0.1:${port}`;
  return { url: `http://${host}`, host, dataDir, stop: () => stop(child, dataDir) };
}

async function stop(child: ChildProcess, dataDir: string): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await rm(dataDir, { recursive: true, force: true });
}

/** `npx berth user add <name> --role <role> [--repo …]` with `<name>-password`. */
export async function addUser(server: Server, name: string, role: string, repositories: string[] = []): Promise<void> {
  const result = await berth(['user', 'add', name, '--password-stdin', '--role', role, ...repositories.flatMap((r) => ['--repo', r])], {
    dataDir: server.dataDir,
    input: passwordOf(name),
  });
  assert.equal(result.code, 0, result.stderr);
}

/** `npx berth <args>` on the server's data. */
export async function cli(server: Server, args: string[]): Promise<void> {
  const result = await berth(args, { dataDir: server.dataDir });
  assert.equal(result.code, 0, result.stderr);
}

export const passwordOf = (name: string) => `${name}-password`;

/** Basic credentials of a user made by {@link addUser}. */
export function basic(name: string, password = passwordOf(name)): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}` };
}

export type Digest = `sha256:${string}`;
const sha256 = (bytes: Uint8Array): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Pushes over the distribution API as `user` (Basic credentials on every request). */
export class Pusher {
  constructor(
    private readonly server: Server,
    private readonly user: string,
  ) {}

  async blob(repository: string, bytes: Uint8Array): Promise<{ digest: Digest; size: number }> {
    const digest = sha256(bytes);
    const response = await fetch(`${this.server.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { ...basic(this.user), 'Content-Type': 'application/octet-stream' },
      body: new Uint8Array(bytes),
    });
    assert.equal(response.status, 201, await response.text());
    return { digest, size: bytes.length };
  }

  /** PUTs a manifest by tag, or by its digest when `reference` is undefined. */
  async manifest(repository: string, reference: string | undefined, manifest: Record<string, unknown>): Promise<{ digest: Digest; size: number }> {
    const bytes = Buffer.from(JSON.stringify(manifest));
    const response = await fetch(`${this.server.url}/v2/${repository}/manifests/${reference ?? sha256(bytes)}`, {
      method: 'PUT',
      headers: { ...basic(this.user), 'Content-Type': String(manifest.mediaType) },
      body: bytes,
    });
    assert.equal(response.status, 201, await response.text());
    return { digest: sha256(bytes), size: bytes.length };
  }

  /** An OCI image of one random layer whose config carries `config` (Entrypoint, Env, Labels…) for `architecture`. */
  async image(repository: string, reference: string, config: Record<string, unknown> = {}, extra: Record<string, unknown> = {}, architecture = 'amd64') {
    const configBytes = Buffer.from(
      JSON.stringify({ created: '2026-11-30T12:00:00Z', architecture, os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(4).toString('hex') }),
    );
    const layers = [await this.blob(repository, randomBytes(20_000)), await this.blob(repository, randomBytes(3_000))];
    const configDescriptor = await this.blob(repository, configBytes);
    return this.manifest(repository, reference, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configDescriptor },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer })),
      ...extra,
    });
  }

  /** An image index of one image per architecture. */
  async index(repository: string, reference: string, architectures: string[]) {
    const manifests = [];
    for (const architecture of architectures) {
      const image = await this.image(repository, `${reference}-${architecture}`, { Cmd: ['serve'] }, {}, architecture);
      manifests.push({ mediaType: OCI_MANIFEST, ...image, platform: { os: 'linux', architecture } });
    }
    return this.manifest(repository, reference, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
  }

  /** An artifact (an SBOM) whose subject is `subject`. */
  async referrer(repository: string, subject: { digest: Digest; size: number }, artifactType: string, annotations: Record<string, string>) {
    const empty = await this.blob(repository, Buffer.from('{}'));
    const payload = await this.blob(repository, Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3' })));
    return this.manifest(repository, undefined, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', ...empty },
      layers: [{ mediaType: artifactType, ...payload }],
      subject: { mediaType: OCI_MANIFEST, ...subject },
      annotations,
    });
  }

  /** The repository's tags as the distribution API lists them. */
  async tags(repository: string): Promise<string[]> {
    const response = await fetch(`${this.server.url}/v2/${repository}/tags/list`, { headers: basic(this.user) });
    assert.equal(response.status, 200);
    return ((await response.json()) as { tags: string[] }).tags;
  }
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
