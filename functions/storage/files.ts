/**
 * Filesystem adapter of the {@link BlobStore} port, for the local server (`npm start`): objects are
 * files under one folder, read with `fs.createReadStream` and written without the hashing and the
 * loopback HTTP of an S3 emulator. It keeps S3's semantics where the core relies on them (source:
 * Amazon S3 API Reference, PutObject, GetObject, CopyObject, ListObjectsV2, UploadPart,
 * CompleteMultipartUpload, and "Amazon S3 multipart upload limits"):
 *
 * - an object appears whole or not at all: every write goes to a temporary file in `.tmp/` that is
 *   renamed over the object's path (rename is atomic), so a `kill -9` leaves no half object;
 * - its ETag changes with every write: inode, size and modification time in nanoseconds of the file
 *   (a new file each time), so `If-Match` on reads and copies fails (412 `PreconditionFailed`) once
 *   the object was replaced, as on S3;
 * - listings are in UTF-8 byte order of the keys, with prefix, start-after and a page limit;
 * - multipart uploads keep their parts in `.uploads/<upload id>/`; completing checks part order,
 *   ETags and the 5 MiB minimum of every part but the last, as S3 does, then joins the parts;
 * - {@link FileBlobStore.sweep} does what the bucket's lifecycle rules do: unfinished multipart
 *   uploads and `uploads/` scratch objects go once no upload session can use them;
 * - presigned URLs are paths on the local server itself, `/_berth/objects/<key>`, signed with HMAC
 *   (signed-paths.ts) and answered like S3 by infra/local/object-urls.ts.
 *
 * Key → path: each `/`-separated segment is percent-encoded (so no segment is `.` or `..` or holds
 * a separator); folders carry a trailing `=`, which encoding never produces, so that keys `a` and
 * `a/b` can both exist; names starting with `.` are the store's own (temporary files, uploads).
 * Not loaded by the Lambda bundles: the local server and the CLI inject it (functions/wiring.ts).
 */
import { randomUUID } from 'node:crypto';
import { constants, createReadStream, type BigIntStats } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULT_SESSION_SETTINGS } from '../core/sessions.js';
import { sameSignature, sign, type PathKey } from '../core/signed-paths.js';
import type { BlobStore, ByteRange, StoredObject, UploadedPart } from './ports.js';

const MiB = 1024 * 1024;
/** S3: a PutObject, CopyObject or UploadPart carries at most 5 GiB. */
export const MAX_OBJECT_BYTES = 5 * 1024 * MiB;
/** S3: every part but the last of a multipart upload has at least 5 MiB. */
const MIN_PART_BYTES = 5 * MiB;
/** S3: part numbers 1 to 10,000. */
const MAX_PART_NUMBER = 10_000;
/** S3: presigned URLs live at most 7 days (SigV4 `X-Amz-Expires`). */
const MAX_EXPIRES_SECONDS = 7 * 24 * 3600;
/** The path under which the local server answers presigned URLs of this store. */
export const OBJECT_URL_PATH = '/_berth/objects/';
/** A multipart upload lives as long as the upload session it belongs to (core/sessions.ts). */
const UPLOAD_LIFETIME_MS = DEFAULT_SESSION_SETTINGS.sessionTtlSeconds * 1000;
/** Where sessions keep scratch objects (their tails), and how long one may be of use: a session's lifetime and a day. */
const SCRATCH_PREFIX = 'uploads/';
const SCRATCH_LIFETIME_MS = UPLOAD_LIFETIME_MS + 24 * 3600 * 1000;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * An error as the S3 SDK throws it: `name` is S3's error code, `$metadata.httpStatusCode` its status,
 * so that callers written for S3 (sessions.ts `isChanged`, the contract suite) read it alike.
 */
export class ObjectError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(code: string, message: string, status: number) {
    super(message);
    this.name = code;
    this.$metadata = { httpStatusCode: status };
  }
}

/** Where presigned URLs point and the key that signs them; without it the store presigns nothing (the CLI). */
export interface ObjectUrls {
  key: PathKey;
  /** `http(s)://host:port` of the local server, read when a URL is made (the port is known once it listens). */
  origin: () => string;
}

