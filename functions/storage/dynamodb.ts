/**
 * DynamoDB adapter of the {@link MetadataStore} port: one table, string keys `pk`/`sk`.
 *
 * | item            | pk                  | sk                             |
 * |-----------------|---------------------|--------------------------------|
 * | blob            | `BLOB#<digest>`     | `BLOB`                         |
 * | blob link       | `REPO#<name>`       | `BLOB#<digest>`                |
 * | manifest        | `REPO#<name>`       | `MANIFEST#<digest>`            |
 * | tag             | `REPO#<name>`       | `TAG#<tag>`                    |
 * | referrer        | `REPO#<name>`       | `REFERRER#<subject>#<digest>`  |
 * | repository      | `CATALOG`           | `<name>`                       |
 * | upload session  | `UPLOAD#<id>`       | `UPLOAD`                       |
 * | account         | `ACCOUNT`           | `<name>`                       |
 * | login attempts  | `LOGIN#<name>`      | `<source address>`             |
 * | immutable tags  | `POLICY`            | `IMMUTABLE#<pattern>`          |
 * | retention rule  | `POLICY`            | `RETENTION#<id>`               |
 * | cache rule      | `POLICY`            | `CACHE#<prefix>`               |
 * | upstream fetch  | `FETCH#<digest>`    | `FETCH`                        |
 *
 * Sort keys order tags and repositories lexically, so listings are single ordered queries.
 * No transactions (the embedded emulator lacks them): every multi-item change is ordered so
 * that a crash between two writes leaves only unreferenced data.
 */
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { randomUUID } from 'node:crypto';
import type { Digest } from '../core/grammar.js';
import type { Account, Visibility } from '../auth/accounts.js';
import {
  UploadConflict,
  type AccountStore,
  type BlobRecord,
  type Collectable,
  type CacheRule,
  type ImmutableRule,
  type RetentionRule,
  type RepositoryContents,
  type StoredBlob,
  type StoredLink,
  type StoredManifest,
  type Descriptor,
  type LoginAttempt,
  type ManifestRecord,
  type MetadataStore,
  type Page,
  type RepositoryInfo,
  type TagRecord,
  type UploadSession,
} from './ports.js';

