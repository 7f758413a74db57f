/**
 * The native metadata store of `npm start`: the {@link MetadataStore} and {@link AccountStore} ports
 * on in-memory maps of the same items, keys and conditions as the DynamoDB table
 * (functions/storage/dynamodb.ts), made durable by an append-only journal file.
 *
 * Why: on the embedded DynamoDB emulator most of a request's CPU goes to the AWS SDK (marshalling,
 * SigV4, HTTP) and to dynalite's LevelDB; here a read is a map lookup.
 *
 * Durability: every change is one JSON line (`{"p":item}` put, `{"d":[pk,sk]}` delete) written with
 * a synchronous `write(2)` before its promise resolves, so an acknowledged change survives the
 * process being killed (the page cache keeps it; a machine crash may lose the last changes, as
 * dynalite's LevelDB without sync may). On open the journal is replayed, a torn last line (a write
 * cut off) ignored, and compacted: one put per item into a temporary file, fsync, rename.
 *
 * Conditions: each conditional write checks and writes in one synchronous stretch of JavaScript
 * (no `await` in between), so it is atomic in the one process that owns the data folder, with the
 * semantics of the DynamoDB condition expressions the adapter uses (test/contract/metadata.test.ts).
 * String keys are ordered by UTF-16 code units, which equals DynamoDB's UTF-8 byte order for the
 * ASCII names OCI allows for repositories and tags.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Account, Visibility } from '../../functions/auth/accounts.js';
import type { Digest } from '../../functions/core/grammar.js';
import {
  loginKey,
  repoKey,
  toAccount,
  toBlob,
  toContents,
  toDescriptor,
  toManifest,
  toRepository,
  toStoredBlob,
  toTag,
  toUpload,
  uploadKey,
  type Item,
} from '../../functions/storage/dynamodb.js';
import {
  UploadConflict,
  type AccountStore,
  type BlobRecord,
  type CacheRule,
  type Collectable,
  type Descriptor,
  type ImmutableRule,
  type LoginAttempt,
  type ManifestRecord,
  type MetadataStore,
  type Page,
  type RepositoryContents,
  type RepositoryInfo,
  type RetentionRule,
  type StoredBlob,
  type TagRecord,
  type UploadSession,
} from '../../functions/storage/ports.js';

/**
 * JSON text of `value` with every Uint8Array (Buffer too) as `{"$bytes":"<base64>"}` and every
 * undefined as `{"$undefined":1}` (the port's records name absent attributes, and arguments may be
 * absent). An object key of the value's own that starts with `$` (a manifest annotation may) gets
 * one more `$` in front, so that only the markers' keys start with a single `$`.
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, encoded: unknown) {
    const raw = this[key];
    if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
    if (raw === undefined) return { $undefined: 1 };
    if (encoded === null || typeof encoded !== 'object' || Array.isArray(encoded) || !Object.keys(encoded).some((name) => name.startsWith('$'))) return encoded;
    return Object.fromEntries(Object.entries(encoded).map(([name, field]) => [name.startsWith('$') ? `$${name}` : name, field]));
  });
}

/** The value of JSON text from {@link encodeJson}, with its byte strings as Uint8Array, its undefined and its keys again. */
export function decodeJson(text: string): unknown {
  return restore(JSON.parse(text));
}

function restore(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(restore);
  const object = value as Record<string, unknown>;
  if (typeof object.$bytes === 'string') return new Uint8Array(Buffer.from(object.$bytes, 'base64'));
  if (object.$undefined === 1) return undefined;
  const keys = Object.keys(object);
  if (keys.some((name) => name.startsWith('$'))) return Object.fromEntries(keys.map((name) => [name.startsWith('$') ? name.slice(1) : name, restore(object[name])]));
  for (const key of keys) object[key] = restore(object[key]);
  return object;
}

/** The items of one partition key, with their sort keys in order once a listing asked. */
class Partition {
  readonly items = new Map<string, Item>();
  private sorted?: string[];

  /** Sort keys in lexical order. */
  keys(): string[] {
    this.sorted ??= [...this.items.keys()].sort();
    return this.sorted;
  }

