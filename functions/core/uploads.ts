/**
 * The standard blob upload protocol (distribution-spec v1.1 "Pushing blobs": end-4a, end-4b,
 * end-5, end-6, end-11, end-13). Bytes stream through a SHA-256 hasher into an S3 multipart
 * upload; bytes that do not yet fill a part wait in a per-offset tail object. The session item
 * holds everything needed to continue in another process: offset, parts, tail and the saved hash
 * state. Sessions themselves (lease, commit, discard, publish) belong to `sessions.ts`.
 */
import type { BodyStream } from './body.js';
import { fail } from './errors.js';
import { oneShotHasher, resumableHasher, type BlobHasher } from './digest.js';
import { digestAlgorithm, type Digest } from './grammar.js';
import type { BlobLinks } from './blobs.js';
import { RegistryError } from './errors.js';
import { uploadHeaders, type UploadSessions } from './sessions.js';
import type { BlobRecord, BlobStore, UploadSession } from '../storage/ports.js';

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
}

/** 8 MiB parts, two in flight. */
export const DEFAULT_UPLOAD_SETTINGS: UploadSettings = {
  partSize: 8 * 1024 * 1024,
  partConcurrency: 2,
};

/** The standard upload protocol: sessions fed by PATCH and PUT bodies, monolithic uploads, mounts. */
export class Uploads {
  constructor(
    private readonly sessions: UploadSessions,
    private readonly blobs: BlobStore,
    private readonly links: BlobLinks,
    private readonly settings: UploadSettings = DEFAULT_UPLOAD_SETTINGS,
  ) {}

  /** Opens a session (end-4a/end-4b POST). */
  start(repository: string): Promise<UploadSession> {
    return this.sessions.start(repository);
  }

  /**
   * The standard session `id` of `repository` (end-13 GET).
   * @throws RegistryError BLOB_UPLOAD_UNKNOWN for an unknown, expired, foreign or other-kind session.
   */
  status(repository: string, id: string): Promise<UploadSession> {
    return this.sessions.status(repository, id, 'standard');
  }

  /**
   * Appends a chunk (end-5 PATCH). Without `range` the body is appended at the current offset
   * (streamed upload); with it, `range.start` must equal the offset.
   * @throws RegistryError BLOB_UPLOAD_INVALID (416) for a chunk out of order, BLOB_UPLOAD_UNKNOWN,
   *   SIZE_INVALID when the body length disagrees with the range.
   */
  async append(repository: string, id: string, body: BodyStream, range?: ChunkRange): Promise<UploadSession> {
    return this.sessions.withLease(repository, id, 'standard', async (session, owner) => {
      checkRange(session, body, range);
      const writer = await SessionWriter.open(this.blobs, this.settings, session, owner);
      await writer.writeAll(body.chunks, range);
      await this.sessions.renew(id, owner);
      const next = await writer.suspend();
      await this.sessions.commit(next, owner);
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
    return this.sessions.withLease(repository, id, 'standard', async (session, owner) => {
      checkRange(session, body, range);
      const algorithm = digestAlgorithm(digest);
      const writer = await SessionWriter.open(this.blobs, this.settings, session, owner, algorithm);
      await writer.writeAll(body.chunks, range);
      // A body may stream for longer than the lease: only a writer that still holds the session
      // may make its object whole and publish it.
      await this.sessions.renew(id, owner);
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
        await this.sessions.discard(session);
        throw fail('DIGEST_INVALID', `digest mismatch: the uploaded content has digest ${actual}, not ${digest}`, {
          expected: digest,
          actual,
        });
      }
      const blob = await this.sessions.publish(repository, { digest, size: writer.offset, key });
      await this.sessions.forget(session);
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
    // A blob still being verified is not mountable yet, nor one collected meanwhile: the client
    // uploads it instead (the spec's fallback).
    const blob = await this.links.find(from, digest, this.links.deadline()).catch((error: unknown) => {
      if (error instanceof RegistryError && error.code === 'TOOMANYREQUESTS') return undefined;
      throw error;
    });
    return blob && this.sessions.link(repository, blob);
  }

  /** Cancels a session and drops its data (DELETE of an upload URL). */
  async cancel(repository: string, id: string): Promise<void> {
    await this.sessions.discard(await this.status(repository, id));
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
