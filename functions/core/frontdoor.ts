/**
 * Front-door uploads: on AWS a CloudFront Function sends a whole-blob `PUT <Location>?digest=`
 * (what containerd, BuildKit, Docker Engine 29, oras and regctl send) straight to S3, at
 * `incoming/sha256-<hex>/<session id>`, when the upload URL carries a valid signature (see
 * signed-paths.ts). The bytes never pass through API Gateway or Lambda, so its 6 MB limit does
 * not apply; but they also were not hashed on the way, so nothing links them until this module
 * has verified them:
 *
 * - S3's `ObjectCreated` event reaches the `verify` function, which calls {@link FrontDoor.arrived};
 * - the first request that needs the blob before that finished (HEAD or GET of the blob, a manifest
 *   `PUT` that references it, a mount from it) finds the object by its digest prefix and verifies
 *   it itself, or waits for the verification in flight, within its time budget
 *   ({@link FrontDoor.find}); a blob still being hashed then answers a retryable 429.
 *
 * Verified bytes are copied to the session's `blobs/<id>` before they are published: a replayed
 * upload URL can only write under `incoming/` again, never over a published blob.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { BlobLinks } from './blobs.js';
import { fail } from './errors.js';
import { digestAlgorithm, type Digest } from './grammar.js';
import { kindOf, uploadHeaders, type UploadSessions } from './sessions.js';
import { originProof, signBlob, signUpload, type PathKey } from './signed-paths.js';
import { UploadConflict, type BlobRecord, type BlobStore, type MetadataStore, type SpentUploads, type UploadSession } from '../storage/ports.js';

/** Tunables of the front door (times in the units named). */
export interface FrontDoorSettings {
  /** How long an upload URL may be used to start its PUT (seconds). */
  uploadUrlSeconds: number;
  /** How long a blob URL may be used to start its GET (seconds). */
  blobUrlSeconds: number;
  /** How long a request may verify or wait for a blob it needs (ms); API Gateway stops at 30 s. */
  requestBudgetMs: number;
  /** Pause between two looks at a verification that another process holds (ms). */
  pollMs: number;
}

/**
 * Upload URLs for 15 minutes, blob URLs for five, 20 s of a request's time, 250 ms polls. Every
 * client that PUTs a whole blob (containerd, oras, regclient) sends the PUT right after the POST,
 * and only its start is checked; a short life bounds what a leaked URL can do, and how long the
 * marks of used URLs ({@link FrontDoor.used}) must be kept.
 */
export const DEFAULT_FRONT_DOOR_SETTINGS: FrontDoorSettings = {
  uploadUrlSeconds: 900,
  blobUrlSeconds: 300,
  requestBudgetMs: 20_000,
  pollMs: 250,
};

const INCOMING = /^incoming\/sha256-([0-9a-f]{64})\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const BLOB_KEY = /^blobs\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
/** More objects than this under one digest prefix are not looked at by one request. */
const MAX_CANDIDATES = 20;

/** Upload and blob URLs through the front door, and verification of what arrives through it. */
export class FrontDoor implements BlobLinks {
  constructor(
    private readonly sessions: UploadSessions,
    private readonly metadata: MetadataStore,
    private readonly blobs: BlobStore,
    /** The signing key (read once); undefined when the deployment has no front door. */
    private readonly keySource: (() => Promise<PathKey>) | undefined,
    /** Where the edge function learns which upload URLs were used; undefined: replays are not refused. */
    private readonly spent?: SpentUploads,
    private readonly settings: FrontDoorSettings = DEFAULT_FRONT_DOOR_SETTINGS,
  ) {}

  private key?: Promise<PathKey>;

  /**
   * The headers of a new standard session: its `Location` is signed for the front door when there
   * is one, so that a whole-blob PUT to it goes straight to S3; PATCH, GET, DELETE and empty PUTs
   * to it still reach the API.
   */
  async uploadHeaders(session: UploadSession): Promise<Record<string, string>> {
    const key = await this.signingKey();
    if (!key) return uploadHeaders(session);
    const expiresAt = Math.floor(Date.now() / 1000) + this.settings.uploadUrlSeconds;
    return uploadHeaders(session, `/v2/${session.repository}/blobs/uploads/${signUpload(key, session.repository, session.id, expiresAt)}`);
  }

  /** A front-door path for a blob's bytes, or undefined when it cannot have one (no front door, another key form). */
  async blobPath(blob: BlobRecord): Promise<string | undefined> {
    const id = BLOB_KEY.exec(blob.key)?.[1];
    const key = await this.signingKey();
    if (!key || !id) return undefined;
    return signBlob(key, id, Math.floor(Date.now() / 1000) + this.settings.blobUrlSeconds);
  }