  set(sk: string, item: Item): void {
    if (!this.items.has(sk)) this.sorted = undefined;
    this.items.set(sk, item);
  }

  delete(sk: string): boolean {
    this.sorted = undefined;
    return this.items.delete(sk);
  }
}

/**
 * Appended bytes after which the running store compacts its journal (when they also exceed the
 * snapshot): upload sessions rewrite their item at every chunk, so the journal grows with pushes.
 */
const COMPACT_AT = 64 * 1024 * 1024;

/**
 * Writes one put line per item to `file` (created, mode 0600) and syncs it; returns its size and
 * its descriptor, still open (the journal's own once the file is renamed into place).
 * @throws Error when the file cannot be written whole (it is then closed and removed).
 */
function writeSnapshot(file: string, partitions: ReadonlyMap<string, Partition>): { fd: number; bytes: number } {
  const fd = openSync(file, 'w', 0o600);
  try {
    let bytes = 0;
    let chunk: string[] = [];
    const flush = () => {
      const text = `${chunk.join('\n')}\n`;
      const written = writeSync(fd, text);
      if (written !== Buffer.byteLength(text)) throw new Error(`${file}: only ${written} bytes could be written (disk full?)`);
      bytes += written;
      chunk = [];
    };
    for (const partition of partitions.values()) {
      for (const item of partition.items.values()) {
        chunk.push(encodeJson({ p: item }));
        if (chunk.length === 1000) flush();
      }
    }
    if (chunk.length > 0) flush();
    fsyncSync(fd);
    return { fd, bytes };
  } catch (error) {
    closeSync(fd);
    rmSync(file, { force: true });
    throw error;
  }
}

