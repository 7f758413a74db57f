/**
 * The life cycle of every upload session, whatever carries its bytes: the standard protocol
 * (distribution-spec end-4a … end-6, end-13: bytes through the registry), Berth's direct uploads
 * (`_berth/uploads`: parts straight to S3) and front-door uploads (one whole-blob `PUT` that the
 * CloudFront Function sends straight to S3). This module is the one owner of what they share:
 * open, look up (by kind), lease, commit, discard, verify and publish.
 *
 * Crash safety without transactions: a writer takes a lease on the session, writes S3 data under
 * keys that nothing committed points to, and only then commits the session's next state with a
 * conditional write. A blob becomes visible only after its digest was verified and its bytes are
 * complete (blob item, then link). A crash at any point leaves the committed state intact and at
 * worst unreferenced S3 data.
 *
 * Verification of bytes that arrived in S3 without passing through the registry (direct and
 * front-door uploads) reads the object back in segments and saves the hash state after each, so
 * it continues in any process: inside a request while its budget lasts, in the `verify` function,
 * on every status poll.
 */
import { randomUUID } from 'node:crypto';
import { resumableHasher } from './digest.js';
import { fail } from './errors.js';
import {
  UploadConflict,
  type BlobRecord,
  type BlobStore,
  type MetadataStore,
  type UploadSession,
  type Verification,
} from '../storage/ports.js';

/** The three kinds of sessions; the endpoints of one kind never reach a session of another. */
export type SessionKind = 'standard' | 'direct' | 'incoming';

/** Tunables of the session life cycle (times in the units named). */
export interface SessionSettings {
  /** How long an unfinished session lives (seconds; DynamoDB TTL). */
  sessionTtlSeconds: number;
  /** How long one request may hold a session before another may take it over (ms). */
  leaseMs: number;
  /** Bytes hashed between two saves of the hash state while verifying. */
  segmentBytes: number;
}

/** Sessions kept 7 days, 60 s leases, 256 MiB verification segments. */
export const DEFAULT_SESSION_SETTINGS: SessionSettings = {
  sessionTtlSeconds: 7 * 24 * 3600,
  leaseMs: 60_000,
  segmentBytes: 256 * 1024 * 1024,
};

/**
 * S3 CopyObject speed assumed when deciding whether a request still has time to publish a
 * front-door blob (bytes per ms; 100 MB/s is below what one CopyObject of a large object gives).
 */
const COPY_BYTES_PER_MS = 100_000;

/** Resumable SHA-256 speed assumed when deciding whether a segment still fits (bytes per ms; ~300 MB/s measured on one vCPU). */
const HASH_BYTES_PER_MS = 150_000;

/** Finished direct and front-door sessions stay a day for status polls, then expire. */
const FINISHED_TTL_SECONDS = 24 * 3600;

/** Where the blob of session `id` will live: no other upload ever writes there. */
export function dataKeyOf(id: string): string {
  return `blobs/${id}`;
}

/**
 * Where the request of lease `owner` keeps a whole blob of session `id` that it received in one
 * streamed `PATCH`, so that an empty closing `PUT` publishes it as it is. The owner makes the key
 * the request's own: a writer that lost its lease cannot replace bytes another request committed.
 */
export function wholeKeyOf(id: string, owner: string): string {
  return `${dataKeyOf(id)}.${owner}`;
}

/** The session whose object `key` (under `blobs/`) is: its data key or a whole-blob key. */
export function sessionOfKey(key: string): string {
  return key.slice('blobs/'.length).split('.')[0];
}

/** Where the request of lease `owner` keeps the last bytes of session `id` that do not make a part yet. */
export function tailKeyOf(id: string, offset: number, owner: string): string {
  return `uploads/${id}/tail-${offset}-${owner}`;
}

/**
 * Whether the session may delete object `key` itself: scratch tails under `uploads/` are never
 * published; a committed object under `blobs/` may have been published by a request that then
 * died before it removed the session, so only the collector removes those (once no blob item names them).
 */
