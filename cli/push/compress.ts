/**
 * Layer compression: an uncompressed layer (a tar) is gzip-compressed streaming with node's
 * zlib into a file while the compressed bytes are hashed (SHA-256) and counted, so no layer is
 * ever held in memory. zlib runs on libuv's thread pool, so layers (and blocks of one layer,
 * blockgzip.ts) compress in parallel. Node's gzip header has no name and mtime 0, so the same
 * input always gives the same bytes (and digest), which lets a re-push recognise a layer.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { constants } from 'node:zlib';
import { BlockGzip, type CompressedFile } from './blockgzip.js';

export type { CompressedFile };

/**
 * Compresses `input` into `path` ({@link BlockGzip}: blocks on several CPUs).
 * @param onRead called with the number of uncompressed bytes read, as they are read.
 * @param level zlib level 1 (fastest) … 9 (smallest).
 * @param slots blocks in flight, shared across layers.
 */
export async function gzipToFile(input: Readable, path: string, level: number, slots: Semaphore, onRead: (bytes: number) => void = () => undefined): Promise<CompressedFile> {
  const gzip = new BlockGzip(path, level, slots, Math.max(1, slots.n));
  try {
    for await (const chunk of input) {
      onRead((chunk as Buffer).length);
      await gzip.write(chunk as Buffer);
    }
    return await gzip.end();
  } catch (error) {
    gzip.destroy();
    throw error;
  }
}

/** zlib's default (6), as docker and `gzip` use. */
export const DEFAULT_LEVEL = constants.Z_DEFAULT_COMPRESSION;

/** `sha256:<hex>` of `bytes`. */
export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** At most `n` holders at once; waiting acquirers are served in order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly n: number) {}

  /** Waits for a slot; returns its release function (call it once). */
  async acquire(): Promise<() => void> {
    if (this.active < this.n) this.active++;
    // A finishing holder hands its slot straight to the next waiting one.
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.releaser();
  }

  /** Slots free now. */
  get free(): number {
    return this.n - this.active;
  }

  /** A slot if one is free now, else undefined. */
  tryAcquire(): (() => void) | undefined {
    if (this.active >= this.n) return undefined;
    this.active++;
    return this.releaser();
  }

  /** Runs `task` in a slot. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await task();
    } finally {
      release();
    }
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

/** What the first bytes of a layer say it is. */
export function sniff(head: Buffer): 'gzip' | 'zstd' | 'tar' | 'unknown' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return 'unknown';
}