/** Makes the renames in `folder` durable (a rename is, only once its folder is synced). */
function syncFolder(folder: string): void {
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A journal line: a put of a whole item, or a delete of a key. */
type Change = { p: Item } | { d: [string, string] };

/** The table in memory and its journal: the only place items change. */
class Table {
  private readonly partitions = new Map<string, Partition>();
  private fd: number | undefined;
  /** Bytes of the journal: the next line goes there, and a short write is cut back to it. */
  private length = 0;
  /** The journal's length at which the next compaction is tried. */
  private compactDue = 0;

  constructor(
    private readonly file: string,
    private readonly compactAt: number,
  ) {}

  /**
   * Replays the journal (a torn last line ignored), compacts it and opens it for appending; first
   * removes the compaction files of killed processes (the one owner of the folder opens its journal).
   */
  open(): void {
    const folder = dirname(this.file);
    const prefix = `${basename(this.file)}.`;
    for (const name of readdirSync(folder)) if (name.startsWith(prefix) && name.endsWith('.tmp')) rmSync(join(folder, name), { force: true });
    if (existsSync(this.file)) this.replay(readFileSync(this.file, 'utf8'));
    this.compact();
  }

  /**
   * Writes every item to a new journal (temporary file of this process, fsync, rename, fsync of the
   * folder) and appends to that one from now on. Until the rename the old journal stays whole and in
   * use; from the rename on the new one is (its descriptor is the snapshot's), so a kill or a failure
   * at any point leaves one of the two, the one appended to.
   * @throws Error when the snapshot or the rename failed (the old journal goes on), or the folder's sync.
   */
  private compact(): void {
    const temporary = `${this.file}.${process.pid}.tmp`;
    const { fd, bytes } = writeSnapshot(temporary, this.partitions);
    try {
      renameSync(temporary, this.file);
    } catch (error) {
      closeSync(fd);
      rmSync(temporary, { force: true });
      throw error;
    }
    this.close();
    this.fd = fd;
    this.length = bytes;
    this.compactDue = bytes + Math.max(this.compactAt, bytes);
    syncFolder(dirname(this.file));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private replay(text: string): void {
    const lines = text.split('\n');
    // The text after the last line break is a write cut off by a kill: never acknowledged.
    lines.pop();
    lines.forEach((line, index) => {
      let change: Change;
      try {
        change = decodeJson(line) as Change;
      } catch {
        throw new Error(`${this.file} is damaged at line ${index + 1}: move it away to start with no metadata`);
      }
      this.apply(change);
    });
  }

  private apply(change: Change): void {
    if ('p' in change) {
      const { pk, sk } = change.p as { pk: string; sk: string };
      let partition = this.partitions.get(pk);
      if (!partition) this.partitions.set(pk, (partition = new Partition()));
      partition.set(sk, change.p);
    } else {
      const [pk, sk] = change.d;
      const partition = this.partitions.get(pk);
      partition?.delete(sk);
      if (partition?.items.size === 0) this.partitions.delete(pk);
    }
  }

  /** Journals the change (synchronously), then applies it; the stored item is the journal's copy. */
  private write(change: Change): void {
    if (this.fd === undefined) throw new Error('the metadata store is closed');
    const line = encodeJson(change);
    const text = Buffer.from(`${line}\n`);
    // At the journal's known end: after a short write whose cut failed, the next line overwrites it.
    const written = writeSync(this.fd, text, 0, text.length, this.length);
    if (written !== text.length) {
      // A short write (disk full): cut it off, so that the next line does not continue it.
      ftruncateSync(this.fd, this.length);
      throw new Error(`${this.file}: only ${written} bytes of a change could be written (disk full?)`);
    }
    this.length += written;
    this.apply(decodeJson(line) as Change);
    if (this.length <= this.compactDue) return;
    try {
      this.compact();
    } catch (error) {
      // The change is journaled and applied: its caller succeeded. Appending goes on; the next try once as much more is appended.
      console.error(`berth: compacting ${this.file} failed (appending to it goes on): ${(error as Error).message}`);
      this.compactDue = this.length + this.compactAt;
    }
  }

  /** A copy of the item (callers may change what they get). */
  get(pk: string, sk: string): Item | undefined {
    const item = this.partitions.get(pk)?.items.get(sk);
    return item && structuredClone(item);
  }

  /** Stores the item whole, without its undefined attributes (as DynamoDB's document client). */
  put(item: Item): void {
    this.write({ p: Object.fromEntries(Object.entries(item).filter(([, value]) => value !== undefined)) });
  }

  /** Deletes the item; false when there was none. */
  delete(pk: string, sk: string): boolean {
    if (!this.partitions.get(pk)?.items.has(sk)) return false;
    this.write({ d: [pk, sk] });
    return true;
  }

  /** Copies of the items of `pk` whose sort key starts with `prefix`, in order, after `prefix + last`, at most `limit`. */
  query(pk: string, prefix = '', limit = Infinity, last?: string): Page<Item> {
    const partition = this.partitions.get(pk);
    if (!partition) return { items: [] };
    const after = last === undefined ? undefined : prefix + last;
    const keys = partition.keys().filter((sk) => sk.startsWith(prefix) && (after === undefined || sk > after));
    const items = keys.slice(0, limit).map((sk) => structuredClone(partition.items.get(sk)!));
    return { items, last: keys.length > limit && items.length > 0 ? (items.at(-1)!.sk as string).slice(prefix.length) : undefined };
  }

  /** Copies of the single items of the partitions whose key starts with `prefix`, in key order after `last`. */
  scan(prefix: string, limit: number, last?: string): Page<Item> {
    const keys = [...this.partitions.keys()].filter((pk) => pk.startsWith(prefix) && (last === undefined || pk > last)).sort();
    const items = keys.slice(0, limit).flatMap((pk) => [...this.partitions.get(pk)!.items.values()].map((item) => structuredClone(item)));
    return { items, last: keys.length > limit ? keys[limit - 1] : undefined };
  }
}

/** The native metadata store's journal in the data folder `dataDir`. */
/**
 * Writes `tag`'s item when `condition` holds for the item there now (undefined: none), with no
 * await between the check and the write (atomic in this process, as DynamoDB's condition is).
 * A function, not a method: the store's methods are what its loopback endpoint serves.
 */
function putTagIf(table: Table, tag: TagRecord, condition: (existing: Item | undefined) => boolean): boolean {
  const { repository, tag: name, ...rest } = tag;
  if (!condition(table.get(repoKey(repository), `TAG#${name}`))) return false;
  table.put({ pk: repoKey(repository), sk: `TAG#${name}`, ...rest });
  return true;
}

export const nativeJournal = (dataDir: string) => join(dataDir, 'metadata.journal');

/**
 * {@link MetadataStore} and {@link AccountStore} in this process, journaled to `file`. Every
 * public method is a port method (the RPC endpoint serves exactly these).
 */
export class NativeMetadataStore implements MetadataStore, AccountStore {
  private readonly table: Table;

  /**
   * Opens (replays and compacts) the journal `file`, created when missing; compacts it again once
   * `compactAt` bytes (and more than the last snapshot) have been appended.
   */
  constructor(file: string, compactAt = COMPACT_AT) {
    this.table = new Table(file, compactAt);
    this.table.open();
  }

  /**
   * Opens the journal `file`; when there is none yet, first makes it of the items `earlier()` gives
   * (the DynamoDB table's, keys `pk`/`sk`, stored as they are): written whole to `<file>.import`,
   * then renamed into place, so that a kill during the copy leaves no journal and the next open copies again.
   * @returns the store, and how many items it copied (0: the journal existed, or `earlier` gave none).
   */
  static async openOrImport(file: string, earlier: () => Promise<readonly Item[]>): Promise<{ store: NativeMetadataStore; imported: number }> {
    const items = existsSync(file) ? [] : await earlier();
    if (items.length > 0) {
      const importing = `${file}.import`;
      rmSync(importing, { force: true });
      const copy = new NativeMetadataStore(importing);
      try {
        for (const item of items) copy.table.put(item);
      } finally {
        copy.table.close();
      }
      renameSync(importing, file);
      syncFolder(dirname(file));
    }
    return { store: new NativeMetadataStore(file), imported: items.length };
  }

  /** Closes the journal; later writes throw. */
  static close(store: NativeMetadataStore): void {
    store.table.close();
  }

  async getBlob(digest: Digest): Promise<BlobRecord | undefined> {
    const item = this.table.get(`BLOB#${digest}`, 'BLOB');
    return item && toBlob(digest, item);
  }

  async putBlobIfAbsent(blob: BlobRecord): Promise<{ blob: BlobRecord; created: boolean }> {
    const existing = this.table.get(`BLOB#${blob.digest}`, 'BLOB');
    if (existing) return { blob: toBlob(blob.digest, existing), created: false };
    this.table.put({ pk: `BLOB#${blob.digest}`, sk: 'BLOB', size: blob.size, key: blob.key, claim: randomUUID(), linkedAt: Date.now() });
    return { blob, created: true };
  }

  async getBlobLink(repository: string, digest: Digest): Promise<BlobRecord | undefined> {
    const item = this.table.get(repoKey(repository), `BLOB#${digest}`);
    return item && toBlob(digest, item);
  }

  async putBlobLink(repository: string, blob: BlobRecord): Promise<void> {
    // A new claim and no usedAt: the link of a push in flight until a manifest references it.
    this.table.put({ pk: repoKey(repository), sk: `BLOB#${blob.digest}`, size: blob.size, key: blob.key, claim: randomUUID(), linkedAt: Date.now() });
  }

  async deleteBlobLink(repository: string, digest: Digest): Promise<boolean> {
    return this.table.delete(repoKey(repository), `BLOB#${digest}`);
  }

  async createUpload(session: UploadSession): Promise<void> {
    this.table.put({ ...uploadKey(session.id), ...session });
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const item = uploadItem(this.table, id);
    return item && toUpload(item);
  }

  async leaseUpload(id: string, owner: string, now: number, until: number): Promise<UploadSession> {
    const item = uploadItem(this.table, id);
    const free = item && (item.lockedUntil === undefined || (item.lockedUntil as number) < now || item.lockedBy === owner);
    if (!free) throw new UploadConflict(item && toUpload(item));
    const leased = { ...item, lockedBy: owner, lockedUntil: until };
    this.table.put(leased);
    return toUpload(leased);
  }

  async commitUpload(session: UploadSession, owner: string): Promise<void> {
    const item = uploadItem(this.table, session.id);
    if (item?.lockedBy !== owner || item.version !== session.version - 1) throw new UploadConflict(item && toUpload(item));
    this.table.put({ ...uploadKey(session.id), ...session });
  }

  async releaseUpload(id: string, owner: string): Promise<void> {
    const item = uploadItem(this.table, id);
    if (item?.lockedBy !== owner) return;
    const { lockedBy: _owner, lockedUntil: _until, ...released } = item;
    this.table.put(released);
  }

  async deleteUpload(id: string): Promise<void> {
    const { pk, sk } = uploadKey(id);
    this.table.delete(pk, sk);
  }

  async getManifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const item = this.table.get(repoKey(repository), `MANIFEST#${digest}`);
    if (!item) return undefined;
    const { claim: _claim, usedAt: _usedAt, ...record } = toManifest(repository, digest, item);
    return record;
  }

  async putManifest(manifest: ManifestRecord): Promise<void> {
    const { repository, digest, ...rest } = manifest;
    this.table.put({ pk: repoKey(repository), sk: `MANIFEST#${digest}`, ...rest, claim: randomUUID() });
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    return this.table.delete(repoKey(repository), `MANIFEST#${digest}`);
  }

  async getTag(repository: string, tag: string): Promise<TagRecord | undefined> {
    const item = this.table.get(repoKey(repository), `TAG#${tag}`);
    return item && toTag(repository, tag, item);
  }

  async putTag(tag: TagRecord): Promise<void> {
    putTagIf(this.table, tag, () => true);
  }

  async putTagIfUnmoved(tag: TagRecord): Promise<boolean> {
    return putTagIf(this.table, tag, (existing) => !existing || existing.digest === tag.digest);
  }

  async replaceTag(tag: TagRecord, expected: Pick<TagRecord, 'digest' | 'updatedAt'> | undefined): Promise<boolean> {
    return putTagIf(this.table, tag, (existing) => (expected ? existing?.digest === expected.digest && existing?.updatedAt === expected.updatedAt : existing === undefined));
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    return this.table.delete(repoKey(repository), `TAG#${tag}`);
  }

  async listTags(repository: string, limit: number, last?: string): Promise<Page<TagRecord>> {
    const page = this.table.query(repoKey(repository), 'TAG#', limit, last);
    return { items: page.items.map((item) => toTag(repository, (item.sk as string).slice(4), item)), last: page.last };
  }

  async putReferrer(repository: string, subject: Digest, descriptor: Descriptor): Promise<void> {
    this.table.put({ pk: repoKey(repository), sk: `REFERRER#${subject}#${descriptor.digest}`, ...descriptor });
  }

  async deleteReferrer(repository: string, subject: Digest, digest: Digest): Promise<void> {
    this.table.delete(repoKey(repository), `REFERRER#${subject}#${digest}`);
  }

  async listReferrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    return this.table.query(repoKey(repository), `REFERRER#${subject}#`).items.map(toDescriptor);
  }

  async touchRepository(repository: string, pushedAt: number, description?: string): Promise<void> {
    const item = this.table.get('CATALOG', repository) ?? { pk: 'CATALOG', sk: repository };
    this.table.put({ ...item, pushedAt, createdAt: item.createdAt ?? pushedAt, ...(description === undefined ? {} : { description }) });
  }

  async setDescription(repository: string, description: string): Promise<void> {
    setCatalogField(this.table, repository, 'description', description);
  }

  async getRepository(repository: string): Promise<RepositoryInfo | undefined> {
    const item = this.table.get('CATALOG', repository);
    return item && toRepository(item);
  }

  async setVisibility(repository: string, visibility: Visibility): Promise<void> {
    setCatalogField(this.table, repository, 'visibility', visibility);
  }

  async listRepositories(limit: number, last?: string): Promise<Page<RepositoryInfo>> {
    const page = this.table.query('CATALOG', '', limit, last);
    return { items: page.items.map(toRepository), last: page.last };
  }

  async deleteRepository(repository: string, pushedAt?: number): Promise<boolean> {
    const item = this.table.get('CATALOG', repository);
    if (!item || (pushedAt !== undefined && item.pushedAt !== pushedAt)) return false;
    return this.table.delete('CATALOG', repository);
  }

  async claimBlob(digest: Digest, now: number): Promise<BlobRecord | undefined> {
    const item = claimItem(this.table, `BLOB#${digest}`, 'BLOB', 'linkedAt', now);
    return item && toBlob(digest, item);
  }

  async claimBlobLink(repository: string, digest: Digest, now: number): Promise<BlobRecord | undefined> {
    const item = claimItem(this.table, repoKey(repository), `BLOB#${digest}`, 'usedAt', now);
    return item && toBlob(digest, item);
  }

  async claimManifest(repository: string, digest: Digest, now: number): Promise<boolean> {
    return claimItem(this.table, repoKey(repository), `MANIFEST#${digest}`, 'usedAt', now) !== undefined;
  }

  async collect(item: Collectable): Promise<boolean> {
    if (item.kind === 'tag') {
      const tag = this.table.get(repoKey(item.repository), `TAG#${item.tag}`);
      return tag?.digest === item.digest && tag.updatedAt === item.updatedAt && this.table.delete(repoKey(item.repository), `TAG#${item.tag}`);
    }
    const [pk, sk] =
      item.kind === 'blob' ? [`BLOB#${item.digest}`, 'BLOB'] : [repoKey(item.repository), `${item.kind === 'link' ? 'BLOB' : 'MANIFEST'}#${item.digest}`];
    const stored = this.table.get(pk, sk);
    return stored !== undefined && stored.claim === item.claim && this.table.delete(pk, sk);
  }

  async readRepository(repository: string): Promise<RepositoryContents> {
    return toContents(repository, this.table.query(repoKey(repository)).items);
  }

  async putImmutableRule(rule: ImmutableRule): Promise<void> {
    this.table.put({ pk: 'POLICY', sk: `IMMUTABLE#${rule.pattern}`, except: rule.except });
  }

  async deleteImmutableRule(pattern: string): Promise<boolean> {
    return this.table.delete('POLICY', `IMMUTABLE#${pattern}`);
  }

  async listImmutableRules(): Promise<ImmutableRule[]> {
    return this.table.query('POLICY', 'IMMUTABLE#').items.map((item) => ({ pattern: (item.sk as string).slice('IMMUTABLE#'.length), except: (item.except as string[] | undefined) ?? [] }));
  }

  async putRetentionRule(rule: RetentionRule): Promise<void> {
    putPolicy(this.table, 'RETENTION', 'id', rule);
  }

  async deleteRetentionRule(id: string): Promise<boolean> {
    return this.table.delete('POLICY', `RETENTION#${id}`);
  }

  async listRetentionRules(): Promise<RetentionRule[]> {
    return listPolicies<RetentionRule>(this.table, 'RETENTION', 'id');
  }

  async putCacheRule(rule: CacheRule): Promise<void> {
    putPolicy(this.table, 'CACHE', 'prefix', rule);
  }

  async deleteCacheRule(prefix: string): Promise<boolean> {
    return this.table.delete('POLICY', `CACHE#${prefix}`);
  }

  async listCacheRules(): Promise<CacheRule[]> {
    return listPolicies<CacheRule>(this.table, 'CACHE', 'prefix');
  }

  async claimFetch(digest: Digest, owner: string, now: number, until: number): Promise<boolean> {
    const held = this.table.get(`FETCH#${digest}`, 'FETCH');
    if (held && !((held.heldUntil as number) < now || held.holder === owner)) return false;
    // expiresAt: the table's item (DynamoDB's TTL removes dead holders' claims; like the emulator, nothing does here: an expired claim is taken over).
    this.table.put({ pk: `FETCH#${digest}`, sk: 'FETCH', holder: owner, heldUntil: until, expiresAt: Math.ceil(until / 1000) + 3600 });
    return true;
  }

  async releaseFetch(digest: Digest, owner: string): Promise<void> {
    if (this.table.get(`FETCH#${digest}`, 'FETCH')?.holder === owner) this.table.delete(`FETCH#${digest}`, 'FETCH');
  }

  async scanBlobs(limit: number, last?: string): Promise<Page<StoredBlob>> {
    const page = this.table.scan('BLOB#', limit, last);
    return { items: page.items.map(toStoredBlob), last: page.last };
  }

  async scanUploads(limit: number, last?: string): Promise<Page<UploadSession>> {
    const page = this.table.scan('UPLOAD#', limit, last);
    return { items: page.items.map(toUpload), last: page.last };
  }

  async getAccount(name: string): Promise<Account | undefined> {
    const item = this.table.get('ACCOUNT', name);
    return item && toAccount(item);
  }

  async putAccount(account: Account): Promise<void> {
    this.table.put({ pk: 'ACCOUNT', sk: account.name, ...account });
  }

  async deleteAccount(name: string): Promise<boolean> {
    return this.table.delete('ACCOUNT', name);
  }

  async listAccounts(): Promise<Account[]> {
    return this.table.query('ACCOUNT').items.map(toAccount);
  }

  async claimLoginAttempt(name: string, source: string, now: number, windowMs: number, max: number): Promise<LoginAttempt> {
    const { pk, sk } = loginKey(name, source);
    const item = this.table.get(pk, sk);
    if (!item || (item.resetAt as number) <= now) {
      const resetAt = now + windowMs;
      this.table.put({ pk, sk, attempts: 1, failures: 0, resetAt, expiresAt: Math.ceil(resetAt / 1000) });
      return { claimed: true, resetAt };
    }
    if ((item.attempts as number) >= max) return { claimed: false, failures: item.failures as number, resetAt: item.resetAt as number };
    this.table.put({ ...item, attempts: (item.attempts as number) + 1 });
    return { claimed: true, resetAt: item.resetAt as number };
  }

  async releaseLoginAttempt(name: string, source: string, resetAt: number): Promise<void> {
    addToLoginWindow(this.table, name, source, resetAt, 'attempts', -1);
  }

  async recordLoginFailure(name: string, source: string, resetAt: number): Promise<void> {
    addToLoginWindow(this.table, name, source, resetAt, 'failures', 1);
  }

  async clearLoginFailures(name: string): Promise<number> {
    const { pk } = loginKey(name, '');
    const items = this.table.query(pk).items;
    for (const item of items) this.table.delete(pk, item.sk as string);
    return items.length;
  }
}