  /**
   * True when `proof` (the `x-berth-origin` header) shows that the request came through this
   * deployment's distribution; false without a front door or for any other value.
   */
  async cameThrough(proof: string | undefined): Promise<boolean> {
    const key = proof ? await this.signingKey() : undefined;
    if (!key || !proof) return false;
    const expected = Buffer.from(originProof(key));
    const given = Buffer.from(proof);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  private signingKey(): Promise<PathKey | undefined> {
    if (!this.keySource) return Promise.resolve(undefined);
    // A failed read is not kept: the next request tries again.
    this.key ??= this.keySource().catch((error: unknown) => {
      this.key = undefined;
      throw error;
    });
    return this.key;
  }

  /**
   * An object arrived under `incoming/` (S3 `ObjectCreated`): attaches it to its session and
   * verifies it until done or `deadline` (epoch ms). An object that belongs to no open standard
   * session (unknown, expired, already used, written to by PATCH, another kind) is deleted.
   * Returns the state reached.
   */
  async arrived(key: string, size: number, etag: string, deadline: number): Promise<string> {
    const m = INCOMING.exec(key);
    if (!m) return 'ignored';
    const [, hex, id] = m;
    const attached = await this.attach(id, { key, size, etag, digest: `sha256:${hex}` });
    if (attached === 'busy') return 'busy';
    if (attached !== 'attached' && attached !== 'verifying') {
      // Still the object that arrived? Then nothing will ever use it (never delete a newer one).
      await this.blobs.delete(key);
      return attached;
    }
    return (await this.sessions.verify(id, deadline)) ?? 'gone';
  }

  /**
   * An object arrived under `incoming/` (S3 `ObjectCreated`, once per object): tells the edge that
   * the upload URL that put it there has been used, whatever becomes of the object, so that a
   * replay gets an OCI error there (from a few seconds on: KeyValueStore changes take that long to
   * reach every edge). Until then a replay lands under `incoming/` and is deleted unpublished, as
   * without the mark, so a failure to write it is reported and nothing more. No URL of a session is
   * minted after its bytes arrived, and none lives longer than `uploadUrlSeconds` (plus a minute
   * for the clocks).
   */
  async used(key: string): Promise<void> {
    const id = INCOMING.exec(key)?.[2];
    if (!id || !this.spent) return;
    const until = Math.floor(Date.now() / 1000) + this.settings.uploadUrlSeconds + 60;
    await this.spent.spend(id, until).catch((error: unknown) => console.warn(`front door: upload ${id} not marked as used: ${String(error)}`));
  }

  /** The repository and digest of the session a front-door object came for; undefined when the session is gone. */
  async uploadOf(key: string): Promise<{ repository: string; digest: Digest } | undefined> {
    const m = INCOMING.exec(key);
    const session = m && (await this.metadata.getUpload(m[2]));
    return session ? { repository: session.repository, digest: `sha256:${m![1]}` } : undefined;
  }

  /** Makes the object the session's verification, if the session can take it. */
  private async attach(id: string, object: { key: string; size: number; etag: string; digest: Digest }): Promise<string> {
    const owner = randomUUID();
    let session: UploadSession;
    try {
      session = await this.metadata.leaseUpload(id, owner, Date.now(), Date.now() + this.sessions.settings.leaseMs);
    } catch (error) {
      if (!(error instanceof UploadConflict)) throw error;
      if (!error.current) return 'no session';
      const current = error.current.incoming;
      return current?.source === object.key && current.etag === object.etag ? 'verifying' : 'busy';
    }
    const current = session.incoming;
    if (current?.source === object.key && current.etag === object.etag) {
      await this.metadata.releaseUpload(id, owner);
      return 'verifying';
    }
    if (kindOf(session) !== 'standard' || session.offset > 0 || session.multipartId) {
      await this.metadata.releaseUpload(id, owner);
      return kindOf(session) === 'standard' ? 'session has chunks' : 'session used';
    }
    const next: UploadSession = {
      ...session,
      incoming: { digest: object.digest, size: object.size, state: 'verifying', verified: 0, source: object.key, etag: object.etag },
      hashState: undefined,
      version: session.version + 1,
    };
    await this.sessions.commit(next, owner);
    return 'attached';
  }

  private hashing: Promise<unknown> = Promise.resolve();

  deadline(): number {
    return Date.now() + this.settings.requestBudgetMs;
  }

  /**
   * The blob `digest` as linked to `repository`; when it is not linked yet but arrived through the
   * front door for a session of that repository, verifies it (or waits for the verification in
   * flight) until `deadline` (epoch ms).
   * @throws RegistryError TOOMANYREQUESTS (429, `Retry-After`) when it is still being verified at `deadline`.
   */
  async find(repository: string, digest: Digest, deadline: number): Promise<BlobRecord | undefined> {
    const linked = await this.metadata.getBlobLink(repository, digest);
    if (linked || !this.keySource || digestAlgorithm(digest) !== 'sha256') return linked;
    const prefix = `incoming/${digest.replace(':', '-')}/`;
    for (const object of await this.blobs.list(prefix, MAX_CANDIDATES)) {
      const id = object.key.slice(prefix.length);
      const session = await this.metadata.getUpload(id);
      if (session?.repository !== repository) continue;
      const state = await this.settle(object, deadline);
      if (state === 'verified') return this.metadata.getBlobLink(repository, digest);
      if (state === 'verifying') {
        const progress = (await this.metadata.getUpload(id))?.incoming;
        throw fail('TOOMANYREQUESTS', `blob ${digest} is still being verified (${progress?.verified ?? 0} of ${progress?.size ?? '?'} bytes); retry in a few seconds`, null, {
          headers: { 'Retry-After': '5' },
        });
      }
    }
    return undefined;
  }

  /**
   * Verifies `object`, or waits while another process does, until it is decided or `deadline`
   * passes. A process hashes one blob at a time for its requests: a manifest naming many blobs
   * must not share one CPU among as many hashes.
   */
  private async settle(object: { key: string; size: number; etag: string }, deadline: number): Promise<string> {
    while (true) {
      const state = await this.oneAtATime(() => this.arrived(object.key, object.size, object.etag, deadline));
      if (state !== 'verifying' && state !== 'busy') return state;
      if (Date.now() + this.settings.pollMs >= deadline) return 'verifying';
      await new Promise((resolve) => setTimeout(resolve, this.settings.pollMs));
    }
  }

  private oneAtATime<T>(work: () => Promise<T>): Promise<T> {
    const run = this.hashing.then(work, work);
    this.hashing = run.catch(() => undefined);
    return run;
  }
}