/** What a valid presigned URL lets its holder do. */
export type SignedRequest = { kind: 'get'; key: string } | { kind: 'part'; key: string; uploadId: string; partNumber: number };

/** {@link BlobStore} on a folder of the local filesystem. */
export class FileBlobStore implements BlobStore {
  private readonly root: string;

  /** Objects under the folder `root` (created as needed); `urls` makes presigned URLs possible. */
  constructor(
    root: string,
    private readonly urls?: ObjectUrls,
  ) {
    this.root = resolve(root);
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    if (body.length > MAX_OBJECT_BYTES) throw new ObjectError('EntityTooLarge', 'objects of a single PUT have at most 5 GiB', 400);
    const temp = await this.writeTemp(this.tempDir(), [body]);
    await this.publish(temp.path, key);
  }

  async read(key: string): Promise<Buffer> {
    try {
      return await readFile(this.path(key));
    } catch (error) {
      throw missing(error, key);
    }
  }

  async open(key: string, range?: ByteRange, ifMatch?: string): Promise<Readable> {
    let handle: FileHandle;
    try {
      handle = await open(this.path(key), 'r');
    } catch (error) {
      throw missing(error, key);
    }
    // The ETag is the opened file's: a put that renames a new file over it changes neither.
    const stats = await handle.stat({ bigint: true });
    const fail = (error: ObjectError) => handle.close().then(() => Promise.reject(error));
    if (ifMatch !== undefined && ifMatch !== etagOf(stats)) return fail(new ObjectError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 412));
    if (range && (range.start >= Number(stats.size) || range.end < range.start)) return fail(new ObjectError('InvalidRange', 'The requested range is not satisfiable', 416));
    return createReadStream('', { fd: handle, start: range?.start, end: range?.end, highWaterMark: MiB });
  }

  async copy(from: string, to: string, ifMatch?: string): Promise<void> {
    const dir = this.tempDir();
    await mkdir(dir, { recursive: true });
    // A hard link pins the source's file, so the ETag checked is that of the bytes copied.
    const pinned = join(dir, randomUUID());
    try {
      await link(this.path(from), pinned);
    } catch (error) {
      throw missing(error, from);
    }
    try {
      const stats = await stat(pinned, { bigint: true });
      if (ifMatch !== undefined && ifMatch !== etagOf(stats)) throw new ObjectError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 412);
      if (stats.size > BigInt(MAX_OBJECT_BYTES)) throw new ObjectError('InvalidRequest', 'CopyObject copies at most 5 GiB', 400);
      // A copy of its own (never the same inode: a later write to one must not show in the other).
      const temp = join(dir, randomUUID());
      await copyFile(pinned, temp, constants.COPYFILE_FICLONE);
      await this.publish(temp, to);
    } finally {
      await unlink(pinned).catch(() => undefined);
    }
  }

  async list(prefix: string, limit: number, startAfter?: string): Promise<StoredObject[]> {
    const objects: StoredObject[] = [];
    if (limit <= 0) return objects;
    for await (const key of this.keys(this.root, '', prefix, startAfter)) {
      const object = await this.stat(key);
      // Deleted since the folder was read.
      if (!object) continue;
      objects.push(object);
      if (objects.length >= limit) break;
    }
    return objects;
  }

  /** The object as a listing shows it, or undefined when there is none. */
  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const stats = await stat(this.path(key), { bigint: true });
      return { key, size: Number(stats.size), etag: etagOf(stats), lastModified: Number(stats.mtimeNs / 1_000_000n) };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async presignGet(key: string, expiresIn: number): Promise<string> {
    return this.presign(key, expiresIn);
  }

  async presignUploadPart(key: string, uploadId: string, partNumber: number, expiresIn: number): Promise<string> {
    return this.presign(key, expiresIn, { uploadId, partNumber });
  }

  async size(key: string): Promise<number | undefined> {
    return (await this.stat(key))?.size;
  }

  async delete(key: string): Promise<void> {
    const path = this.path(key);
    try {
      await unlink(path);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    await this.prune(dirname(path));
  }

  async createMultipart(key: string): Promise<string> {
    this.path(key);
    const id = randomUUID();
    await mkdir(this.uploadDir(id), { recursive: true });
    await this.writeFileAtomically(join(this.uploadDir(id), 'key'), Buffer.from(key));
    return id;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<string> {
    return this.writePart(key, uploadId, partNumber, [body]);
  }

  /**
   * Stores part `partNumber` from `body` (a request body, streamed to disk) and returns its ETag.
   * @throws ObjectError NoSuchUpload, InvalidArgument (part number), EntityTooLarge (over 5 GiB).
   */
  async writePart(key: string, uploadId: string, partNumber: number, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<string> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
      throw new ObjectError('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', 400);
    }
    const dir = await this.upload(key, uploadId);
    const temp = await this.writeTemp(dir, body);
    if (temp.stats.size > BigInt(MAX_OBJECT_BYTES)) {
      await unlink(temp.path).catch(() => undefined);
      throw new ObjectError('EntityTooLarge', 'a part has at most 5 GiB', 400);
    }
    try {
      await rename(temp.path, join(dir, String(partNumber)));
    } catch (error) {
      // Aborted meanwhile.
      await unlink(temp.path).catch(() => undefined);
      throw isMissing(error) ? noSuchUpload() : error;
    }
    return etagOf(temp.stats);
  }

  async completeMultipart(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    const dir = await this.upload(key, uploadId);
    if (parts.length === 0) throw new ObjectError('MalformedXML', 'You must specify at least one part', 400);
    if (parts.some((part, i) => i > 0 && part.number <= parts[i - 1].number)) throw new ObjectError('InvalidPartOrder', 'The list of parts was not in ascending order', 400);
    // Each part is checked and read through one open handle: a part written over meanwhile (a
    // request that lost its lease) cannot put other bytes under the ETags checked.
    const handles: FileHandle[] = [];
    try {
      for (const [i, part] of parts.entries()) {
        const handle = await open(join(dir, String(part.number)), 'r').catch(() => undefined);
        if (handle) handles.push(handle);
        const stats = await handle?.stat({ bigint: true });
        if (!stats || etagOf(stats) !== part.etag) throw new ObjectError('InvalidPart', `part ${part.number} was not uploaded, or its ETag is not ${part.etag}`, 400);
        if (i < parts.length - 1 && stats.size < BigInt(MIN_PART_BYTES)) throw new ObjectError('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size', 400);
      }
      const temp = await this.writeTemp(this.tempDir(), concatenated(handles));
      await this.publish(temp.path, key);
    } finally {
      await Promise.all(handles.map((handle) => handle.close()));
    }
    await rm(dir, { recursive: true, force: true });
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await rm(await this.upload(key, uploadId), { recursive: true, force: true });
    } catch (error) {
      if ((error as Error).name !== 'NoSuchUpload') throw error;
    }
  }

  /**
   * What the presigned URL `path?query` lets its holder do with `method`, at `now` (epoch ms).
   * @throws ObjectError AccessDenied (expired) or SignatureDoesNotMatch (403), as S3 answers them.
   */
  checkSigned(method: string, path: string, query: URLSearchParams, now = Date.now()): SignedRequest {
    const denied = new ObjectError('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided', 403);
    if (!this.urls || !path.startsWith(OBJECT_URL_PATH)) throw denied;
    let key: string;
    try {
      key = path.slice(OBJECT_URL_PATH.length).split('/').map(decodeURIComponent).join('/');
    } catch {
      throw denied;
    }
    const expires = query.get('X-Berth-Expires') ?? '';
    const uploadId = query.get('uploadId') ?? undefined;
    const partNumber = query.get('partNumber') ?? undefined;
    const signed = sign(this.urls.key, message(method === 'HEAD' ? 'GET' : method, key, expires, uploadId, partNumber));
    if (!/^\d{1,12}$/.test(expires) || !sameSignature(signed, query.get('X-Berth-Signature') ?? '')) throw denied;
    if (Number(expires) * 1000 <= now) throw new ObjectError('AccessDenied', 'Request has expired', 403);
    if (method === 'PUT' && uploadId !== undefined && partNumber !== undefined) return { kind: 'part', key, uploadId, partNumber: Number(partNumber) };
    if ((method === 'GET' || method === 'HEAD') && uploadId === undefined) return { kind: 'get', key };
    throw denied;
  }

  /**
   * What the bucket's lifecycle rules do on AWS (infra/aws/storage.yml), run at start and with each
   * local gc: removes temporary files a killed process left behind, older than `ageMs` (a write in
   * flight is younger), in `.tmp/` and in every multipart upload's folder; multipart uploads not
   * completed or aborted within an upload session's lifetime of their start (7 days, as
   * `AbortIncompleteMultipartUpload`); and `uploads/` scratch objects (session tails) a day older
   * than that, when no session can still use them (as `expire-upload-scratch-data`).
   * @param now epoch ms.
   */
  async sweep(ageMs = 3600_000, now = Date.now()): Promise<void> {
    await removeOlder(this.tempDir(), now - ageMs);
    const uploads = join(this.root, '.uploads');
    for (const id of await readdir(uploads).catch(() => [] as string[])) {
      const dir = join(uploads, id);
      // Started when its `key` file was written (the folder's own time moves with every part).
      const started = await stat(join(dir, 'key')).catch(() => stat(dir)).catch(() => undefined);
      if (started && started.mtimeMs < now - UPLOAD_LIFETIME_MS) await rm(dir, { recursive: true, force: true });
      else await removeOlder(dir, now - ageMs, (name) => name.startsWith('.'));
    }
    for (let after: string | undefined; ; ) {
      const page = await this.list(SCRATCH_PREFIX, 1000, after);
      for (const object of page) if (object.lastModified < now - SCRATCH_LIFETIME_MS) await this.delete(object.key);
      if (page.length < 1000) return;
      after = page[page.length - 1].key;
    }
  }

  private presign(key: string, expiresIn: number, part?: { uploadId: string; partNumber: number }): string {
    if (!this.urls) throw new Error('presigned URLs of the file store are answered by the local server (npm start) only');
    if (!(expiresIn > 0 && expiresIn <= MAX_EXPIRES_SECONDS)) throw new ObjectError('AuthorizationQueryParametersError', 'X-Amz-Expires must be between 1 and 604800 seconds', 400);
    this.path(key);
    const expires = String(Math.floor(Date.now() / 1000) + Math.floor(expiresIn));
    const method = part ? 'PUT' : 'GET';
    const query = new URLSearchParams(part ? { partNumber: String(part.partNumber), uploadId: part.uploadId } : {});
    query.set('X-Berth-Expires', expires);
    query.set('X-Berth-Signature', sign(this.urls.key, message(method, key, expires, part?.uploadId, part && String(part.partNumber))));
    return `${this.urls.origin()}${OBJECT_URL_PATH}${key.split('/').map(encodeURIComponent).join('/')}?${query}`;
  }

  /** The upload's folder, once its id is well formed and it was started for `key`. */
  private async upload(key: string, uploadId: string): Promise<string> {
    if (!UPLOAD_ID.test(uploadId)) throw noSuchUpload();
    const dir = this.uploadDir(uploadId);
    const owner = await readFile(join(dir, 'key'), 'utf8').catch(() => undefined);
    if (owner !== key) throw noSuchUpload();
    return dir;
  }

  /** Renames the finished temporary file `temp` to the object `key`'s path (atomic: readers see the old file or the new). */
  private async publish(temp: string, key: string): Promise<void> {
    const path = this.path(key);
    for (let attempt = 1; ; attempt++) {
      await mkdir(dirname(path), { recursive: true });
      try {
        await rename(temp, path);
        return;
      } catch (error) {
        // A delete of the folder's last object removed the folder between mkdir and rename.
        if (!isMissing(error) || attempt >= 3) {
          await unlink(temp).catch(() => undefined);
          throw error;
        }
      }
    }
  }

  private async writeFileAtomically(path: string, body: Uint8Array): Promise<void> {
    const temp = await this.writeTemp(dirname(path), [body]);
    await rename(temp.path, path);
  }

  /** Writes `chunks` to a new temporary file in `dir`; returns its path and its stats once written. */
  private async writeTemp(dir: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ path: string; stats: BigIntStats }> {
    await mkdir(dir, { recursive: true });
    const path = join(dir, `.${randomUUID()}`);
    const handle = await open(path, 'wx', 0o600);
    try {
      for await (const chunk of chunks) await handle.writeFile(chunk);
      const stats = await handle.stat({ bigint: true });
      await handle.close();
      return { path, stats };
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw error;
    }
  }

  /** Removes empty folders from `dir` up to the root (an object's last delete leaves none behind). */
  private async prune(dir: string): Promise<void> {
    while (dir.startsWith(this.root) && dir !== this.root) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }

  /**
   * Keys under the folder `dir` (whose keys start with `prefix`) that start with `wanted` and sort
   * after `after`, in UTF-8 byte order: a depth-first walk that sorts each folder's entries.
   */
  private async *keys(dir: string, prefix: string, wanted: string, after?: string): AsyncGenerator<string> {
    const entries = await readdir(dir, { withFileTypes: true }).catch((error) => {
      if (isMissing(error)) return [];
      throw error;
    });
    const children = entries
      // The store's own entries, and anything not written by it (no name it could have made).
      .filter((entry) => !entry.name.startsWith('.') && (entry.isDirectory() ? entry.name.endsWith('=') && decodable(entry.name.slice(0, -1)) : entry.isFile() && decodable(entry.name)))
      .map((entry) => (entry.isDirectory() ? { folder: entry.name, key: `${prefix}${decodeSegment(entry.name.slice(0, -1))}/` } : { key: prefix + decodeSegment(entry.name) }))
      .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    for (const child of children) {
      if (child.folder === undefined) {
        if (child.key.startsWith(wanted) && (after === undefined || Buffer.compare(Buffer.from(child.key), Buffer.from(after)) > 0)) yield child.key;
        continue;
      }
      // Every key in the folder starts with child.key: skip it when none can match or all sort before `after`.
      if (!child.key.startsWith(wanted) && !wanted.startsWith(child.key)) continue;
      if (after !== undefined && !after.startsWith(child.key) && Buffer.compare(Buffer.from(child.key), Buffer.from(after)) < 0) continue;
      yield* this.keys(join(dir, child.folder), child.key, wanted, after);
    }
  }

  /** The file of object `key`. */
  private path(key: string): string {
    if (key.length === 0 || Buffer.byteLength(key) > 1024) throw new ObjectError('KeyTooLongError', 'Your key is too long', 400);
    const segments = key.split('/').map(encodeSegment);
    const file = segments.pop()!;
    return join(this.root, ...segments.map((segment) => `${segment}=`), file);
  }

  private tempDir(): string {
    return join(this.root, '.tmp');
  }

  private uploadDir(id: string): string {
    return join(this.root, '.uploads', id);
  }
}

