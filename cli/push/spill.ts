/**
 * Compressing a layer while it streams out of a tarball, without holding back the tarball: the
 * chunks go straight into a {@link BlockGzip} while it keeps up (a block slot is free); from
 * the first time it falls behind, every later chunk is spilled to a spool file instead and is
 * compressed after the entry ends. A slow source (the Docker Engine exporting a layer) is thus
 * compressed as it arrives, and a fast one (an archive file) moves on to the next layer while
 * this one is still compressing.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { BlockGzip, type CompressedFile } from './blockgzip.js';
import type { Semaphore } from './compress.js';

export class SpillingGzip {
  private readonly gzip: BlockGzip;
  private spool: WriteStream | undefined;

  /**
   * @param target file for the compressed bytes
   * @param spoolPath file for spilled uncompressed bytes (created only if needed)
   * @param slots block slots shared across layers
   * @param onRead uncompressed bytes handed to gzip
   */
  constructor(
    readonly target: string,
    private readonly spoolPath: string,
    level: number,
    slots: Semaphore,
    private readonly onRead: (bytes: number) => void,
  ) {
    this.gzip = new BlockGzip(target, level, slots, Math.max(1, slots.n));
  }

  /** Takes the next chunk of the layer; resolves when the caller may send the next one. */
  async write(chunk: Buffer): Promise<void> {
    if (!this.spool && this.gzip.keepsUp) {
      this.onRead(chunk.length);
      await this.gzip.write(chunk);
      return;
    }
    this.spool ??= createWriteStream(this.spoolPath, { highWaterMark: 1024 * 1024 });
    if (!this.spool.write(chunk)) await once(this.spool, 'drain');
  }

  /** The layer has ended: closes the spool file. */
  async end(): Promise<void> {
    const spool = this.spool;
    if (spool) await new Promise<void>((resolve, reject) => spool.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }

  /** Compresses what was spilled and finishes the gzip file. */
  async finish(): Promise<CompressedFile> {
    if (this.spool) {
      for await (const chunk of createReadStream(this.spoolPath, { highWaterMark: 1024 * 1024 })) {
        this.onRead((chunk as Buffer).length);
        await this.gzip.write(chunk as Buffer);
      }
      await rm(this.spoolPath, { force: true });
    }
    return this.gzip.end();
  }

  /** Drops everything (the layer turned out not to be needed, or reading failed). */
  async abandon(): Promise<void> {
    this.gzip.destroy();
    await rm(this.spoolPath, { force: true });
    await rm(this.target, { force: true });
  }
}
