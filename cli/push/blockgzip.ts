/**
 * Parallel gzip of one stream: the input is cut into blocks of {@link BLOCK_BYTES}, each block
 * is compressed on its own (zlib on libuv's thread pool, so blocks compress on several CPUs at
 * once) into a complete gzip member, and the members are written in order. Concatenated gzip
 * members are one valid gzip file (RFC 1952 §2.2) that every gzip reader — Go's (docker,
 * containerd, skopeo), zlib, GNU gzip — reads as one stream. Blocks in flight (read, compressing
 * or waiting to be written) hold a slot of a semaphore shared by all layers, which bounds memory
 * at about 4 MiB per slot. The same input and level always give the same bytes.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { Semaphore } from './compress.js';

const gzipBlock = promisify(gzipCallback);

/** Uncompressed bytes per gzip member (deflate's window is 32 KiB, so independent blocks cost next to nothing). */
export const BLOCK_BYTES = 2 * 1024 * 1024;

/** A blob written to a local file. */
export interface CompressedFile {
  /** `sha256:<hex>` of the compressed bytes. */
  digest: string;
  /** Compressed bytes. */
  size: number;
  path: string;
}

export class BlockGzip {
  private readonly out: WriteStream;
  private readonly hash = createHash('sha256');
  private size = 0;
  private parts: Buffer[] = [];
  private held = 0;
  private blocks = 0;
  /** Compressed blocks, in input order, not yet written, with their slot releases. */
  private readonly pending: { bytes: Promise<Buffer>; release: () => void }[] = [];

  /**
   * @param path file for the compressed bytes
   * @param slots blocks in flight, shared across layers
   * @param parallel most blocks of this stream in flight
   */
  constructor(
    readonly path: string,
    private readonly level: number,
    private readonly slots: Semaphore,
    private readonly parallel: number,
  ) {
    this.out = createWriteStream(path);
    this.out.on('error', () => undefined);
  }

  /** Whether a block can be started without waiting (the caller's input is not held back). */
  get keepsUp(): boolean {
    return this.pending.length < this.parallel && this.slots.free > 0;
  }

  /** Takes the next bytes; resolves when the caller may send more. */
  async write(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, BLOCK_BYTES - this.held);
      this.parts.push(chunk.subarray(0, take));
      this.held += take;
      chunk = chunk.subarray(take);
      if (this.held === BLOCK_BYTES) await this.cut();
    }
  }

  /** Compresses the rest, writes everything, closes the file. */
  async end(): Promise<CompressedFile> {
    if (this.held > 0 || this.blocks === 0) await this.cut();
    while (this.pending.length > 0) await this.flushOne();
    await new Promise<void>((resolve, reject) => this.out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    return { digest: `sha256:${this.hash.digest('hex')}`, size: this.size, path: this.path };
  }

  /** Stops and closes the file (its content is then useless). */
  destroy(): void {
    for (const { bytes, release } of this.pending.splice(0)) void bytes.finally(release).catch(() => undefined);
    this.out.destroy();
  }

  private async cut(): Promise<void> {
    const block = Buffer.concat(this.parts);
    this.parts = [];
    this.held = 0;
    this.blocks++;
    while (this.pending.length >= this.parallel) await this.flushOne();
    let release = this.slots.tryAcquire();
    while (!release) {
      // Every slot is taken: our own oldest block frees one when written, else wait for another layer's.
      if (this.pending.length > 0) await this.flushOne();
      release = this.pending.length > 0 ? this.slots.tryAcquire() : await this.slots.acquire();
    }
    // One output buffer for the whole member: a single trip to the thread pool per block.
    const bytes = gzipBlock(block, { level: this.level, chunkSize: BLOCK_BYTES + 64 * 1024 });
    bytes.catch(() => undefined);
    this.pending.push({ bytes, release });
  }

  /** Writes the oldest block once it is compressed. */
  private async flushOne(): Promise<void> {
    const { bytes: compressed, release } = this.pending[0];
    let bytes: Buffer;
    try {
      bytes = await compressed;
    } finally {
      this.pending.shift();
      release();
    }
    this.hash.update(bytes);
    this.size += bytes.length;
    if (!this.out.write(bytes)) await once(this.out, 'drain');
  }
}
