/**
 * The way of every layer to the registry. Preparing: a layer that is already compressed is
 * pushed as it is; one whose gzip digest an earlier push recorded and that the registry has (or
 * can mount) is not compressed again; any other is gzip-compressed into a temporary file, at
 * most one per CPU at a time, streaming straight out of the tarball when a slot is free
 * ({@link SpillingGzip}) or from its spool file otherwise. Delivering: HEAD, mount, or upload,
 * three blobs at a time, then the blob is recorded in the blob cache and its file removed.
 */
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { BlobCache } from './blob-cache.js';
import type { BlobPusher, Placement } from './blobs.js';
import { gzipToFile, Semaphore, sniff } from './compress.js';
import type { LocalLayer } from './image.js';
import { gzipLayerType, type Descriptor, type ManifestFormat } from './manifest.js';
import { readRange, type LocalBytes } from './parts.js';
import type { Progress } from './progress.js';
import { SpillingGzip } from './spill.js';
import type { EntrySink, TarFile } from './tarball.js';

/** A layer made ready to push: its compressed bytes, or the knowledge that the registry has them. */
interface Prepared {
  digest: string;
  size: number;
  bytes?: LocalBytes;
  /** The media type when pushed as it is; otherwise gzip in the manifest's format. */
  mediaType?: string;
  /** `sha256` of the uncompressed layer, when it was compressed here. */
  diffId?: string;
  placed?: Placement;
}

const CPUS = Math.max(1, availableParallelism());

/** Blobs uploaded at once. */
export const BLOB_CONCURRENCY = 3;

export interface LayerSettings {
  blobs: BlobPusher;
  cache: BlobCache;
  progress: Progress;
  /** Folder for spool and compressed files (removed by the caller). */
  temp: string;
  /** gzip level. */
  level: number;
}

type LayerInput = Pick<LocalLayer, 'key' | 'id' | 'bytes' | 'size' | 'digest' | 'asIs'>;

export class LayerPipeline {
  /** Layers compressing at once: one per CPU. */
  private readonly compressSlots = new Semaphore(CPUS);
  /** Blocks of all layers in flight (blockgzip.ts): two per CPU, ~4 MiB of memory each. */
  private readonly blockSlots = new Semaphore(2 * CPUS);
  private readonly uploadSlots = new Semaphore(BLOB_CONCURRENCY);
  private readonly prepared = new Map<string, Promise<Prepared>>();
  private readonly deliveries = new Map<string, Promise<void>>();
  private files = 0;

  constructor(private readonly settings: LayerSettings) {}

  /** Tarball hook: compress an uncompressed layer while it streams in, when a CPU slot is free now. */
  claim(name: string, size: number, head: Buffer): EntrySink | undefined {
    const kind = sniff(head);
    if (kind === 'gzip' || kind === 'zstd') return undefined;
    const release = this.compressSlots.tryAcquire();
    if (!release) return undefined;
    const line = this.settings.progress.line(idOf(name));
    const n = ++this.files;
    let read = 0;
    const gzip = new SpillingGzip(join(this.settings.temp, `layer-${n}.gz`), join(this.settings.temp, `layer-${n}.raw`), this.settings.level, this.blockSlots, (bytes) =>
      line.count('Compressing', (read += bytes), size),
    );
    let ended!: (sha256: string) => void;
    let failed!: (error: Error) => void;
    const diffId = new Promise<string>((resolve, reject) => ((ended = resolve), (failed = reject)));
    const job = (async (): Promise<Prepared> => {
      try {
        const digest = await diffId;
        const known = await this.known(digest);
        if (known) {
          await gzip.abandon();
          return known;
        }
        const compressed = await gzip.finish();
        line.set('Compressed');
        return { digest: compressed.digest, size: compressed.size, bytes: { path: compressed.path, size: compressed.size }, diffId: digest };
      } catch (error) {
        await gzip.abandon();
        throw error;
      } finally {
        release();
      }
    })();
    job.catch(() => undefined);
    this.prepared.set(name, job);
    return {
      write: (chunk) => gzip.write(chunk),
      end: async (sha256) => {
        await gzip.end();
        ended(sha256);
      },
      abort: (error) => failed(error),
    };
  }