/** Where the table is: `endpoint` unset means AWS itself. */
export interface DynamoSettings {
  table: string;
  region: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Creates the document client Berth uses for `settings`. */
export function createDynamoClient(settings: DynamoSettings): DynamoDBDocumentClient {
  const client = new DynamoDBClient({ region: settings.region, endpoint: settings.endpoint, credentials: settings.credentials });
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/** An item of the table: its key attributes `pk`, `sk` and the rest. */
export type Item = Record<string, unknown>;

/** The partition key of a repository's items. */
export const repoKey = (repository: string) => `REPO#${repository}`;
/** The key of an upload session's item. */
export const uploadKey = (id: string) => ({ pk: `UPLOAD#${id}`, sk: 'UPLOAD' });
/** The key of the login attempts of `name` from `source`. */
export const loginKey = (name: string, source: string) => ({ pk: `LOGIN#${name}`, sk: source });

/** {@link MetadataStore} and {@link AccountStore} on one DynamoDB table. */
export class DynamoMetadataStore implements MetadataStore, AccountStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async getBlob(digest: Digest): Promise<BlobRecord | undefined> {
    const item = await this.get({ pk: `BLOB#${digest}`, sk: 'BLOB' });
    return item && toBlob(digest, item);
  }

  async putBlobIfAbsent(blob: BlobRecord): Promise<{ blob: BlobRecord; created: boolean }> {
    const item = { pk: `BLOB#${blob.digest}`, sk: 'BLOB', size: blob.size, key: blob.key, claim: randomUUID(), linkedAt: Date.now() };
    const created = await this.putIf(item, 'attribute_not_exists(pk)');
    if (created) return { blob, created };
    const existing = await this.getBlob(blob.digest);
    return { blob: existing!, created: false };
  }

  async getBlobLink(repository: string, digest: Digest): Promise<BlobRecord | undefined> {
    const item = await this.get({ pk: repoKey(repository), sk: `BLOB#${digest}` });
    return item && toBlob(digest, item);
  }

  async putBlobLink(repository: string, blob: BlobRecord): Promise<void> {
    // A new claim and no usedAt: the link of a push in flight until a manifest references it.
    await this.put({ pk: repoKey(repository), sk: `BLOB#${blob.digest}`, size: blob.size, key: blob.key, claim: randomUUID(), linkedAt: Date.now() });
  }

  deleteBlobLink(repository: string, digest: Digest): Promise<boolean> {
    return this.deleteExisting({ pk: repoKey(repository), sk: `BLOB#${digest}` });
  }

  async createUpload(session: UploadSession): Promise<void> {
    await this.put({ ...uploadKey(session.id), ...session });
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const item = await this.get(uploadKey(id));
    return item && toUpload(item);
  }

  async leaseUpload(id: string, owner: string, now: number, until: number): Promise<UploadSession> {
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: uploadKey(id),
          UpdateExpression: 'SET lockedBy = :owner, lockedUntil = :until',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(lockedUntil) OR lockedUntil < :now OR lockedBy = :owner)',
          ExpressionAttributeValues: { ':owner': owner, ':until': until, ':now': now },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toUpload(result.Attributes!);
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new UploadConflict(await this.getUpload(id));
      throw error;
    }
  }

  async commitUpload(session: UploadSession, owner: string): Promise<void> {
    const committed = await this.putIf(
      { ...uploadKey(session.id), ...session },
      'lockedBy = :owner AND version = :previous',
      { ':owner': owner, ':previous': session.version - 1 },
    );
    if (!committed) throw new UploadConflict(await this.getUpload(session.id));
  }

  async releaseUpload(id: string, owner: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: uploadKey(id),
          UpdateExpression: 'REMOVE lockedBy, lockedUntil',
          ConditionExpression: 'lockedBy = :owner',
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  async deleteUpload(id: string): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.table, Key: uploadKey(id) }));
  }

  async getManifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const item = await this.get({ pk: repoKey(repository), sk: `MANIFEST#${digest}` });
    if (!item) return undefined;
    const { claim: _claim, usedAt: _usedAt, ...record } = toManifest(repository, digest, item);
    return record;
  }

  async putManifest(manifest: ManifestRecord): Promise<void> {
    const { repository, digest, ...rest } = manifest;
    await this.put({ pk: repoKey(repository), sk: `MANIFEST#${digest}`, ...rest, claim: randomUUID() });
  }

  deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    return this.deleteExisting({ pk: repoKey(repository), sk: `MANIFEST#${digest}` });
  }

  async getTag(repository: string, tag: string): Promise<TagRecord | undefined> {
    const item = await this.get({ pk: repoKey(repository), sk: `TAG#${tag}` });
    return item && toTag(repository, tag, item);
  }

  async putTag(tag: TagRecord): Promise<void> {
    const { repository, tag: name, ...rest } = tag;
    await this.put({ pk: repoKey(repository), sk: `TAG#${name}`, ...rest });
  }

  async putTagIfUnmoved(tag: TagRecord): Promise<boolean> {
    const { repository, tag: name, ...rest } = tag;
    return this.putIf({ pk: repoKey(repository), sk: `TAG#${name}`, ...rest }, 'attribute_not_exists(pk) OR digest = :digest', { ':digest': tag.digest });
  }

  replaceTag(tag: TagRecord, expected: Pick<TagRecord, 'digest' | 'updatedAt'> | undefined): Promise<boolean> {
    const { repository, tag: name, ...rest } = tag;
    const item = { pk: repoKey(repository), sk: `TAG#${name}`, ...rest };
    if (!expected) return this.putIf(item, 'attribute_not_exists(pk)');
    return this.putIf(item, 'digest = :digest AND updatedAt = :at', { ':digest': expected.digest, ':at': expected.updatedAt });
  }

  async putImmutableRule(rule: ImmutableRule): Promise<void> {
    await this.put({ pk: 'POLICY', sk: `IMMUTABLE#${rule.pattern}`, except: rule.except });
  }

  deleteImmutableRule(pattern: string): Promise<boolean> {
    return this.deleteExisting({ pk: 'POLICY', sk: `IMMUTABLE#${pattern}` });
  }

  async listImmutableRules(): Promise<ImmutableRule[]> {
    const page = await this.queryPage('POLICY', 'IMMUTABLE#', 10_000);
    return page.items.map((item) => ({ pattern: (item.sk as string).slice('IMMUTABLE#'.length), except: (item.except as string[] | undefined) ?? [] }));
  }

  async putRetentionRule(rule: RetentionRule): Promise<void> {
    const { id, ...rest } = rule;
    await this.put({ pk: 'POLICY', sk: `RETENTION#${id}`, ...rest });
  }

  deleteRetentionRule(id: string): Promise<boolean> {
    return this.deleteExisting({ pk: 'POLICY', sk: `RETENTION#${id}` });
  }

  async listRetentionRules(): Promise<RetentionRule[]> {
    const page = await this.queryPage('POLICY', 'RETENTION#', 10_000);
    return page.items.map(({ pk: _pk, sk, ...rest }) => ({ id: (sk as string).slice('RETENTION#'.length), ...rest }) as RetentionRule);
  }

  async putCacheRule(rule: CacheRule): Promise<void> {
    const { prefix, ...rest } = rule;
    await this.put({ pk: 'POLICY', sk: `CACHE#${prefix}`, ...rest });
  }

  deleteCacheRule(prefix: string): Promise<boolean> {
    return this.deleteExisting({ pk: 'POLICY', sk: `CACHE#${prefix}` });
  }

  async listCacheRules(): Promise<CacheRule[]> {
    const page = await this.queryPage('POLICY', 'CACHE#', 10_000);
    return page.items.map(({ pk: _pk, sk, ...rest }) => ({ prefix: (sk as string).slice('CACHE#'.length), ...rest }) as CacheRule);
  }

  claimFetch(digest: Digest, owner: string, now: number, until: number): Promise<boolean> {
    // expiresAt: DynamoDB's TTL removes the claims of holders that died.
    const item = { pk: `FETCH#${digest}`, sk: 'FETCH', holder: owner, heldUntil: until, expiresAt: Math.ceil(until / 1000) + 3600 };
    return this.putIf(item, 'attribute_not_exists(pk) OR heldUntil < :now OR holder = :holder', { ':now': now, ':holder': owner });
  }

  async releaseFetch(digest: Digest, owner: string): Promise<void> {
    await this.deleteIf({ pk: `FETCH#${digest}`, sk: 'FETCH' }, { ConditionExpression: 'holder = :holder', ExpressionAttributeValues: { ':holder': owner } });
  }

  deleteTag(repository: string, tag: string): Promise<boolean> {
    return this.deleteExisting({ pk: repoKey(repository), sk: `TAG#${tag}` });
  }

  async listTags(repository: string, limit: number, last?: string): Promise<Page<TagRecord>> {
    const page = await this.queryPage(repoKey(repository), 'TAG#', limit, last);
    return {
      items: page.items.map((item) => toTag(repository, (item.sk as string).slice(4), item)),
      last: page.last,
    };
  }

  async putReferrer(repository: string, subject: Digest, descriptor: Descriptor): Promise<void> {
    await this.put({ pk: repoKey(repository), sk: `REFERRER#${subject}#${descriptor.digest}`, ...descriptor });
  }

  async deleteReferrer(repository: string, subject: Digest, digest: Digest): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.table, Key: { pk: repoKey(repository), sk: `REFERRER#${subject}#${digest}` } }));
  }

  async listReferrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': repoKey(repository), ':prefix': `REFERRER#${subject}#` },
    });
    return items.map(toDescriptor);
  }

  async touchRepository(repository: string, pushedAt: number, description?: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: 'CATALOG', sk: repository },
        UpdateExpression: `SET pushedAt = :at, createdAt = if_not_exists(createdAt, :at)${description === undefined ? '' : ', description = :description'}`,
        ExpressionAttributeValues: { ':at': pushedAt, ...(description === undefined ? {} : { ':description': description }) },
      }),
    );
  }

  setDescription(repository: string, description: string): Promise<void> {
    return this.setCatalogField(repository, 'description', description);
  }

  async getRepository(repository: string): Promise<RepositoryInfo | undefined> {
    const item = await this.get({ pk: 'CATALOG', sk: repository });
    return item && toRepository(item);
  }

  setVisibility(repository: string, visibility: Visibility): Promise<void> {
    return this.setCatalogField(repository, 'visibility', visibility);
  }

  /** Sets one attribute of a repository's catalog item, creating the item if needed. */
  private async setCatalogField(repository: string, field: 'description' | 'visibility', value: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: 'CATALOG', sk: repository },
        UpdateExpression: 'SET #field = :value',
        ExpressionAttributeNames: { '#field': field },
        ExpressionAttributeValues: { ':value': value },
      }),
    );
  }

  async listRepositories(limit: number, last?: string): Promise<Page<RepositoryInfo>> {
    const page = await this.queryPage('CATALOG', '', limit, last);
    return { items: page.items.map(toRepository), last: page.last };
  }

  async deleteRepository(repository: string, pushedAt?: number): Promise<boolean> {
    try {
      const result = await this.db.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: 'CATALOG', sk: repository },
          ...(pushedAt === undefined ? {} : { ConditionExpression: 'pushedAt = :at', ExpressionAttributeValues: { ':at': pushedAt } }),
          ReturnValues: 'ALL_OLD',
        }),
      );
      return result.Attributes !== undefined;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async claimBlob(digest: Digest, now: number): Promise<BlobRecord | undefined> {
    const item = await this.claimItem({ pk: `BLOB#${digest}`, sk: 'BLOB' }, 'linkedAt', now);
    return item && toBlob(digest, item);
  }

  async claimBlobLink(repository: string, digest: Digest, now: number): Promise<BlobRecord | undefined> {
    const item = await this.claimItem({ pk: repoKey(repository), sk: `BLOB#${digest}` }, 'usedAt', now);
    return item && toBlob(digest, item);
  }

  async claimManifest(repository: string, digest: Digest, now: number): Promise<boolean> {
    return (await this.claimItem({ pk: repoKey(repository), sk: `MANIFEST#${digest}` }, 'usedAt', now)) !== undefined;
  }

  /** Stores a new claim and `field = now` on an existing item; undefined when there is none. */
  private async claimItem(key: Item, field: 'linkedAt' | 'usedAt', now: number): Promise<Item | undefined> {
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET claim = :claim, #field = :now',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#field': field },
          ExpressionAttributeValues: { ':claim': randomUUID(), ':now': now },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return result.Attributes;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  async collect(item: Collectable): Promise<boolean> {
    if (item.kind === 'tag') {
      const condition = { ConditionExpression: 'digest = :digest AND updatedAt = :at', ExpressionAttributeValues: { ':digest': item.digest, ':at': item.updatedAt } };
      return this.deleteIf({ pk: repoKey(item.repository), sk: `TAG#${item.tag}` }, condition);
    }
    const key =
      item.kind === 'blob'
        ? { pk: `BLOB#${item.digest}`, sk: 'BLOB' }
        : { pk: repoKey(item.repository), sk: `${item.kind === 'link' ? 'BLOB' : 'MANIFEST'}#${item.digest}` };
    const condition = item.claim === undefined
      ? { ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(claim)' }
      : { ConditionExpression: 'claim = :claim', ExpressionAttributeValues: { ':claim': item.claim } };
    return this.deleteIf(key, condition);
  }

  /** Conditional delete; false when the condition failed. */
  private async deleteIf(key: Item, condition: { ConditionExpression: string; ExpressionAttributeValues?: Item }): Promise<boolean> {
    try {
      await this.db.send(new DeleteCommand({ TableName: this.table, Key: key, ...condition }));
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async readRepository(repository: string): Promise<RepositoryContents> {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': repoKey(repository) },
      ConsistentRead: true,
    });
    return toContents(repository, items);
  }

  async scanBlobs(limit: number, last?: string): Promise<Page<StoredBlob>> {
    const page = await this.scanPage('BLOB#', limit, last);
    return { items: page.items.map(toStoredBlob), last: page.last };
  }

  async scanUploads(limit: number, last?: string): Promise<Page<UploadSession>> {
    const page = await this.scanPage('UPLOAD#', limit, last);
    return { items: page.items.map(toUpload), last: page.last };
  }

  /**
   * Items whose partition key starts with `prefix`, from a table Scan; stops after the page where
   * at least `limit` matched (a page may hold a few more). The cursor is the Scan's position, base64url JSON.
   */
  private async scanPage(prefix: string, limit: number, last?: string): Promise<Page<Item>> {
    const items: Item[] = [];
    let start: Item | undefined = last === undefined ? undefined : JSON.parse(Buffer.from(last, 'base64url').toString('utf8'));
    do {
      const result = await this.db.send(
        new ScanCommand({
          TableName: this.table,
          FilterExpression: 'begins_with(pk, :prefix)',
          ExpressionAttributeValues: { ':prefix': prefix },
          ExclusiveStartKey: start,
          ConsistentRead: true,
          Limit: Math.max(limit, 100),
        }),
      );
      items.push(...(result.Items ?? []));
      start = result.LastEvaluatedKey;
    } while (start && items.length < limit);
    return { items, last: start && Buffer.from(JSON.stringify(start)).toString('base64url') };
  }

  async getAccount(name: string): Promise<Account | undefined> {
    const item = await this.get({ pk: 'ACCOUNT', sk: name });
    return item && toAccount(item);
  }

  async putAccount(account: Account): Promise<void> {
    await this.put({ pk: 'ACCOUNT', sk: account.name, ...account });
  }

  deleteAccount(name: string): Promise<boolean> {
    return this.deleteExisting({ pk: 'ACCOUNT', sk: name });
  }

  async listAccounts(): Promise<Account[]> {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': 'ACCOUNT' },
    });
    return items.map(toAccount);
  }

  async claimLoginAttempt(name: string, source: string, now: number, windowMs: number, max: number): Promise<LoginAttempt> {
    const key = loginKey(name, source);
    // Two tries: the window may end between the two conditional writes.
    for (let tries = 0; tries < 2; tries++) {
      const resetAt = now + windowMs;
      const fresh = { attempts: 1, failures: 0, resetAt, expiresAt: Math.ceil(resetAt / 1000) };
      if (await this.putIf({ ...key, ...fresh }, 'attribute_not_exists(pk) OR resetAt <= :now', { ':now': now })) return { claimed: true, resetAt };
      try {
        const result = await this.db.send(
          new UpdateCommand({
            TableName: this.table,
            Key: key,
            UpdateExpression: 'ADD #attempts :one',
            ConditionExpression: 'resetAt > :now AND #attempts < :max',
            ExpressionAttributeNames: { '#attempts': 'attempts' },
            ExpressionAttributeValues: { ':one': 1, ':now': now, ':max': max },
            ReturnValues: 'ALL_NEW',
          }),
        );
        return { claimed: true, resetAt: result.Attributes!.resetAt as number };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
      const item = await this.get(key);
      if (item && (item.resetAt as number) > now) return { claimed: false, failures: item.failures as number, resetAt: item.resetAt as number };
    }
    return { claimed: false, failures: 0, resetAt: now + 1000 };
  }

  releaseLoginAttempt(name: string, source: string, resetAt: number): Promise<void> {
    return this.addToLoginWindow(name, source, resetAt, 'attempts', -1);
  }

  recordLoginFailure(name: string, source: string, resetAt: number): Promise<void> {
    return this.addToLoginWindow(name, source, resetAt, 'failures', 1);
  }

  /** Adds `delta` to a counter of the attempt item, only while its window is the one of the claim. */
  private async addToLoginWindow(name: string, source: string, resetAt: number, counter: 'attempts' | 'failures', delta: number): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: loginKey(name, source),
          UpdateExpression: 'ADD #counter :delta',
          ConditionExpression: 'resetAt = :resetAt',
          ExpressionAttributeNames: { '#counter': counter },
          ExpressionAttributeValues: { ':delta': delta, ':resetAt': resetAt },
        }),
      );
    } catch (error) {
      // A new window (or an unlock) replaced the claim's: nothing of it is left to change.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  async clearLoginFailures(name: string): Promise<number> {
    const items = await this.queryAll({
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `LOGIN#${name}` },
    });
    for (const item of items) await this.db.send(new DeleteCommand({ TableName: this.table, Key: { pk: item.pk, sk: item.sk } }));
    return items.length;
  }

  /** One page of items whose sort key starts with `prefix`, after `prefix + last`. */
  private async queryPage(pk: string, prefix: string, limit: number, last?: string): Promise<Page<Item>> {
    const items: Item[] = [];
    let start: Item | undefined = last === undefined ? undefined : { pk, sk: prefix + last };
    // Ask for one more than wanted: DynamoDB cannot tell whether a page is the last one.
    while (items.length <= limit) {
      const result = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: prefix ? 'pk = :pk AND begins_with(sk, :prefix)' : 'pk = :pk',
          ExpressionAttributeValues: prefix ? { ':pk': pk, ':prefix': prefix } : { ':pk': pk },
          ExclusiveStartKey: start,
          Limit: limit + 1 - items.length,
        }),
      );
      items.push(...(result.Items ?? []));
      start = result.LastEvaluatedKey;
      if (!start) break;
    }
    const more = items.length > limit;
    const page = items.slice(0, limit);
    return { items: page, last: more && page.length > 0 ? (page.at(-1)!.sk as string).slice(prefix.length) : undefined };
  }

  private async queryAll(input: QueryCommandInput): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const result = await this.db.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      items.push(...(result.Items ?? []));
      start = result.LastEvaluatedKey;
    } while (start);
    return items;
  }

  private async get(key: Item): Promise<Item | undefined> {
    const result = await this.db.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }));
    return result.Item;
  }

  private async put(item: Item): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.table, Item: item }));
  }

  /** Conditional put; false when the condition failed. */
  private async putIf(item: Item, condition: string, values?: Item): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({ TableName: this.table, Item: item, ConditionExpression: condition, ExpressionAttributeValues: values }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** Deletes an item; false when it did not exist. */
  private async deleteExisting(key: Item): Promise<boolean> {
    const result = await this.db.send(new DeleteCommand({ TableName: this.table, Key: key, ReturnValues: 'ALL_OLD' }));
    return result.Attributes !== undefined;
  }
}

