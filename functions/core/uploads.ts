/**
 * Blob upload sessions (distribution-spec v1.1 "Pushing blobs": end-4a, end-4b, end-5, end-6,
 * end-11, end-13). Bytes stream through a SHA-256 hasher into an S3 multipart upload; bytes
 * that do not yet fill a part wait in a per-offset tail object. The session item in the
 * metadata store holds everything needed to continue in another process: offset, parts, tail
 * and the saved hash state.
 *
 * Crash safety without transactions: a request takes a lease on the session, writes new S3
 * data under keys nothing committed points to, and only then commits the new session state
 * with a conditional write. A blob becomes visible only after its digest was verified and its
 * bytes are complete (blob item, then link). A crash at any point leaves the committed state
 * intact and at worst unreferenced S3 data.
 */
import { randomUUID } from 'node:crypto';
import type { BodyStream } from './body.js';
import { fail } from './errors.js';
import { oneShotHasher, resumableHasher, type BlobHasher } from './digest.js';
import { digestAlgorithm, type Digest } from './grammar.js';
import { UploadConflict, type BlobRecord, type BlobStore, type MetadataStore, type UploadSession } from '../storage/ports.js';

/** The `Content-Range` of a chunk: inclusive first and last byte offsets. */
export interface ChunkRange {
  start: number;
  end: number;
}

/** Tunables of the upload path. */
export interface UploadSettings {
  /** Bytes per S3 part (S3: 5 MiB … 5 GiB, at most 10,000 parts). */
  partSize: number;
  /** Parts uploaded concurrently while the request body keeps streaming. */
  partConcurrency: number;
  /** How long an unfinished session lives (seconds; DynamoDB TTL). */
  sessionTtlSeconds: number;
  /** How long one request may hold a session before another may take it over (ms). */
  leaseMs: number;
}

/** 8 MiB parts, two in flight, sessions kept 7 days, 60 s leases. */
export const DEFAULT_UPLOAD_SETTINGS: UploadSettings = {
  partSize: 8 * 1024 * 1024,
  partConcurrency: 2,
  sessionTtlSeconds: 7 * 24 * 3600,
  leaseMs: 60_000,
};

