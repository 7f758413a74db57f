/**
 * Adapters of {@link SpentUploads}: the upload URLs already used, kept where the front door's edge
 * function can read them — the distribution's CloudFront KeyValueStore on AWS, the emulated
 * store's file locally. Entries are `spent-<session id>` → the epoch second after which the URL
 * could not be used anyway (and the entry may go).
 */
import { rename, readFile, writeFile } from 'node:fs/promises';
import {
  CloudFrontKeyValueStoreClient,
  ConflictException,
  DescribeKeyValueStoreCommand,
  ListKeysCommand,
  PutKeyCommand,
  UpdateKeysCommand,
} from '@aws-sdk/client-cloudfront-keyvaluestore';
// The KeyValueStore API accepts SigV4A signatures only; this registers the SDK's JavaScript signer.
import '@aws-sdk/signature-v4a';
import type { SpentUploads } from './ports.js';

/**
 * The adapter for `BERTH_KEY_VALUE_STORE` (a KeyValueStore ARN, or `file:<path>`); undefined when
 * unset. Only the functions that write marks (verify, gc) load it: the KeyValueStore client and its
 * SigV4A signer stay out of the `api` bundle.
 */
export function spentUploadsFor(store: string | undefined): SpentUploads | undefined {
  if (!store) return undefined;
  return store.startsWith('file:') ? new FileSpentUploads(store.slice('file:'.length)) : new KeyValueStoreSpentUploads(store);
}

const PREFIX = 'spent-';
const QUEUES = Symbol.for('berth.spent-uploads.queues');
/** Writes that lose against a concurrent one (409 ConflictException on a stale ETag) are retried this often. */
const ATTEMPTS = 5;
/** UpdateKeys takes at most 50 keys per call (KeyValueStore quotas). */
const DELETES_PER_CALL = 50;

/** A CloudFront KeyValueStore (ARN `arn:aws:cloudfront::<account>:key-value-store/<id>`). */
export class KeyValueStoreSpentUploads implements SpentUploads {
  private readonly client = new CloudFrontKeyValueStoreClient({});

  constructor(private readonly arn: string) {}

  async spend(id: string, until: number): Promise<void> {
    await this.withEtag((etag) => this.client.send(new PutKeyCommand({ KvsARN: this.arn, Key: `${PREFIX}${id}`, Value: String(until), IfMatch: etag })));
  }

  async prune(now: number): Promise<number> {
    const expired: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListKeysCommand({ KvsARN: this.arn, NextToken: token }));
      for (const item of page.Items ?? []) if (isExpired(item.Key, item.Value, now)) expired.push(item.Key!);
      token = page.NextToken;
    } while (token);
    for (let i = 0; i < expired.length; i += DELETES_PER_CALL) {
      const Deletes = expired.slice(i, i + DELETES_PER_CALL).map((Key) => ({ Key }));
      await this.withEtag((etag) => this.client.send(new UpdateKeysCommand({ KvsARN: this.arn, IfMatch: etag, Deletes })));
    }
    return expired.length;
  }

  /** The store's ETag after this container's last write: a warm container writes in one call. */
  private etag?: string;

  /**
   * Every write names the store's current ETag (the last one this container saw, else
   * DescribeKeyValueStore's); another writer in between makes it fetch the ETag and retry.
   */
  private async withEtag(write: (etag: string) => Promise<{ ETag?: string }>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const etag = this.etag ?? (await this.client.send(new DescribeKeyValueStoreCommand({ KvsARN: this.arn }))).ETag!;
      try {
        this.etag = (await write(etag)).ETag;
        return;
      } catch (error) {
        this.etag = undefined;
        if (!(error instanceof ConflictException) || attempt >= ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt + Math.random() * 100));
      }
    }
  }
}

/**
 * The emulated store's file (KeyValueStore import format, `{"data":[{"key","value"}]}`), which the
 * local CloudFront emulator reads again when it changes. One process writes it (npm start), from
 * concurrent verifications (and each loaded copy of the bundle has its own copy of this module):
 * the writes queue on one process-wide chain per file, so that none loses another's entry.
 */
export class FileSpentUploads implements SpentUploads {
  constructor(private readonly file: string) {}

  /** Also drops the marks that expired: locally nothing else would. */
  spend(id: string, until: number): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    return this.update((data) => {
      for (const [key, value] of data) if (isExpired(key, value, now)) data.delete(key);
      data.set(`${PREFIX}${id}`, String(until));
    });
  }

  async prune(now: number): Promise<number> {
    let removed = 0;
    await this.update((data) => {
      for (const [key, value] of data) if (isExpired(key, value, now) && data.delete(key)) removed++;
    });
    return removed;
  }

  /** Read, change, write to a temporary file and rename (the emulator never reads half a file); one at a time. */
  private update(change: (data: Map<string, string>) => void): Promise<void> {
    const queues = ((globalThis as Record<symbol, Map<string, Promise<unknown>>>)[QUEUES] ??= new Map());
    const next = (queues.get(this.file) ?? Promise.resolve()).then(async () => {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as { data: { key: string; value: string }[] };
      const data = new Map(parsed.data.map((item) => [item.key, item.value]));
      change(data);
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify({ data: [...data].map(([key, value]) => ({ key, value })) }), { mode: 0o600 });
      await rename(temporary, this.file);
    });
    queues.set(this.file, next.catch(() => undefined));
    return next;
  }
}

function isExpired(key: string | undefined, value: string | undefined, now: number): boolean {
  return key !== undefined && key.startsWith(PREFIX) && Number(value) < now;
}