/** The item as the port's record. */
export function toManifest(repository: string, digest: Digest, item: Item): StoredManifest {
  return {
    repository,
    digest,
    mediaType: item.mediaType as string,
    size: item.size as number,
    bytes: item.bytes as Uint8Array | undefined,
    key: item.key as string | undefined,
    subject: item.subject as Digest | undefined,
    createdAt: item.createdAt as number,
    claim: item.claim as string | undefined,
    usedAt: item.usedAt as number | undefined,
  };
}

/** The item as the port's record. */
export function toRepository(item: Item): RepositoryInfo {
  return {
    name: item.sk as string,
    visibility: (item.visibility as Visibility | undefined) ?? 'private',
    pushedAt: item.pushedAt as number | undefined,
    description: item.description as string | undefined,
  };
}

/** The item as the port's record. */
export function toAccount(item: Item): Account {
  const { pk: _pk, sk: _sk, ...account } = item;
  return account as unknown as Account;
}

/** The item as the port's record. */
export function toBlob(digest: Digest, item: Item): BlobRecord {
  return { digest, size: item.size as number, key: item.key as string };
}

/** The item as the port's record. */
export function toTag(repository: string, tag: string, item: Item): TagRecord {
  return {
    repository,
    tag,
    digest: item.digest as Digest,
    mediaType: item.mediaType as string,
    size: item.size as number,
    bytes: item.bytes as Uint8Array | undefined,
    updatedAt: item.updatedAt as number,
  };
}