  /** Tarball hook: a spooled file is complete; start on it if it is an uncompressed layer. */
  spooled(file: TarFile): void {
    if (file.bytes && 'path' in file.bytes && (file.kind === 'tar' || file.kind === 'unknown')) {
      this.prepare({ key: file.name, id: idOf(file.name), bytes: file.bytes, size: file.size, digest: file.sha256 }).catch(() => undefined);
    }
  }

  /** Prepares and delivers `layer`; returns its descriptor in a manifest of `format`. */
  async push(layer: LocalLayer, format: ManifestFormat): Promise<Descriptor> {
    const ready = await this.prepare(layer);
    let delivery = this.deliveries.get(ready.digest);
    if (!delivery) this.deliveries.set(ready.digest, (delivery = this.deliver(layer.id, ready)));
    await delivery;
    return { mediaType: ready.mediaType ?? gzipLayerType(format), digest: ready.digest, size: ready.size, annotations: layer.annotations };
  }

  /** Waits until every job has ended (before the temporary folder is removed). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.prepared.values(), ...this.deliveries.values()]);
  }

  private prepare(layer: LayerInput): Promise<Prepared> {
    let job = this.prepared.get(layer.key);
    if (!job) {
      job = this.compress(layer);
      this.prepared.set(layer.key, job);
    }
    return job;
  }

  private async compress(layer: LayerInput): Promise<Prepared> {
    if (layer.asIs) return { digest: layer.digest, size: layer.size, bytes: layer.bytes, mediaType: layer.asIs.mediaType };
    const bytes = layer.bytes;
    if (!bytes) throw new Error(`layer ${layer.id} has no bytes`);
    const { progress, temp, level } = this.settings;
    const line = progress.line(layer.id);
    const known = await this.known(layer.digest);
    if (known) {
      await this.drop(bytes);
      return known;
    }
    line.set('Preparing');
    const compressed = await this.compressSlots.run(async () => {
      let read = 0;
      line.count('Compressing', 0, layer.size);
      const target = join(temp, `layer-${++this.files}.gz`);
      return gzipToFile(readRange(bytes, 0, layer.size), target, level, this.blockSlots, (n) => line.count('Compressing', (read += n), layer.size));
    });
    await this.drop(bytes);
    line.set('Compressed');
    return { digest: compressed.digest, size: compressed.size, bytes: { path: compressed.path, size: compressed.size }, diffId: layer.digest };
  }

  /** The recorded gzip of uncompressed layer `diffId`, when the registry has it or could mount it. */
  private async known(diffId: string): Promise<Prepared | undefined> {
    const known = this.settings.cache.compressedOf(diffId);
    const placed = known && (await this.settings.blobs.place(known));
    return known && placed ? { ...known, diffId, placed } : undefined;
  }

  private deliver(id: string, ready: Prepared): Promise<void> {
    const { blobs, cache, progress } = this.settings;
    return this.uploadSlots.run(async () => {
      const line = progress.line(id);
      const placed = ready.placed ?? (await blobs.place(ready));
      if (placed?.kind === 'exists') line.set('Layer already exists');
      else if (placed?.kind === 'mounted') line.set(`Mounted from ${placed.from}`);
      else {
        let sent = 0;
        line.count('Pushing', 0, ready.size);
        await blobs.upload(ready, ready.bytes!, {
          onBytes: (delta) => line.count('Pushing', (sent += delta), ready.size),
          onVerifying: () => line.set('Verifying'),
        });
        line.set('Pushed');
      }
      cache.remember(ready.digest, ready.size, blobs.registry, blobs.repository, ready.diffId);
      if (ready.bytes) await this.drop(ready.bytes);
    });
  }

  /** Removes a file of ours (a spooled entry or a compressed layer); never a file of the user's. */
  private async drop(bytes: LocalBytes): Promise<void> {
    if ('path' in bytes && bytes.path.startsWith(this.settings.temp)) await rm(bytes.path, { force: true });
  }
}

/** The id shown for a tarball entry: the layer folder of `<id>/layer.tar`, else the blob name. */
export function idOf(name: string): string {
  const parts = name.split('/');
  const base = parts.at(-1) === 'layer.tar' ? parts.at(-2)! : parts.at(-1)!;
  return base.slice(0, 12);
}
