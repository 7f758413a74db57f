/**
 * Direct uploads (Berth's `_berth/uploads` extension): the registry opens an S3 multipart upload,
 * hands out presigned part URLs, the client uploads the parts to S3 in parallel (no byte crosses
 * the API Gateway / Lambda limits), and the registry verifies the SHA-256 of the whole blob
 * itself before the blob becomes visible.
 *
 * Verification (sessions.ts) continues in any process: inside the `complete` request while its
 * time budget lasts, in a background invocation (`dispatch`), and on every status poll. A wrong
 * digest deletes the data and leaves the session `failed`; nothing was ever linked.
 */
import { randomUUID } from 'node:crypto';
import { fail } from './errors.js';
import { digestAlgorithm, type Digest } from './grammar.js';
import { partRange, planParts } from './parts.js';
import { dataKeyOf, type UploadSessions } from './sessions.js';
import type { BlobStore, DirectUpload, UploadSession } from '../storage/ports.js';

/** Starts verification of a session elsewhere (another Lambda invocation, or in the background locally). */
export type Dispatch = (uploadId: string) => Promise<void>;

/** Tunables of direct uploads (times in the units named). */
export interface DirectSettings {
  /** Lifetime of presigned part URLs (seconds). */
  urlSeconds: number;
  /** Verification time spent inside a `complete` request and inside a status poll (ms). */
  requestBudgetMs: number;
}

/** URLs for an hour, 10 s of a request's time for hashing. */
export const DEFAULT_DIRECT_SETTINGS: DirectSettings = {
  urlSeconds: 3600,
  requestBudgetMs: 10_000,
};

/** Most part URLs handed out in one answer. */
export const MAX_URLS_PER_ANSWER = 1000;

/** A presigned URL for one part and the byte range of the blob it must carry. */
export interface PresignedPart {
  number: number;
  url: string;
  offset: number;
  length: number;
}

/** What a client sees of a direct upload. */
export interface DirectStatus extends DirectUpload {
  id: string;
  location: string;
}

/** Direct-to-S3 uploads: start, part URLs, complete, resumable verification, cancel. */
export class DirectUploads {
  constructor(
    private readonly sessions: UploadSessions,
    private readonly blobs: BlobStore,
    private readonly dispatch: Dispatch,
    private readonly settings: DirectSettings = DEFAULT_DIRECT_SETTINGS,
  ) {}

  /**
   * Opens a direct upload of `size` bytes that must hash to `digest`, with the first part URLs.
   * @throws RegistryError SIZE_INVALID (over 5 TiB), DIGEST_INVALID (not sha256).
   */
  async start(repository: string, digest: Digest, size: number): Promise<{ status: DirectStatus; parts: PresignedPart[] }> {
    if (digestAlgorithm(digest) !== 'sha256') throw fail('DIGEST_INVALID', 'direct uploads are verified with sha256 digests only');
    const plan = planParts(size);
    const id = randomUUID();
    const multipartId = await this.blobs.createMultipart(dataKeyOf(id));
    const direct: DirectUpload = { digest, size, partSize: plan.partSize, partCount: plan.count, state: 'uploading', verified: 0 };
    const session = await this.sessions.start(repository, { multipartId, direct }, id);
    return { status: toStatus(session), parts: await this.presign(session, 1, MAX_URLS_PER_ANSWER) };
  }

  /** Part URLs `first` … `first + count - 1` (at most {@link MAX_URLS_PER_ANSWER}). */
  async partUrls(repository: string, id: string, first: number, count: number): Promise<PresignedPart[]> {
    const session = await this.session(repository, id, 'uploading');
    return this.presign(session, first, count);
  }

