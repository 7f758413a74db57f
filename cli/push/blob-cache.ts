/**
 * What earlier pushes from this machine did, in `<cache>/blob-sources.json` (`$BERTH_CACHE_DIR`,
 * else `$XDG_CACHE_HOME/berth`, else `~/.cache/berth`):
 *
 *   { "version": 1,
 *     "blobs":   { "<digest>": { "size": <bytes>, "repositories": { "<registry>": ["<repo>", …] } } },
 *     "diffIds": { "<sha256 of an uncompressed layer>": "<digest of its gzip>" } }
 *
 * `repositories` names where a blob can be mounted from; `diffIds` lets a re-push find a layer
 * on the registry without compressing it again. Only hints: every use is checked with the
 * registry. Saved by merging into what is on disk now, written to a temporary file and renamed.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

interface Record1 {
  version: 1;
  blobs: Record<string, { size: number; repositories: Record<string, string[]> }>;
  diffIds: Record<string, string>;
}

/** Repositories remembered per blob and registry, at most this many (most recent last). */
const MAX_REPOSITORIES = 8;

export function blobCachePath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.BERTH_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'berth');
  return join(dir, 'blob-sources.json');
}

export class BlobCache {
  private constructor(
    readonly path: string,
    private data: Record1,
    private readonly added: Record1 = empty(),
  ) {}

  /** Loads the record; a missing or unreadable file is an empty one. */
  static async load(path = blobCachePath()): Promise<BlobCache> {
    return new BlobCache(path, await read(path));
  }

  /** The gzip digest and size a layer with uncompressed digest `diffId` had before, if any. */
  compressedOf(diffId: string): { digest: string; size: number } | undefined {
    const digest = this.data.diffIds[diffId];
    const blob = digest ? this.data.blobs[digest] : undefined;
    return digest && blob ? { digest, size: blob.size } : undefined;
  }

  /** Repositories of `registry` other than `except` that `digest` was pushed to. */
  sources(digest: string, registry: string, except: string): string[] {
    return (this.data.blobs[digest]?.repositories[registry] ?? []).filter((repo) => repo !== except).reverse();
  }

  /** Notes that `digest` (`size` bytes; the gzip of `diffId`, when given) is in `repository` of `registry`. */
  remember(digest: string, size: number, registry: string, repository: string, diffId?: string): void {
    for (const data of [this.data, this.added]) {
      const blob = (data.blobs[digest] ??= { size, repositories: {} });
      const repos = (blob.repositories[registry] ??= []);
      if (!repos.includes(repository)) repos.push(repository);
      if (diffId && diffId !== digest) data.diffIds[diffId] = digest;
    }
  }

  /** Merges what this run learnt into the file. Failures are ignored (it is only a cache). */
  async save(): Promise<void> {
    try {
      const current = await read(this.path);
      for (const [digest, blob] of Object.entries(this.added.blobs)) {
        const target = (current.blobs[digest] ??= { size: blob.size, repositories: {} });
        for (const [registry, repos] of Object.entries(blob.repositories)) {
          const list = (target.repositories[registry] ?? []).filter((repo) => !repos.includes(repo));
          target.repositories[registry] = [...list, ...repos].slice(-MAX_REPOSITORIES);
        }
      }
      Object.assign(current.diffIds, this.added.diffIds);
      await mkdir(dirname(this.path), { recursive: true });
      const temporary = `${this.path}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(current));
      await rename(temporary, this.path);
      this.data = current;
    } catch {
      // A cache that cannot be written only costs a later push a mount or a compression.
    }
  }
}

function empty(): Record1 {
  return { version: 1, blobs: {}, diffIds: {} };
}

async function read(path: string): Promise<Record1> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<Record1>;
    if (parsed.version !== 1) return empty();
    return { version: 1, blobs: parsed.blobs ?? {}, diffIds: parsed.diffIds ?? {} };
  } catch {
    return empty();
  }
}