/** The item as the port's record. */
export function toUpload(item: Item): UploadSession {
  const { pk: _pk, sk: _sk, lockedBy: _owner, lockedUntil: _until, ...session } = item;
  return session as unknown as UploadSession;
}

/** A referrer item as the descriptor it records. */
export function toDescriptor({ mediaType, digest, size, artifactType, annotations }: Item): Descriptor {
  return { mediaType, digest, size, artifactType, annotations } as Descriptor;
}

/** A blob item (`pk` `BLOB#<digest>`) as the collector sees it. */
export function toStoredBlob(item: Item): StoredBlob {
  return {
    ...toBlob((item.pk as string).slice(5) as Digest, item),
    claim: item.claim as string | undefined,
    linkedAt: (item.linkedAt as number | undefined) ?? 0,
  };
}

/** The items of one repository's partition, sorted into links, manifests, tags and referrer entries. */
export function toContents(repository: string, items: readonly Item[]): RepositoryContents {
  const contents: RepositoryContents = { links: [], manifests: [], tags: [], referrers: [] };
  for (const item of items) {
    const sk = item.sk as string;
    const [kind, ...rest] = sk.split('#');
    if (kind === 'BLOB') {
      const link: StoredLink = { ...toBlob(rest.join('#') as Digest, item), claim: item.claim as string | undefined, linkedAt: (item.linkedAt as number | undefined) ?? 0 };
      if (item.usedAt !== undefined) link.usedAt = item.usedAt as number;
      contents.links.push(link);
    } else if (kind === 'MANIFEST') {
      contents.manifests.push(toManifest(repository, rest.join('#') as Digest, item));
    } else if (kind === 'TAG') {
      contents.tags.push(toTag(repository, sk.slice(4), item));
    } else if (kind === 'REFERRER') {
      contents.referrers.push({ subject: rest[0] as Digest, digest: rest[1] as Digest });
    }
  }
  return contents;
}
