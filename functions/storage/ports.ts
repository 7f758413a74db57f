/**
 * The two storage ports of the registry core. The core talks only to these interfaces;
 * `s3.ts` and `dynamodb.ts` adapt them to S3 and DynamoDB, `files.ts` the blob store to local files
 * (`npm start`), and `test/contract` checks every back end (embedded emulators, the file store,
 * MinIO, DynamoDB Local, AWS) against the same expectations.
 */
import type { Readable } from 'node:stream';
import type { Account, Visibility } from '../auth/accounts.js';
import type { Digest } from '../core/grammar.js';

/** Byte store for blob data, upload scratch data and large manifests (S3 semantics). */
export interface BlobStore {
  /** Stores a whole object (≤ 5 GiB, S3 PutObject). */
  put(key: string, body: Uint8Array): Promise<void>;
  /** Reads a whole small object into memory (upload tails, manifests). Throws if missing. */
  read(key: string): Promise<Buffer>;
  /**
   * Streams an object, or the inclusive byte range `[start, end]` of it; with `ifMatch` only while
   * the object still has that ETag (S3 answers 412 PreconditionFailed otherwise).
   */
  open(key: string, range?: ByteRange, ifMatch?: string): Promise<Readable>;
  /**
   * Copies an object (≤ 5 GiB: S3 CopyObject), only while the source has the ETag `ifMatch` when
   * given (S3 answers 412 PreconditionFailed otherwise).
   */
  copy(from: string, to: string, ifMatch?: string): Promise<void>;
  /**
   * Objects whose key starts with `prefix`, in key order, after `startAfter` when given, at most
   * `limit` (≤ 1000: S3 ListObjectsV2 pages; strongly consistent).
   */
  list(prefix: string, limit: number, startAfter?: string): Promise<StoredObject[]>;
  /** A URL that lets anyone GET the object for `expiresIn` seconds (SigV4 presigned; the file store: an HMAC-signed path of the local server). */
  presignGet(key: string, expiresIn: number): Promise<string>;
  /** A URL that lets anyone PUT part `partNumber` of a multipart upload for `expiresIn` seconds. */
  presignUploadPart(key: string, uploadId: string, partNumber: number, expiresIn: number): Promise<string>;
  /** The object's size in bytes, or undefined when there is no such object. */
  size(key: string): Promise<number | undefined>;
  /** Removes an object; a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Starts a multipart upload to `key`; returns its upload id. */
  createMultipart(key: string): Promise<string>;
  /** Uploads part `partNumber` (1..10000; ≥ 5 MiB unless last) and returns its ETag. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string>;
  /** Joins the parts, in ascending part number, into the object at `key`. */
  completeMultipart(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void>;
  /** Discards a multipart upload and its parts; an unknown upload is not an error. */
  abortMultipart(key: string, uploadId: string): Promise<void>;
}

/**
 * Upload URLs already used, where the front door's edge function looks before it sends a `PUT` to
 * S3 (its KeyValueStore: the edge keeps no other state), so that a replayed URL gets an OCI error.
 */
export interface SpentUploads {
  /** Records that session `id`'s upload URL was used; the entry may go after `until` (epoch s). */
  spend(id: string, until: number): Promise<void>;
  /** Removes the entries past their `until` at `now` (epoch s); returns how many. */
  prune(now: number): Promise<number>;
}

/** An object as a listing shows it. */
export interface StoredObject {
  key: string;
  size: number;
  etag: string;
  /** When the object was last written (epoch ms). */
  lastModified: number;
}

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** One committed part of an upload session's S3 multipart upload. */
export interface UploadedPart {
  number: number;
  etag: string;
  size: number;
}

/** A verified blob: its digest, size in bytes and the object key that holds its bytes. */
export interface BlobRecord {
  digest: Digest;
  size: number;
  key: string;
}

/**
 * Server-side state of a blob upload session (end-4a … end-6, end-13). `offset` bytes have been
 * received; of these, the bytes in `parts` are in the S3 multipart upload and the last `tailSize`
 * bytes wait in the object `tailKey` (fewer than 5 MiB, or a whole blob streamed in one request).
 * The bytes so far are hashed when `hashState` or `digest` is set; otherwise the finished object
 * is hashed by reading it back.
 */
export interface UploadSession {
  id: string;
  repository: string;
  /** Object key the finished blob will have. */
  dataKey: string;
  offset: number;
  multipartId?: string;
  parts: UploadedPart[];
  tailKey?: string;
  tailSize: number;
  /** Serialised SHA-256 state of bytes `[0, offset)` (hash-wasm `save()`), base64. */
  hashState?: string;
  /** SHA-256 digest of bytes `[0, offset)`, when node's hash saw them all (its state stays in that process). */
  digest?: Digest;
  /** Incremented by every commit; commits are conditional on it. */
  version: number;
  createdAt: number;
  /** Epoch seconds after which the session may be dropped (DynamoDB TTL). */
  expiresAt: number;
  /** Set for direct-to-S3 uploads (the `_berth/uploads` extension). */
  direct?: DirectUpload;
  /** Set when a whole-blob PUT through the front door landed in S3 for this session. */
  incoming?: Verification;
}

/** A blob whose bytes reached S3 without passing through the registry, and its verification. */
export interface Verification {
  digest: Digest;
  size: number;
  state: 'uploading' | 'verifying' | 'verified' | 'failed';
  /** Bytes hashed so far while verifying (the hash state is the session's `hashState`). */
  verified: number;
  error?: string;
  /** The object verified, when it is not the session's `dataKey` (front-door uploads land under `incoming/`). */
  source?: string;
  /** The ETag of the object when verification began: a replaced object fails verification. */
  etag?: string;
}

/** State of a direct upload: the client uploads parts to S3, the registry verifies the whole blob. */
export interface DirectUpload extends Verification {
  partSize: number;
  partCount: number;
}

/** A descriptor as the image spec defines it, as far as the registry keeps it. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** A stored manifest: exact bytes inline (small) or under `key` in the blob store (large). */
export interface ManifestRecord {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
  bytes?: Uint8Array;
  key?: string;
  subject?: Digest;
  createdAt: number;
}

/** A tag: a mutable name for a manifest, with enough of it to answer HEAD (and GET of a small manifest) in one read. */
export interface TagRecord {
  repository: string;
  tag: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** The manifest's bytes when it is small (see manifests.ts). */
  bytes?: Uint8Array;
  updatedAt: number;
}

/** A repository's catalog entry. */
export interface RepositoryInfo {
  name: string;
  visibility: Visibility;
  /** Epoch ms of the last push (blob link or manifest); absent for an entry made only by an admin. */
  pushedAt?: number;
  /** Shown by `docker search`: from the image's description annotation or label, or set by an admin. */
  description?: string;
}

/** Tags of the repositories matching `pattern` cannot be moved or deleted, except those matching one of `except`. */
export interface ImmutableRule {
  /** Repository pattern (`team/*`; `*` matches any characters). */
  pattern: string;
  /** Tag patterns exempt from the rule (`latest`, `dev-*`). */
  except: string[];
}

/**
 * A retention rule for the repositories matching `pattern` (in the spirit of ECR lifecycle
 * policies); each rule sets one of `keepLast`, `expireDays`, `untaggedDays`.
 */
export interface RetentionRule {
  /** Short id, for `npx berth retention rm <id>`. */
  id: string;
  /** Repository pattern (`team/*`). */
  pattern: string;
  /** Tag pattern the tag rules apply to (default `*`: every tag). */
  tags: string;
  /** Keep the `keepLast` most recently pushed matching tags; older matching tags are deleted. */
  keepLast?: number;
  /** Matching tags pushed more than `expireDays` days ago are deleted. */
  expireDays?: number;
  /** Untagged (unreachable) manifests go after `untaggedDays` days rather than after the grace period, when that is longer. */
  untaggedDays?: number;
}

/**
 * A pull-through cache rule (`npx berth cache add`): repositories under `prefix/` mirror the
 * repositories of the upstream registry `upstream`, read-only (README, "Pull-through cache").
 */
export interface CacheRule {
  /** Repository name prefix, without a trailing slash (`hub`, `ghcr`, `docker.io`). */
  prefix: string;
  /** The upstream registry's base URL, `https://host[:port]`, without credentials or path. */
  upstream: string;
  /** Where the upstream credentials are kept (see storage/secrets.ts); undefined: anonymous. */
  secret?: string;
  /** Upstream user name, shown by `cache ls` (the password is never shown). */
  username?: string;
  /** Seconds a tag's upstream answer is trusted before it is resolved again (default 300). */
  ttlSeconds: number;
  createdAt: number;
}

/** One page of a lexically ordered listing; `last` is set when another page follows. */
export interface Page<T> {
  items: T[];
  last?: string;
}

/** Thrown by upload session writes that lost a race (another request holds or changed the session). */
export class UploadConflict extends Error {
  constructor(readonly current?: UploadSession) {
    super('upload session is busy or changed');
  }
}

/**
 * Garbage collection's view of the items it may delete. Every write that makes one item depend on
 * another (a link on its blob item, a manifest on its links and child manifests) first *claims* the
 * item it depends on (stores a fresh random `claim`), writes, then claims it again; the collector
 * reads `claim` before it looks for references and deletes only while `claim` is unchanged. So a
 * delete loses against any dependent write that it could have missed (see README, "Storage life cycle").
 */
export interface Claimed {
  /** Random token replaced by every write and claim of the item; absent on items older than GC. */
  claim?: string;
}

/** A blob item as the collector sees it: epoch ms of its creation or last link (0: unknown). */
export interface StoredBlob extends BlobRecord, Claimed {
  linkedAt: number;
}

/** A blob link as the collector sees it. */
export interface StoredLink extends BlobRecord, Claimed {
  /** Epoch ms the link was (last) written by an upload or mount; 0 for links older than GC. */
  linkedAt: number;
  /** Epoch ms a manifest PUT last referenced it; undefined: never (a push in flight, or abandoned). */
  usedAt?: number;
}

/** A manifest item as the collector sees it (bytes inline or under `key`). */
export interface StoredManifest extends ManifestRecord, Claimed {
  /** Epoch ms an image index PUT last referenced it. */
  usedAt?: number;
}

/** Everything under one repository's partition, read in one pass. */
export interface RepositoryContents {
  links: StoredLink[];
  manifests: StoredManifest[];
  tags: TagRecord[];
  referrers: { subject: Digest; digest: Digest }[];
}

/** An item the collector deletes, with the claim it read before looking for references. */
export type Collectable =
  | { kind: 'blob'; digest: Digest; claim?: string }
  | { kind: 'link'; repository: string; digest: Digest; claim?: string }
  | { kind: 'manifest'; repository: string; digest: Digest; claim?: string }
  /** A tag, only while it still names `digest` as pushed at `updatedAt` (a re-push wins). */
  | { kind: 'tag'; repository: string; tag: string; digest: Digest; updatedAt: number };

/** Metadata store (DynamoDB semantics: single items, conditional writes, ordered queries). */
export interface MetadataStore {
  getBlob(digest: Digest): Promise<BlobRecord | undefined>;
  /** Records a verified blob unless one exists; returns the record that is now authoritative. */
  putBlobIfAbsent(blob: BlobRecord): Promise<{ blob: BlobRecord; created: boolean }>;
  /** The blob as linked to `repository` (the repository may serve it), or undefined. */
  getBlobLink(repository: string, digest: Digest): Promise<BlobRecord | undefined>;
  putBlobLink(repository: string, blob: BlobRecord): Promise<void>;
  /** Removes a link; false when there was none. */
  deleteBlobLink(repository: string, digest: Digest): Promise<boolean>;