/** The S3 ETag of a file: quoted, new for every file written (a new inode, size and write time). */
function etagOf(stats: BigIntStats): string {
  return `"${stats.ino.toString(16)}-${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}"`;
}

function message(method: string, key: string, expires: string, uploadId?: string, partNumber?: string): string[] {
  return ['object', method, key, uploadId ?? '', partNumber ?? '', expires];
}

/** Percent-encodes a key segment so that it is a plain file name: no `/`, no leading `.`, never empty. */
function encodeSegment(segment: string): string {
  if (segment === '') return '%';
  const encoded = encodeURIComponent(segment).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return encoded.startsWith('.') ? `%2E${encoded.slice(1)}` : encoded;
}

function decodeSegment(name: string): string {
  return name === '%' ? '' : decodeURIComponent(name);
}

function decodable(name: string): boolean {
  try {
    return encodeSegment(decodeSegment(name)) === name;
  } catch {
    return false;
  }
}

/** Unlinks the files of `dir` (those `pick` names) last written before `before` (epoch ms). */
async function removeOlder(dir: string, before: number, pick: (name: string) => boolean = () => true): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!pick(name)) continue;
    const stats = await stat(join(dir, name)).catch(() => undefined);
    if (stats?.isFile() && stats.mtimeMs < before) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/** The bytes of the open files `handles`, one after the other, each from its start. */
async function* concatenated(handles: readonly FileHandle[]): AsyncGenerator<Uint8Array> {
  for (const handle of handles) yield* handle.createReadStream({ start: 0, highWaterMark: MiB, autoClose: false }) as AsyncIterable<Buffer>;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function missing(error: unknown, key: string): unknown {
  return isMissing(error) ? new ObjectError('NoSuchKey', `The specified key does not exist: ${key}`, 404) : error;
}

function noSuchUpload(): ObjectError {
  return new ObjectError('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', 404);
}