/** Upload sessions and the blobs they produce. */
export class Uploads {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly settings: UploadSettings = DEFAULT_UPLOAD_SETTINGS,
  ) {}

  /** Opens a session (end-4a/end-4b POST); `fields` add to it (a direct upload's state). */
  async start(repository: string, fields: Partial<UploadSession> = {}): Promise<UploadSession> {
    const id = randomUUID();
    const now = Date.now();
    const session: UploadSession = {
      id,
      repository,
      dataKey: `blobs/${id}`,
      offset: 0,
      parts: [],
      tailSize: 0,
      version: 0,
      createdAt: now,
      expiresAt: Math.floor(now / 1000) + this.settings.sessionTtlSeconds,
      ...fields,
    };
    await this.metadata.createUpload(session);
    return session;
  }

  /**
   * The session `id` of `repository` (end-13 GET), of the given kind: the standard endpoints
   * must never reach a direct upload's session (its object may already be a published blob).
   * @throws RegistryError BLOB_UPLOAD_UNKNOWN for an unknown, expired, foreign or other-kind session.
   */
  async status(repository: string, id: string, kind: 'standard' | 'direct' = 'standard'): Promise<UploadSession> {
    const session = await this.metadata.getUpload(id);
    if (!session || session.repository !== repository || (session.direct !== undefined) !== (kind === 'direct')) throw unknownUpload(id);
    return session;
  }

  /**
   * Appends a chunk (end-5 PATCH). Without `range` the body is appended at the current offset
   * (streamed upload); with it, `range.start` must equal the offset.
   * @throws RegistryError BLOB_UPLOAD_INVALID (416) for a chunk out of order, BLOB_UPLOAD_UNKNOWN,
   *   SIZE_INVALID when the body length disagrees with the range.
   */
  async append(repository: string, id: string, body: BodyStream, range?: ChunkRange): Promise<UploadSession> {
    return this.withLease(repository, id, async (session, owner) => {
      checkRange(session, body, range);
      const writer = await SessionWriter.open(this.blobs, this.settings, session, owner);
      await writer.writeAll(body.chunks, range);
      await this.renew(id, owner);
      const next = await writer.suspend();
      await this.metadata.commitUpload(next, owner);
      if (session.tailKey && session.tailKey !== next.tailKey) await this.blobs.delete(session.tailKey);
      return next;
    });
  }

  /**
   * Completes a session with the final chunk, if any (end-6 PUT), and verifies `digest`.
   * @throws RegistryError DIGEST_INVALID when the bytes do not hash to `digest` (the session and its
   *   data are removed), BLOB_UPLOAD_INVALID (416), BLOB_UPLOAD_UNKNOWN, SIZE_INVALID.
   */
  async finish(repository: string, id: string, digest: Digest, body: BodyStream, range?: ChunkRange): Promise<BlobRecord> {
    return this.withLease(repository, id, async (session, owner) => {
      checkRange(session, body, range);
      const algorithm = digestAlgorithm(digest);
      const writer = await SessionWriter.open(this.blobs, this.settings, session, owner, algorithm);
      await writer.writeAll(body.chunks, range);
      // A body may stream for longer than the lease: only a writer that still holds the session
      // may make its object whole and publish it.
      await this.renew(id, owner);
      let actual: Digest;
      let key: string | undefined;
      if (writer.algorithm === algorithm) {
        actual = writer.digest();
        if (actual === digest) key = await writer.complete();
        else await writer.discard();
      } else {
        // Streamed sessions hash SHA-256 as they go; another algorithm is checked by reading back.
        key = await writer.complete();
        actual = await this.digestStored(key, algorithm);
        if (actual !== digest) {
          await this.blobs.delete(key);
          key = undefined;
        }
      }
      if (key === undefined) {
        await this.discard(session);
        throw fail('DIGEST_INVALID', `digest mismatch: the uploaded content has digest ${actual}, not ${digest}`, {
          expected: digest,
          actual,
        });
      }
      const blob = await this.publish(repository, { digest, size: writer.offset, key });
      await this.forget(session);
      return blob;
    });
  }

  private async digestStored(key: string, algorithm: string): Promise<Digest> {
    const hasher = oneShotHasher(algorithm);
    for await (const chunk of await this.blobs.open(key)) hasher.update(chunk as Buffer);
    return hasher.digest();
  }

  /** Monolithic upload (end-4b POST `?digest=`): a session that starts and finishes in one request. */
  async uploadWhole(repository: string, digest: Digest, body: BodyStream): Promise<BlobRecord> {
    const session = await this.start(repository);
    return this.finish(repository, session.id, digest, body);
  }

  /**
   * Cross-repository mount (end-11): links `digest` from `from` to `repository` when `from`
   * holds it. Returns undefined when it does not, so that the caller opens a session instead.
   */
  async mount(repository: string, digest: Digest, from: string): Promise<BlobRecord | undefined> {
    const blob = await this.metadata.getBlobLink(from, digest);
    if (!blob) return undefined;
    await this.link(repository, blob);
    return blob;
  }

  /** Cancels a session and drops its data (DELETE of an upload URL). */
  async cancel(repository: string, id: string): Promise<void> {
    await this.discard(await this.status(repository, id));
  }

  /** Links a verified blob to a repository; the blob item is written first, so a link never dangles. */
  async publish(repository: string, blob: BlobRecord): Promise<BlobRecord> {
    const result = await this.metadata.putBlobIfAbsent(blob);
    if (!result.created && result.blob.key !== blob.key) await this.blobs.delete(blob.key);
    await this.link(repository, result.blob);
    return result.blob;
  }

  private async link(repository: string, blob: BlobRecord): Promise<void> {
    await this.metadata.putBlobLink(repository, blob);
    await this.metadata.touchRepository(repository, Date.now());
  }

  /** Removes a session and all its data; the session item goes last so a crash leaves it retryable. */
  async discard(session: UploadSession): Promise<void> {
    if (session.multipartId) await this.blobs.abortMultipart(session.dataKey, session.multipartId);
    await this.forget(session);
  }

  /** Removes a finished session's scratch data and item. */
  private async forget(session: UploadSession): Promise<void> {
    if (session.tailKey) await this.blobs.delete(session.tailKey);
    await this.metadata.deleteUpload(session.id);
  }

  /**
   * Runs `work` on the session while holding its lease; `work` commits or the lease is released.
   * @throws RegistryError BLOB_UPLOAD_UNKNOWN, or BLOB_UPLOAD_INVALID (416) while another request holds it.
   */
  async withLease<T>(
    repository: string,
    id: string,
    work: (session: UploadSession, owner: string) => Promise<T>,
    kind: 'standard' | 'direct' = 'standard',
  ): Promise<T> {
    await this.status(repository, id, kind);
    const owner = randomUUID();
    const now = Date.now();
    let session: UploadSession;
    try {
      session = await this.metadata.leaseUpload(id, owner, now, now + this.settings.leaseMs);
    } catch (error) {
      if (error instanceof UploadConflict) throw busy(id, error.current);
      throw error;
    }
    try {
      return await work(session, owner);
    } catch (error) {
      await this.metadata.releaseUpload(id, owner).catch(() => undefined);
      if (error instanceof UploadConflict) throw busy(id, error.current);
      throw error;
    }
  }

  /** Extends `owner`'s lease. @throws UploadConflict when another request took the session over. */
  private async renew(id: string, owner: string): Promise<void> {
    await this.metadata.leaseUpload(id, owner, Date.now(), Date.now() + this.settings.leaseMs);
  }
}

