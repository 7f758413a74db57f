/**
 * Where images come from: the local Docker Engine through its API socket (`DOCKER_HOST`
 * `unix://…` or `tcp://…`, default `/var/run/docker.sock`): `GET /images/<ref>/json` to check
 * that the image exists, then `GET /images/get?names=<ref>`, a docker-save tarball streamed
 * straight into {@link readTarball}; a docker-save archive file; an OCI layout folder.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { open, send, type RequestInit } from './http.js';
import { SourceError, type Layout } from './image.js';

/** How to reach the Docker Engine API. */
export interface EngineEndpoint {
  /** `http://localhost` for a socket, else `http://host:port`. */
  base: string;
  socketPath?: string;
}

/** The Engine's address from `DOCKER_HOST`. @throws SourceError for ssh:// or TLS setups. */
export function engineEndpoint(env: NodeJS.ProcessEnv = process.env): EngineEndpoint {
  const host = env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  if (host.startsWith('unix://')) return { base: 'http://localhost', socketPath: host.slice('unix://'.length) };
  if (host.startsWith('tcp://') && !env.DOCKER_TLS_VERIFY) return { base: `http://${host.slice('tcp://'.length)}` };
  throw new SourceError(`DOCKER_HOST=${host} is not supported (a unix:// socket or plain tcp://); use docker save and --from docker-archive`);
}

/**
 * The docker-save tarball of local image `ref`, streamed from the Engine, with the image id and
 * the uncompressed digests of its layers.
 * @throws SourceError when the Engine is unreachable or has no such image.
 */
export async function exportFromEngine(ref: string, endpoint = engineEndpoint()): Promise<{ id: string; diffIds: string[]; tarball: Readable }> {
  const init: RequestInit = { socketPath: endpoint.socketPath, idleMs: 600_000 };
  const where = endpoint.socketPath ?? endpoint.base;
  let inspect;
  try {
    inspect = await send(`${endpoint.base}/images/${encodeURIComponent(ref)}/json`, init);
  } catch (error) {
    throw new SourceError(`cannot reach the Docker Engine at ${where}: ${(error as Error).message}`);
  }
  if (inspect.status === 404) throw new SourceError(`no local image ${ref}: tag the image you want to push with docker tag <image> ${ref}`);
  if (inspect.status !== 200) throw new SourceError(`the Docker Engine answered ${inspect.status}: ${inspect.body.toString('utf8').slice(0, 200)}`);
  const { Id: id, RootFS } = JSON.parse(inspect.body.toString('utf8')) as { Id: string; RootFS?: { Layers?: string[] } };
  const tarball = await open(`${endpoint.base}/images/get?names=${encodeURIComponent(ref)}`, init);
  if (tarball.statusCode !== 200) {
    let text = '';
    for await (const chunk of tarball) text += String(chunk);
    throw new SourceError(`the Docker Engine refused to export ${ref}: ${tarball.statusCode} ${text.slice(0, 200)}`);
  }
  return { id, diffIds: RootFS?.Layers ?? [], tarball };
}

/** A docker-save archive file. @throws SourceError when it cannot be read. */
export async function openArchive(path: string): Promise<Readable> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) throw new SourceError(`no archive file at ${path}`);
  return createReadStream(path, { highWaterMark: 1024 * 1024 });
}

/**
 * An OCI layout folder (`oci-layout`, `index.json`, `blobs/`). `path` may end in `:<tag>` (as
 * skopeo's `oci:<dir>:<tag>` does) when the folder itself has no colon.
 * @throws SourceError when it is not an OCI layout.
 */
export async function openLayoutFolder(path: string): Promise<{ layout: Layout; tag?: string }> {
  let dir = path;
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (!(await isLayout(dir)) && colon > 0 && (await isLayout(path.slice(0, colon)))) {
    dir = path.slice(0, colon);
    tag = path.slice(colon + 1);
  }
  if (!(await isLayout(dir))) throw new SourceError(`${path} is not an OCI image layout (no oci-layout and index.json)`);
  return {
    tag,
    layout: {
      index: () => readFile(join(dir, 'index.json')),
      blob: async (digest) => {
        const [algorithm, hex] = digest.split(':');
        if (!/^[a-z0-9]+$/.test(algorithm ?? '') || !/^[a-f0-9]+$/.test(hex ?? '')) throw new SourceError(`invalid digest ${digest}`);
        const file = join(dir, 'blobs', algorithm, hex);
        const info = await stat(file).catch(() => undefined);
        if (!info) throw new SourceError(`the OCI layout lacks blob ${digest}`);
        return { bytes: { path: file, size: info.size }, size: info.size };
      },
    },
  };
}

async function isLayout(dir: string): Promise<boolean> {
  const [marker, index] = await Promise.all([stat(join(dir, 'oci-layout')).catch(() => undefined), stat(join(dir, 'index.json')).catch(() => undefined)]);
  return Boolean(marker?.isFile() && index?.isFile());
}
