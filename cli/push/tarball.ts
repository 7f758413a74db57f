/**
 * Reading an image tarball (what `docker save` and the Engine's `GET /images/get` write) in
 * one streaming pass with `tar-stream`: small entries (≤ 64 KiB, or JSON up to 4 MiB: configs,
 * manifests, index.json) stay in memory, everything else is spooled to a file under `spoolDir`;
 * every entry is hashed (SHA-256) on the way and sniffed (gzip, zstd, tar). Symbolic and hard
 * links (docker writes `layer.tar` of a repeated layer as a symlink) are kept as aliases.
 * `onFile` sees each file as soon as it is complete, so layers can be compressed while the rest
 * of the tarball is still being read.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { sniff } from './compress.js';
import type { LocalBytes } from './parts.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** One regular file of the tarball. */
export interface TarFile {
  /** Path inside the tarball, normalised (`blobs/sha256/…`, `<id>/layer.tar`). */
  name: string;
  size: number;
  /** `sha256:<hex>` of its content. */
  sha256: string;
  kind: ReturnType<typeof sniff>;
  /** In memory or spooled; undefined when a {@link TarHooks.claim} sink took the bytes. */
  bytes?: LocalBytes;
}

export interface TarHooks {
  /** A file entry starts (`size` bytes). */
  onStart?(name: string, size: number): void;
  /** `bytes` more of the current entry were read. */
  onBytes?(name: string, bytes: number): void;
  /** A file is complete (in memory, spooled, or claimed). */
  onFile?(file: TarFile): void;
  /**
   * Offered every entry that is neither small nor JSON, with its first bytes: a sink returned
   * here receives all its chunks instead of a spool file (the file then has no `bytes`).
   */
  claim?(name: string, size: number, head: Buffer): EntrySink | undefined;
}

/** Takes the chunks of one claimed entry. */
export interface EntrySink {
  /** The next chunk; the tarball is read on when the promise resolves. */
  write(chunk: Buffer): Promise<void>;
  /** The entry ended; `sha256` is the digest of all its bytes. */
  end(sha256: string): Promise<void>;
  /** Reading the tarball failed before the entry ended. */
  abort(error: Error): void;
}

/** The files of a tarball by name, with links resolved. */
export class TarContents {
  constructor(
    readonly files: Map<string, TarFile>,
    readonly links: Map<string, string>,
  ) {}

  /** The file at `name` (following links), or undefined. */
  get(name: string): TarFile | undefined {
    let current = normalise(name);
    for (let hops = 0; hops < 16; hops++) {
      const file = this.files.get(current);
      if (file) return file;
      const target = this.links.get(current);
      if (target === undefined) return undefined;
      current = target;
    }
    return undefined;
  }

  /** The content of a small file as text (JSON documents). @throws Error when missing or spooled. */
  text(name: string): string {
    const file = this.get(name);
    if (!file) throw new Error(`the image tarball has no ${name}`);
    if (!file.bytes || !('bytes' in file.bytes)) throw new Error(`${name} in the image tarball is too large for a JSON document`);
    return file.bytes.bytes.toString('utf8');
  }
}

/** Reads `input` to its end. @throws Error for a malformed tarball. */
export async function readTarball(input: Readable, spoolDir: string, hooks: TarHooks = {}): Promise<TarContents> {
  const files = new Map<string, TarFile>();
  const links = new Map<string, string>();
  const extract = tar.extract();
  const feeding = pipeline(input, extract);
  let spooled = 0;
  let open: EntrySink | undefined;
  try {
    for await (const entry of extract) {
      const { header } = entry;
      const name = normalise(header.name);
      if (header.type === 'symlink' && header.linkname) {
        links.set(name, normalise(posix.join(posix.dirname(name), header.linkname)));
      } else if (header.type === 'link' && header.linkname) {
        links.set(name, normalise(header.linkname));
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        entry.resume();
        await once(entry, 'end');
        continue;
      }
      const size = header.size ?? 0;
      hooks.onStart?.(name, size);
      const hash = createHash('sha256');
      const held: Buffer[] = [];
      let head: Buffer | undefined;
      let out: ReturnType<typeof createWriteStream> | undefined;
      let path: string | undefined;
      let sink: EntrySink | undefined;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        hash.update(chunk);
        hooks.onBytes?.(name, chunk.length);
        if (!head || head.length < 512) head = head ? Buffer.concat([head, chunk]).subarray(0, 512) : chunk.subarray(0, 512);
        const inMemory = size <= 64 * KiB || (size <= 4 * MiB && head[0] === 0x7b /* { */);
        if (inMemory) {
          held.push(chunk);
          continue;
        }
        if (!out && !sink) {
          sink = hooks.claim?.(name, size, head);
          if (!sink) {
            path = join(spoolDir, `entry-${++spooled}`);
            out = createWriteStream(path, { highWaterMark: MiB });
          }
        }
        open = sink;
        if (sink) await sink.write(chunk);
        else if (!out!.write(chunk)) await once(out!, 'drain');
      }
      const sha256 = `sha256:${hash.digest('hex')}`;
      if (out) await new Promise<void>((resolve, reject) => out!.end((error?: Error | null) => (error ? reject(error) : resolve())));
      open = undefined;
      if (sink) await sink.end(sha256);
      const content = out || sink ? undefined : Buffer.concat(held);
      const file: TarFile = {
        name,
        size,
        sha256,
        kind: sniff(content ?? head ?? Buffer.alloc(0)),
        bytes: content ? { bytes: content } : out ? { path: path!, size } : undefined,
      };
      files.set(name, file);
      hooks.onFile?.(file);
    }
  } catch (error) {
    open?.abort(error as Error);
    extract.destroy();
    input.destroy();
    await feeding.catch(() => undefined);
    throw error;
  }
  await feeding;
  return new TarContents(files, links);
}

/** `./a/../b/c` → `b/c`. */
export function normalise(name: string): string {
  return posix.normalize(name.replace(/^\/+/, '')).replace(/^(\.\/)+/, '').replace(/\/$/, '');
}