export function isScratch(key: string): boolean {
  return key.startsWith('uploads/');
}

/** The kind of a stored session. */
export function kindOf(session: UploadSession): SessionKind {
  return session.direct ? 'direct' : session.incoming ? 'incoming' : 'standard';
}

/** The verification a direct or front-door session carries. */
export function verificationOf(session: UploadSession): Verification | undefined {
  return session.direct ?? session.incoming;
}

/** Upload sessions: the state every kind of upload keeps, and the blob it finally publishes. */
export class UploadSessions {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly blobs: BlobStore,
    readonly settings: SessionSettings = DEFAULT_SESSION_SETTINGS,
  ) {}

  /**
   * Opens a session of `repository` (with the id `id`, fresh by default); `fields` add to
   * it (a direct upload's state).
   */
  async start(repository: string, fields: Partial<UploadSession> = {}, id = randomUUID()): Promise<UploadSession> {
    const now = Date.now();
    const session: UploadSession = {
      id,
      repository,
      dataKey: dataKeyOf(id),
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
   * The session `id` of `repository`, of the given kind (the standard endpoints must never reach
   * a direct upload's session: its object may already be a published blob).
   * @throws RegistryError BLOB_UPLOAD_UNKNOWN for an unknown, expired, foreign or other-kind session.
   */
  async status(repository: string, id: string, kind: SessionKind): Promise<UploadSession> {
    const session = await this.metadata.getUpload(id);
    if (!session || session.repository !== repository || kindOf(session) !== kind) throw unknownUpload(id);
    return session;
  }

  /**
   * Runs `work` on the session while holding its lease; `work` commits or the lease is released.
   * @throws RegistryError BLOB_UPLOAD_UNKNOWN, or BLOB_UPLOAD_INVALID (416) while another request holds it.
   */
  async withLease<T>(repository: string, id: string, kind: SessionKind, work: (session: UploadSession, owner: string) => Promise<T>): Promise<T> {
    const owner = randomUUID();
    const now = Date.now();
    let session: UploadSession;
    // No read first: the conditional lease answers whether the session exists and is free.
    try {
      session = await this.metadata.leaseUpload(id, owner, now, now + this.settings.leaseMs);
    } catch (error) {
      if (!(error instanceof UploadConflict)) throw error;
      const current = error.current;
      throw current && current.repository === repository && kindOf(current) === kind ? busy(id, current) : unknownUpload(id);
    }
    // Checked under the lease: a front-door object may have made it another kind meanwhile.
    if (session.repository !== repository || kindOf(session) !== kind) {
      await this.metadata.releaseUpload(id, owner);
      throw unknownUpload(id);
    }
    this.leases.set(owner, { until: now + this.settings.leaseMs, version: session.version });
    try {
      return await work(session, owner);
    } catch (error) {
      await this.metadata.releaseUpload(id, owner).catch(() => undefined);
      if (error instanceof UploadConflict) throw busy(id, error.current);
      throw error;
    } finally {
      this.leases.delete(owner);
    }
  }

  /** Lease expiry (epoch ms) and the session version leased, by owner, for the leases this process holds. */
  private readonly leases = new Map<string, { until: number; version: number }>();

  /**
   * Extends `owner`'s lease when less than half of it is left (until then nobody else can take
   * the session, so a write saves a round trip).
   * @throws UploadConflict when another request took the session over (it holds the lease, or
   *   committed and released it: the session's version moved on).
   */
  async renew(id: string, owner: string): Promise<void> {
    const held = this.leases.get(owner);
    if (held !== undefined && held.until - Date.now() > this.settings.leaseMs / 2) return;
    const now = Date.now();
    const session = await this.metadata.leaseUpload(id, owner, now, now + this.settings.leaseMs);
    if (held === undefined) return;
    if (session.version !== held.version) throw new UploadConflict(session);
    this.leases.set(owner, { until: now + this.settings.leaseMs, version: held.version });
  }

  /** Commits the session's next state and releases the lease. @throws UploadConflict when `owner` lost it. */
  commit(session: UploadSession, owner: string): Promise<void> {
    return this.metadata.commitUpload(session, owner);
  }

  /**
   * Links a verified blob to a repository; the blob item is written first, so a link never dangles.
   * Bytes that duplicate a blob stored already are deleted once the link to the stored one holds.
   * @throws RegistryError BLOB_UPLOAD_INVALID when the collector took the blob in the same instant (push again).
   */
  async publish(repository: string, blob: BlobRecord): Promise<BlobRecord> {
    // Two tries: the stored blob may be collected between reading it and linking it; then ours is stored.
    for (let tries = 0; tries < 2; tries++) {
      const result = await this.metadata.putBlobIfAbsent(blob);
      const linked = await this.link(repository, result.blob);
      if (linked) {
        if (!result.created && result.blob.key !== blob.key) await this.blobs.delete(blob.key);
        return linked;
      }
      // Our own blob item was collected: its bytes (ours) are being deleted too.
      if (result.created) break;
    }
    throw fail('BLOB_UPLOAD_INVALID', 'the blob was removed by garbage collection while it was published; push it again');
  }

  /**
   * Links a verified blob (a mount, or a publish) to `repository`: claims the blob item, writes the
   * link, claims it again (README, "Storage life cycle": a collection of the blob item in between
   * loses, or the link is taken back). Returns the linked blob, or undefined when the blob item is
   * gone (collected): then nothing is linked.
   */
  async link(repository: string, blob: BlobRecord): Promise<BlobRecord | undefined> {
    const claimed = await this.metadata.claimBlob(blob.digest, Date.now());
    if (!claimed) return undefined;
    await this.metadata.putBlobLink(repository, claimed);
    if (!(await this.metadata.claimBlob(blob.digest, Date.now()))) {
      await this.metadata.deleteBlobLink(repository, blob.digest);
      return undefined;
    }
    await this.metadata.touchRepository(repository, Date.now());
    return claimed;
  }

  /** Removes a session and all its data; the session item goes last so a crash leaves it retryable. */
  async discard(session: UploadSession): Promise<void> {
    if (session.multipartId) await this.blobs.abortMultipart(session.dataKey, session.multipartId);
    const source = session.incoming?.source;
    if (source) await this.blobs.delete(source);
    await this.forget(session);
  }

  /** Removes a finished session's scratch data and item. */
  async forget(session: UploadSession): Promise<void> {
    if (session.tailKey && isScratch(session.tailKey)) await this.blobs.delete(session.tailKey);
    await this.metadata.deleteUpload(session.id);
  }

  /**
   * Hashes the object of session `id` from where verification stopped until it is done or
   * `deadline` (epoch ms) passes, saving the hash state after every segment. Another holder of
   * the session makes this return at once. Returns the state reached (undefined: no such session).
   */
  async verify(id: string, deadline: number): Promise<Verification['state'] | undefined> {
    const owner = randomUUID();
    while (true) {
      let session: UploadSession;
      try {
        session = await this.metadata.leaseUpload(id, owner, Date.now(), Date.now() + this.settings.leaseMs);
      } catch (error) {
        if (error instanceof UploadConflict) return error.current && verificationOf(error.current)?.state;
        throw error;
      }
      const verification = verificationOf(session);
      if (verification?.state !== 'verifying' || this.outOfTime(session, verification, deadline)) {
        await this.metadata.releaseUpload(id, owner);
        return verification?.state;
      }
      let next: UploadSession;
      try {
        next = await this.step(session, verification);
      } catch (error) {
        // The hash state saved so far stays; whoever comes next continues from it at once.
        await this.metadata.releaseUpload(id, owner).catch(() => undefined);
        throw error;
      }
      await this.commit(next, owner);
    }
  }

  /**
   * Whether the next step would end past `deadline`, at conservative speeds: a segment of hashing,
   * or the last step (compare, publish), which takes no time unless it copies a front-door object
   * (up to 5 GiB).
   */
  private outOfTime(session: UploadSession, verification: Verification, deadline: number): boolean {
    const left = verification.size - verification.verified;
    if (left > 0) return Date.now() + Math.min(left, this.settings.segmentBytes) / HASH_BYTES_PER_MS >= deadline;
    const copies = verification.source !== undefined && verification.source !== session.dataKey;
    return copies && Date.now() + verification.size / COPY_BYTES_PER_MS >= deadline;
  }

  /** One segment of hashing, or the final comparison and publication; returns the session's next state. */
  private async step(session: UploadSession, verification: Verification): Promise<UploadSession> {
    const source = verification.source ?? session.dataKey;
    const hasher = await resumableHasher(session.hashState);
    if (verification.verified < verification.size) {
      const end = Math.min(verification.verified + this.settings.segmentBytes, verification.size) - 1;
      const range = { start: verification.verified, end };
      try {
        for await (const chunk of await this.blobs.open(source, range, verification.etag)) hasher.update(chunk as Buffer);
      } catch (error) {
        // The object was replaced or removed while it was verified: its bytes cannot be trusted.
        if (!isChanged(error)) throw error;
        return this.failed(session, verification, source, 'the uploaded object changed or disappeared while it was verified');
      }
      return withVerification(session, { ...verification, verified: end + 1 }, { hashState: hasher.save() });
    }
    const actual = hasher.digest();
    if (actual !== verification.digest) {
      return this.failed(session, verification, source, `digest mismatch: the uploaded content has digest ${actual}, not ${verification.digest}`);
    }
    // Front-door bytes land where a replayed upload URL could write again: the published blob is a copy.
    if (source !== session.dataKey) {
      try {
        await this.blobs.copy(source, session.dataKey, verification.etag);
      } catch (error) {
        if (!isChanged(error)) throw error;
        return this.failed(session, verification, source, 'the uploaded object changed or disappeared while it was verified');
      }
    }
    await this.publish(session.repository, { digest: verification.digest, size: verification.size, key: session.dataKey });
    if (source !== session.dataKey) await this.blobs.delete(source);
    return withVerification(session, { ...verification, state: 'verified' }, { expiresAt: finishedExpiry() });
  }

  private async failed(session: UploadSession, verification: Verification, source: string, error: string): Promise<UploadSession> {
    await this.blobs.delete(source);
    return withVerification(session, { ...verification, state: 'failed', error }, { expiresAt: finishedExpiry() });
  }
}

function withVerification(session: UploadSession, verification: Verification, rest: Partial<UploadSession>): UploadSession {
  const field = session.direct ? 'direct' : 'incoming';
  return { ...session, ...rest, [field]: { ...session[field], ...verification }, version: session.version + 1 };
}

function finishedExpiry(): number {
  return Math.floor(Date.now() / 1000) + FINISHED_TTL_SECONDS;
}

/** S3 answers 412 when an `If-Match` ETag no longer holds, 404 when the object is gone. */
function isChanged(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 412 || e.$metadata?.httpStatusCode === 404;
}

/** `Location`, `Range` and `Docker-Upload-UUID` of a standard session, sent on every 202 and 416. */
export function uploadHeaders(session: UploadSession, location = `/v2/${session.repository}/blobs/uploads/${session.id}`): Record<string, string> {
  return {
    Location: location,
    Range: `0-${Math.max(session.offset - 1, 0)}`,
    'Docker-Upload-UUID': session.id,
  };
}

/** BLOB_UPLOAD_UNKNOWN for session `id`. */
export function unknownUpload(id: string) {
  return fail('BLOB_UPLOAD_UNKNOWN', 'upload session unknown, finished or expired; start a new upload', { session: id.slice(0, 64) });
}

function busy(id: string, current?: UploadSession) {
  if (!current) return unknownUpload(id);
  return fail('BLOB_UPLOAD_INVALID', 'another request is writing to this upload session', undefined, { status: 416, headers: uploadHeaders(current) });
}