/** Streams bytes of one request into a session's S3 data, keeping at most a few parts in memory. */
class SessionWriter {
  private buffer: Buffer[] = [];
  private buffered = 0;
  private readonly parts: UploadSession['parts'];
  private multipartId?: string;
  /** Part uploads in progress; they never reject, a failure is kept in `failure` instead. */
  private inFlight: Promise<void>[] = [];
  private failure?: unknown;
  offset: number;

  private constructor(
    private readonly blobs: BlobStore,
    private readonly settings: UploadSettings,
    private readonly session: UploadSession,
    private readonly hasher: BlobHasher,
    /** The request's lease owner: its tail object is its own, so a late writer cannot clobber a committed one. */
    private readonly owner: string,
  ) {
    this.parts = [...session.parts];
    this.multipartId = session.multipartId;
    this.offset = session.offset;
  }

  /**
   * `finalAlgorithm`: this request ends the upload with a digest of that algorithm, so a fresh
   * session may hash with the fast one-shot hasher in that algorithm.
   */
  static async open(
    blobs: BlobStore,
    settings: UploadSettings,
    session: UploadSession,
    owner: string,
    finalAlgorithm?: string,
  ): Promise<SessionWriter> {
    const oneShot = finalAlgorithm !== undefined && session.offset === 0;
    const hasher = oneShot ? oneShotHasher(finalAlgorithm) : await resumableHasher(session.hashState);
    const writer = new SessionWriter(blobs, settings, session, hasher, owner);
    if (session.tailKey) writer.push(await blobs.read(session.tailKey));
    return writer;
  }