function uploadItem(table: Table, id: string): Item | undefined {
  const { pk, sk } = uploadKey(id);
  return table.get(pk, sk);
}

/** Sets one attribute of a repository's catalog item, creating the item if needed. */
function setCatalogField(table: Table, repository: string, field: 'description' | 'visibility', value: string): void {
  table.put({ ...(table.get('CATALOG', repository) ?? { pk: 'CATALOG', sk: repository }), [field]: value });
}

/** Stores a new claim and `field = now` on an existing item; undefined when there is none. */
function claimItem(table: Table, pk: string, sk: string, field: 'linkedAt' | 'usedAt', now: number): Item | undefined {
  const item = table.get(pk, sk);
  if (!item) return undefined;
  const claimed = { ...item, claim: randomUUID(), [field]: now };
  table.put(claimed);
  return claimed;
}

/** Adds `delta` to a counter of the attempt item, only while its window is the one of the claim. */
function addToLoginWindow(table: Table, name: string, source: string, resetAt: number, counter: 'attempts' | 'failures', delta: number): void {
  const { pk, sk } = loginKey(name, source);
  const item = table.get(pk, sk);
  // A new window (or an unlock) replaced the claim's: nothing of it is left to change.
  if (item?.resetAt !== resetAt) return;
  table.put({ ...item, [counter]: ((item[counter] as number | undefined) ?? 0) + delta });
}

/** Stores a rule as the item `POLICY` / `<kind>#<rule[field]>` holding the rule's other attributes. */
function putPolicy<T extends object>(table: Table, kind: string, field: keyof T & string, rule: T): void {
  const { [field]: id, ...rest } = rule as Record<string, unknown>;
  table.put({ pk: 'POLICY', sk: `${kind}#${id as string}`, ...rest });
}

/** The rules of `kind` stored by {@link putPolicy}, in order of their `field`. */
function listPolicies<T>(table: Table, kind: string, field: string): T[] {
  return table.query('POLICY', `${kind}#`).items.map(({ pk: _pk, sk, ...rest }) => ({ [field]: (sk as string).slice(kind.length + 1), ...rest }) as T);
}
