/**
 * The standard blob upload protocol (distribution-spec v1.1 "Pushing blobs": end-4a, end-4b,
 * end-5, end-6, end-11, end-13). Sessions themselves (lease, commit, discard, publish) belong to
 * `sessions.ts`; the session item holds everything needed to continue in another process.
 *
 * Where the bytes go: S3 parts follow the requests. While a body streams, parts of `partSize` go
 * to an S3 multipart upload, holding back enough that the request's last part has at least 5 MiB
 * (S3's minimum for every part but the last; parts need not be equal). At the end of a request
 * that does not finish the upload:
 * - a blob that arrived whole in one streamed `PATCH` (no `Content-Range`: docker, crane) is
 *   written as one object under a key of its own, which an empty closing `PUT` publishes as it
 *   is: one PutObject per blob;
 * - otherwise a remainder of 5 MiB or more becomes a part of its own size, so chunks of ≥ 5 MiB
 *   leave nothing behind;
 * - a smaller remainder waits in a tail object, which the next request reads back.
 *
 * Hashing: a request that starts at offset 0 hashes with node's crypto; the session saves the
 * digest so far (an empty closing `PUT` compares it, in any process) and this process keeps the
 * hash itself for the session's next request. A later request that runs in another process cannot
 * continue that hash (its state cannot be saved): it writes without hashing, and the closing `PUT`
 * completes the object and hashes it by reading it back. Sessions saved by earlier versions of
 * Berth with a hash-wasm state (`hashState`) continue with it.
 */
import type { BodyStream } from './body.js';
import { fail } from './errors.js';
import { nativeHasher, resumableHasher, type BlobHasher, type NativeHasher } from './digest.js';
import { digestAlgorithm, type Digest } from './grammar.js';
import type { BlobLinks } from './blobs.js';
import { S3_MIN_PART_BYTES } from './parts.js';
import { RegistryError } from './errors.js';
import { isScratch, tailKeyOf, uploadHeaders, wholeKeyOf, type UploadSessions } from './sessions.js';
import type { BlobRecord, BlobStore, UploadSession } from '../storage/ports.js';

/**
 * Native hashes kept for the next request of a session, at most this many per process (the
 * oldest go first; a session whose hash is gone is verified by reading it back).
 */