  async writeAll(chunks: BodyStream['chunks'], range?: ChunkRange): Promise<void> {
    const start = this.offset;
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      this.hasher.update(chunk);
      this.offset += chunk.length;
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      while (this.buffered >= this.settings.partSize) await this.flushPart(this.settings.partSize);
    }
    if (range && this.offset - start !== range.end - range.start + 1) {
      throw fail('SIZE_INVALID', `Content-Range ${range.start}-${range.end} announced ${range.end - range.start + 1} bytes, got ${this.offset - start}`);
    }
  }

  get algorithm(): string {
    return this.hasher.algorithm;
  }

  digest(): Digest {
    return this.hasher.digest();
  }

  /** Ends a non-final request: the remainder goes to a new tail object; returns the next session state. */
  async suspend(): Promise<UploadSession> {
    await this.drain();
    const rest = this.take(this.buffered);
    const tailKey = rest.length > 0 ? `uploads/${this.session.id}/tail-${this.offset}-${this.owner}` : undefined;
    if (tailKey) await this.blobs.put(tailKey, rest);
    return {
      ...this.session,
      offset: this.offset,
      parts: this.parts,
      multipartId: this.multipartId,
      tailKey,
      tailSize: rest.length,
      hashState: this.hasher.save(),
      version: this.session.version + 1,
    };
  }

  /** Ends the final request: writes the last bytes and makes the object whole; returns its key. */
  async complete(): Promise<string> {
    const rest = this.take(this.buffered);
    if (this.multipartId === undefined) {
      await this.blobs.put(this.session.dataKey, rest);
      return this.session.dataKey;
    }
    if (rest.length > 0 || this.parts.length === 0) await this.startPart(rest);
    await this.drain();
    await this.blobs.completeMultipart(this.session.dataKey, this.multipartId, this.parts);
    return this.session.dataKey;
  }

  /** Drops what this request wrote beyond the committed session (a multipart upload it started). */
  async discard(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.multipartId && this.multipartId !== this.session.multipartId) {
      await this.blobs.abortMultipart(this.session.dataKey, this.multipartId);
    }
  }

  private push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.buffer.push(bytes);
    this.buffered += bytes.length;
  }

  private take(size: number): Buffer {
    const all = this.buffer.length === 1 ? this.buffer[0] : Buffer.concat(this.buffer, this.buffered);
    const part = all.subarray(0, size);
    const rest = all.subarray(size);
    this.buffer = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return part;
  }

  private async flushPart(size: number): Promise<void> {
    await this.startPart(this.take(size));
    // Bounded concurrency keeps memory at (concurrency + 1) parts for bodies of any size.
    if (this.inFlight.length >= this.settings.partConcurrency) await this.inFlight.shift();
    if (this.failure) throw this.failure;
  }

  private async drain(): Promise<void> {
    await Promise.all(this.inFlight);
    this.inFlight = [];
    if (this.failure) throw this.failure;
  }

  private async startPart(bytes: Buffer): Promise<void> {
    this.multipartId ??= await this.blobs.createMultipart(this.session.dataKey);
    const part = { number: this.parts.length + 1, etag: '', size: bytes.length };
    this.parts.push(part);
    const uploadId = this.multipartId;
    this.inFlight.push(
      this.blobs.uploadPart(this.session.dataKey, uploadId, part.number, bytes).then(
        (etag) => {
          part.etag = etag;
        },
        (error: unknown) => {
          this.failure ??= error;
        },
      ),
    );
  }
}

function checkRange(session: UploadSession, body: BodyStream, range?: ChunkRange): void {
  if (!range) return;
  if (range.start !== session.offset) {
    throw fail('BLOB_UPLOAD_INVALID', `chunk starts at ${range.start} but the upload is at offset ${session.offset}`, undefined, {
      status: 416,
      headers: uploadHeaders(session),
    });
  }
  if (body.length !== undefined && body.length !== range.end - range.start + 1) {
    throw fail('SIZE_INVALID', `Content-Range ${range.start}-${range.end} does not match Content-Length ${body.length}`);
  }
}

/** `Location`, `Range` and `Docker-Upload-UUID` of a session, sent on every 202 and 416. */
export function uploadHeaders(session: UploadSession): Record<string, string> {
  return {
    Location: `/v2/${session.repository}/blobs/uploads/${session.id}`,
    Range: `0-${Math.max(session.offset - 1, 0)}`,
    'Docker-Upload-UUID': session.id,
  };
}

function unknownUpload(id: string) {
  return fail('BLOB_UPLOAD_UNKNOWN', 'upload session unknown, finished or expired; start a new upload', { session: id.slice(0, 64) });
}

function busy(id: string, current?: UploadSession) {
  if (!current) return unknownUpload(id);
  return fail('BLOB_UPLOAD_INVALID', 'another request is writing to this upload session', undefined, { status: 416, headers: uploadHeaders(current) });
}