  createUpload(session: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | undefined>;
  /**
   * Takes the session's write lease until `until` (epoch ms) for `owner`, or extends the lease
   * `owner` holds.
   * @throws UploadConflict when another owner holds an unexpired lease or the session is gone.
   */
  leaseUpload(id: string, owner: string, now: number, until: number): Promise<UploadSession>;
  /**
   * Writes the session's new state and releases the lease, only if `owner` still holds it and
   * nobody committed since `session.version - 1`.
   * @throws UploadConflict otherwise.
   */
  commitUpload(session: UploadSession, owner: string): Promise<void>;
  /** Gives up a lease without changes (best effort). */
  releaseUpload(id: string, owner: string): Promise<void>;
  deleteUpload(id: string): Promise<void>;

  getManifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined>;
  putManifest(manifest: ManifestRecord): Promise<void>;
  deleteManifest(repository: string, digest: Digest): Promise<boolean>;

  getTag(repository: string, tag: string): Promise<TagRecord | undefined>;
  putTag(tag: TagRecord): Promise<void>;
  /** Writes a tag only when it does not exist or names the same digest already (immutable tags); false otherwise. */
  putTagIfUnmoved(tag: TagRecord): Promise<boolean>;
  /**
   * Writes a tag only while the stored one is still `expected` (same digest and `updatedAt`), or,
   * with `expected` undefined, only while there is none; false otherwise. A write based on an
   * old read (the pull-through cache's tag refresh) thus loses to any write or delete since.
   */
  replaceTag(tag: TagRecord, expected: Pick<TagRecord, 'digest' | 'updatedAt'> | undefined): Promise<boolean>;
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /** Tags in lexical order after `last`, at most `limit`. */
  listTags(repository: string, limit: number, last?: string): Promise<Page<TagRecord>>;

  putReferrer(repository: string, subject: Digest, descriptor: Descriptor): Promise<void>;
  deleteReferrer(repository: string, subject: Digest, digest: Digest): Promise<void>;
  listReferrers(repository: string, subject: Digest): Promise<Descriptor[]>;

  /** Adds the repository to the catalog (idempotent) and records `pushedAt` (epoch ms) and, when given, its description. */
  touchRepository(repository: string, pushedAt: number, description?: string): Promise<void>;
  /** Sets a repository's description, creating its catalog entry if needed. */
  setDescription(repository: string, description: string): Promise<void>;
  getRepository(repository: string): Promise<RepositoryInfo | undefined>;
  /** Sets a repository's visibility, creating its catalog entry if needed. */
  setVisibility(repository: string, visibility: Visibility): Promise<void>;
  /** Repositories in lexical order of name after `last`, at most `limit`. */
  listRepositories(limit: number, last?: string): Promise<Page<RepositoryInfo>>;
  /**
   * Removes a repository's catalog entry (it leaves the catalog and search); with `pushedAt`, only
   * while no push touched it since (a push after an emptying wins). False when nothing was removed.
   */
  deleteRepository(repository: string, pushedAt?: number): Promise<boolean>;

  /**
   * Claims the blob item before a link to it is written: stores a new claim and `linkedAt = now`.
   * Returns the blob, or undefined when it is gone (collected): the caller must not link it.
   */
  claimBlob(digest: Digest, now: number): Promise<BlobRecord | undefined>;
  /** Claims a link before a manifest referencing it is written (`usedAt = now`); undefined when gone. */
  claimBlobLink(repository: string, digest: Digest, now: number): Promise<BlobRecord | undefined>;
  /** Claims a manifest before an index or tag referencing it is written (`usedAt = now`); false when gone. */
  claimManifest(repository: string, digest: Digest, now: number): Promise<boolean>;
  /** Deletes the item only while its claim is the one given (absent: never claimed). False when it lost. */
  collect(item: Collectable): Promise<boolean>;
  /** The whole partition of one repository (links, manifests, tags, referrer entries), strongly consistent. */
  readRepository(repository: string): Promise<RepositoryContents>;
  /** Adds or replaces the immutability rule of `rule.pattern`. */
  putImmutableRule(rule: ImmutableRule): Promise<void>;
  /** False when there was no rule for `pattern`. */
  deleteImmutableRule(pattern: string): Promise<boolean>;
  /** Every immutability rule, by pattern. */
  listImmutableRules(): Promise<ImmutableRule[]>;

  /** Adds or replaces the retention rule `rule.id`. */
  putRetentionRule(rule: RetentionRule): Promise<void>;
  /** False when there was no rule `id`. */
  deleteRetentionRule(id: string): Promise<boolean>;
  /** Every retention rule, by id. */
  listRetentionRules(): Promise<RetentionRule[]>;

  /** Adds or replaces the cache rule of `rule.prefix`. */
  putCacheRule(rule: CacheRule): Promise<void>;
  /** False when there was no rule for `prefix`. */
  deleteCacheRule(prefix: string): Promise<boolean>;
  /** Every cache rule, by prefix. */
  listCacheRules(): Promise<CacheRule[]>;
  /**
   * Claims the upstream fetch of blob `digest` for `owner` until `until` (epoch ms): true when no
   * other owner holds an unexpired claim (a conditional write, so it holds across processes).
   */
  claimFetch(digest: Digest, owner: string, now: number, until: number): Promise<boolean>;
  /** Gives up `owner`'s claim on fetching `digest` (best effort). */
  releaseFetch(digest: Digest, owner: string): Promise<void>;

  /** Blob items, in no particular order, `limit` at most per page; `last` is an opaque cursor. */
  scanBlobs(limit: number, last?: string): Promise<Page<StoredBlob>>;
  /** Upload sessions, in no particular order, `limit` at most per page; `last` is an opaque cursor. */
  scanUploads(limit: number, last?: string): Promise<Page<UploadSession>>;
}

/**
 * The outcome of claiming a login attempt of one account name from one source address. Claims
 * are counted in a window before the password is checked, so parallel guesses cannot all slip
 * in before the first failure is recorded.
 */
export type LoginAttempt =
  /** Counted: check the password, then release the claim (success) or record a failure. */
  | { claimed: true; resetAt: number }
  /** Not counted: the window already holds `max` attempts, `failures` of them failed. */
  | { claimed: false; failures: number; resetAt: number };

/** Users and robot accounts, and the login attempts counted against them (DynamoDB semantics). */
export interface AccountStore {
  getAccount(name: string): Promise<Account | undefined>;
  putAccount(account: Account): Promise<void>;
  /** False when there was no such account. */
  deleteAccount(name: string): Promise<boolean>;
  listAccounts(): Promise<Account[]>;
  /**
   * Atomically counts one more login attempt of `name` from `source` in the open window (a new
   * window of `windowMs` starts when none is open), unless the window holds `max` already.
   */
  claimLoginAttempt(name: string, source: string, now: number, windowMs: number, max: number): Promise<LoginAttempt>;
  /** Gives back an attempt claimed in the window ending at `resetAt` (its password was right). */
  releaseLoginAttempt(name: string, source: string, resetAt: number): Promise<void>;
  /** Marks an attempt claimed in the window ending at `resetAt` as failed; it stays counted. */
  recordLoginFailure(name: string, source: string, resetAt: number): Promise<void>;
  /** Forgets the attempts of `name` from every source (unlock); returns how many sources had some. */
  clearLoginFailures(name: string): Promise<number>;
}