const KEPT_HASHES = 256;

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
    return this.writing(repository, id, body, range, 'sha256', async (writer, session, owner) => {
      await writer.writeAll(body.chunks, range);
      await this.sessions.renew(id, owner);
      const next = await writer.suspend(range === undefined);
      await this.sessions.commit(next, owner);
      this.keep(next, writer.hasher);
      if (session.tailKey && session.tailKey !== next.tailKey && isScratch(session.tailKey)) await this.blobs.delete(session.tailKey);
      return next;
    });
  }

  /**
   * Completes a session with the final chunk, if any (end-6 PUT), and verifies `digest`.
   * @throws RegistryError DIGEST_INVALID when the bytes do not hash to `digest` (the session and its
   *   data are removed), BLOB_UPLOAD_INVALID (416), BLOB_UPLOAD_UNKNOWN, SIZE_INVALID.
   */
  async finish(repository: string, id: string, digest: Digest, body: BodyStream, range?: ChunkRange): Promise<BlobRecord> {
    const algorithm = digestAlgorithm(digest);
    return this.writing(repository, id, body, range, algorithm, async (writer, session, owner) => {
      await writer.writeAll(body.chunks, range);
      // A body may stream for longer than the lease: only a writer that still holds the session
      // may make its object whole and publish it.
      await this.sessions.renew(id, owner);
      let actual = writer.digestIn(algorithm);
      let key: string | undefined;
      if (actual === undefined) {
        // Not every byte was hashed here (another algorithm, or an earlier chunk's hash stayed in
        // another process): the completed object is hashed by reading it back.
        key = await writer.complete();
        actual = await this.digestStored(key, algorithm);
        if (actual !== digest) {
          // Only an object this request made: a session's whole blob is the collector's (sessions.isScratch).
          if (key !== session.tailKey) await this.blobs.delete(key);
          key = undefined;
        }
      } else if (actual === digest) key = await writer.complete();
      else await writer.discard();
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

  /**
   * Runs `work` with a writer of session `id` under its lease; the writer's part uploads have all
   * ended before the lease is released, so a failed request leaves none running behind it.
   */
  private writing<T>(
    repository: string,
    id: string,
    body: BodyStream,
    range: ChunkRange | undefined,
    algorithm: string,
    work: (writer: SessionWriter, session: UploadSession, owner: string) => Promise<T>,
  ): Promise<T> {
    return this.sessions.withLease(repository, id, 'standard', async (session, owner) => {
      checkRange(session, body, range);
      const renew = () => this.sessions.renew(id, owner);
      const writer = new SessionWriter(this.blobs, this.settings, session, owner, await this.hasherFor(session, algorithm), renew);
      try {
        return await work(writer, session, owner);
      } finally {
        await writer.settle();
      }
    });
  }

  private async digestStored(key: string, algorithm: string): Promise<Digest> {
    const hasher = nativeHasher(algorithm);
    for await (const chunk of await this.blobs.open(key)) hasher.update(chunk as Buffer);
    return hasher.digest();
  }

  /**
   * The hasher that continues session `session` in this request: node's from offset 0 (in
   * `finalAlgorithm` when the request finishes the upload), the one this process kept, the saved
   * hash-wasm state, or none (the bytes so far were hashed in another process).
   */
  private async hasherFor(session: UploadSession, finalAlgorithm = 'sha256'): Promise<BlobHasher | undefined> {
    const kept = this.kept.get(session.id);
    this.kept.delete(session.id);
    if (session.offset === 0) return nativeHasher(finalAlgorithm);
    if (kept?.version === session.version) return kept.hasher;
    return session.hashState ? resumableHasher(session.hashState) : undefined;
  }

  /** Keeps a native hash for the next request of the committed `session`. */
  private keep(session: UploadSession, hasher: BlobHasher | undefined): void {
    if (!hasher || !isNative(hasher)) return;
    if (this.kept.size >= KEPT_HASHES) this.kept.delete(this.kept.keys().next().value!);
    this.kept.set(session.id, { version: session.version, hasher });
  }

  /** Native hashes of sessions, as of the session version this process committed. */
  private readonly kept = new Map<string, { version: number; hasher: NativeHasher }>();

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
  /** The session's tail object until its bytes are needed (a request that adds none never reads it). */
  private unreadTail?: string;
  /** Bytes this request added. */
  private added = 0;
  offset: number;

  constructor(
    private readonly blobs: BlobStore,
    private readonly settings: UploadSettings,
    private readonly session: UploadSession,
    /** The request's lease owner: its tail object is its own, so a late writer cannot clobber a committed one. */
    private readonly owner: string,
    /** Hashes the session's bytes from offset 0 on; undefined when the bytes so far were hashed elsewhere. */
    readonly hasher: BlobHasher | undefined,
    /** Checks that the request still holds the session, extending its lease when half of it is gone (UploadConflict when lost). */
    private readonly renew: () => Promise<void>,
  ) {
    this.parts = [...session.parts];
    this.multipartId = session.multipartId;
    this.offset = session.offset;
    this.unreadTail = session.tailKey;
  }

  async writeAll(chunks: BodyStream['chunks'], range?: ChunkRange): Promise<void> {
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      await this.readTail();
      this.hasher?.update(chunk);
      this.offset += chunk.length;
      this.added += chunk.length;
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      // Held back: the request's last part must reach S3's minimum too.
      while (this.buffered >= this.settings.partSize + S3_MIN_PART_BYTES) await this.flushPart(this.settings.partSize);
    }
    if (range && this.added !== range.end - range.start + 1) {
      throw fail('SIZE_INVALID', `Content-Range ${range.start}-${range.end} announced ${range.end - range.start + 1} bytes, got ${this.added}`);
    }
  }

  /** The digest in `algorithm` of the session's bytes, when known without reading them back. */
  digestIn(algorithm: string): Digest | undefined {
    if (this.hasher) return this.hasher.algorithm === algorithm ? this.hasher.digest() : undefined;
    return this.added === 0 && algorithm === 'sha256' ? this.session.digest : undefined;
  }

  /**
   * Ends a request that does not finish the upload (`streamed`: it had no `Content-Range`);
   * returns the next session state.
   */
  async suspend(streamed: boolean): Promise<UploadSession> {
    const tail = this.added > 0 ? await this.storeRest(streamed) : { tailKey: this.session.tailKey, tailSize: this.session.tailSize };
    await this.drain();
    const hasher = this.hasher;
    return {
      ...this.session,
      offset: this.offset,
      parts: this.parts,
      multipartId: this.multipartId,
      ...tail,
      hashState: hasher && !isNative(hasher) ? hasher.save() : undefined,
      digest: hasher ? (isNative(hasher) ? hasher.peek() : undefined) : this.added === 0 ? this.session.digest : undefined,
      version: this.session.version + 1,
    };
  }

  /** Ends the final request: writes the last bytes and makes the object whole; returns its key. */
  async complete(): Promise<string> {
    // A blob kept whole by its streamed PATCH is published as it is.
    if (this.added === 0 && this.multipartId === undefined && this.unreadTail && !isScratch(this.unreadTail)) return this.unreadTail;
    await this.readTail();
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

  /** Waits for the part uploads still running (after a failure: before the lease is released). */
  async settle(): Promise<void> {
    await Promise.all(this.inFlight);
  }

  /** Drops what this request wrote beyond the committed session (a multipart upload it started). */
  async discard(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.multipartId && this.multipartId !== this.session.multipartId) {
      await this.blobs.abortMultipart(this.session.dataKey, this.multipartId);
    }
  }

  /** Stores the bytes not yet in a part: as a whole blob, as a part of their own size, or as a tail. */
  private async storeRest(streamed: boolean): Promise<Pick<UploadSession, 'tailKey' | 'tailSize'>> {
    const rest = this.take(this.buffered);
    if (rest.length === 0) return { tailKey: undefined, tailSize: 0 };
    let tailKey: string;
    if (streamed && this.multipartId === undefined && rest.length === this.offset) tailKey = wholeKeyOf(this.session.id, this.owner);
    else if (rest.length >= S3_MIN_PART_BYTES) {
      await this.startPart(rest);
      return { tailKey: undefined, tailSize: 0 };
    } else tailKey = tailKeyOf(this.session.id, this.offset, this.owner);
    await this.blobs.put(tailKey, rest);
    return { tailKey, tailSize: rest.length };
  }

  private async readTail(): Promise<void> {
    if (!this.unreadTail) return;
    const bytes = await this.blobs.read(this.unreadTail);
    this.unreadTail = undefined;
    this.buffer.unshift(bytes);
    this.buffered += bytes.length;
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
    // Bounded concurrency keeps memory at (concurrency + 2) parts for bodies of any size.
    if (this.inFlight.length >= this.settings.partConcurrency) await this.inFlight.shift();
    if (this.failure) throw this.failure;
  }

  private async drain(): Promise<void> {
    await Promise.all(this.inFlight);
    this.inFlight = [];
    if (this.failure) throw this.failure;
  }

  private async startPart(bytes: Buffer): Promise<void> {
    // A body may stream for longer than the lease: a writer that lost the session writes no more parts.
    await this.renew();
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

function isNative(hasher: BlobHasher): hasher is NativeHasher {
  return 'peek' in hasher;
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