  /**
   * Completes the S3 upload from the parts' ETags and starts verification.
   * @throws RegistryError BLOB_UPLOAD_INVALID (parts missing, out of order, or the object has the
   *   wrong size), BLOB_UPLOAD_UNKNOWN.
   */
  async complete(repository: string, id: string, etags: readonly { number: number; etag: string }[]): Promise<DirectStatus> {
    // The budget counts from the request's start: joining a large object's parts takes time too,
    // and the whole request must end well inside API Gateway's 30 s.
    const deadline = Date.now() + this.settings.requestBudgetMs;
    await this.sessions.withLease(repository, id, 'direct', async (session, owner) => {
      const direct = requireState(session, 'uploading');
      if (etags.length !== direct.partCount || etags.some((part, i) => part.number !== i + 1)) {
        throw fail('BLOB_UPLOAD_INVALID', `complete needs the ETags of parts 1 to ${direct.partCount}, in order`);
      }
      const plan = { size: direct.size, partSize: direct.partSize, count: direct.partCount };
      const parts = etags.map(({ number, etag }) => {
        const range = partRange(plan, number);
        return { number, etag, size: range.end - range.start + 1 };
      });
      await this.blobs.completeMultipart(session.dataKey, session.multipartId!, parts).catch((error: unknown) => {
        throw fail('BLOB_UPLOAD_INVALID', `S3 refused to complete the upload: ${(error as Error).message?.slice(0, 200)}`);
      });
      const size = await this.blobs.size(session.dataKey);
      if (size !== direct.size) {
        await this.blobs.delete(session.dataKey);
        await this.sessions.forget(session);
        throw fail('BLOB_UPLOAD_INVALID', `the uploaded parts make ${size} bytes, not ${direct.size}`);
      }
      const next = { ...session, multipartId: undefined, parts, direct: { ...direct, state: 'verifying' as const }, version: session.version + 1 };
      await this.sessions.commit(next, owner);
    });
    if ((await this.sessions.verify(id, deadline)) === 'verifying') await this.dispatch(id);
    return this.status(repository, id, false);
  }

  /**
   * The state of a direct upload; while it is verifying, the poll itself verifies for a while, so
   * progress never depends on a background invocation alone.
   */
  async status(repository: string, id: string, advance = true): Promise<DirectStatus> {
    const session = await this.sessions.status(repository, id, 'direct');
    if (advance && session.direct!.state === 'verifying') {
      await this.sessions.verify(id, Date.now() + this.settings.requestBudgetMs);
      return this.status(repository, id, false);
    }
    return toStatus(session);
  }

  /** Cancels a direct upload that is not verified yet and drops its data. */
  async cancel(repository: string, id: string): Promise<void> {
    const session = await this.session(repository, id);
    if (session.direct?.state === 'verifying') throw fail('BLOB_UPLOAD_INVALID', 'the upload is being verified', null, { status: 409 });
    await this.sessions.discard(session);
  }

  private async session(repository: string, id: string, state?: DirectUpload['state']): Promise<UploadSession> {
    const session = await this.sessions.status(repository, id, 'direct');
    if (state) requireState(session, state);
    return session;
  }

  private async presign(session: UploadSession, first: number, count: number): Promise<PresignedPart[]> {
    const direct = session.direct!;
    const plan = { size: direct.size, partSize: direct.partSize, count: direct.partCount };
    const last = Math.min(first + Math.min(count, MAX_URLS_PER_ANSWER) - 1, plan.count);
    const parts: PresignedPart[] = [];
    for (let number = first; number <= last; number++) {
      const range = partRange(plan, number);
      const url = await this.blobs.presignUploadPart(session.dataKey, session.multipartId!, number, this.settings.urlSeconds);
      parts.push({ number, url, offset: range.start, length: range.end - range.start + 1 });
    }
    return parts;
  }
}

function requireState(session: UploadSession, state: DirectUpload['state']): DirectUpload {
  if (!session.direct) throw fail('BLOB_UPLOAD_UNKNOWN', 'not a direct upload session');
  if (session.direct.state !== state) throw fail('BLOB_UPLOAD_INVALID', `the upload is ${session.direct.state}, not ${state}`);
  return session.direct;
}

function toStatus(session: UploadSession): DirectStatus {
  return { id: session.id, location: `/v2/${session.repository}/_berth/uploads/${session.id}`, ...session.direct! };
}
