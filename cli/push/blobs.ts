/**
 * Getting one blob into a repository: already there (`HEAD` → 200), mounted from another
 * repository of the same registry that an earlier push put it in (`POST ?mount=&from=` → 201),
 * or uploaded: blobs under {@link SMALL_BLOB_BYTES} in one monolithic `POST ?digest=` (it stays
 * under the Lambda payload limit of a deployed Berth), larger ones through Berth's
 * `_berth/uploads` extension (parts straight to presigned S3 URLs, then `complete`, then polls
 * until the registry has verified the digest). A registry without the extension gets the
 * standard `POST` + one `PATCH` + `PUT ?digest=`.
 */
import type { BlobCache } from './blob-cache.js';
import { repositoryScope } from './challenge.js';
import { header, type BodySource } from './http.js';
import { readRange, uploadParts, type LocalBytes, type PartUrl } from './parts.js';
import { RegistryClient, RegistryError } from './registry.js';

const MiB = 1024 * 1024;
/** Blobs below this go in one request: under the ~4.45 MiB a Lambda request can carry (base64 in a 6 MB event). */
export const SMALL_BLOB_BYTES = 4 * MiB;
/** Parts of one blob in flight at once. */
export const PART_CONCURRENCY = 4;

export interface Blob {
  digest: string;
  /** Bytes. */
  size: number;
}

/** How a blob got into the repository without an upload. */
export type Placement = { kind: 'exists' } | { kind: 'mounted'; from: string };

export interface UploadEvents {
  /** Bytes sent changed by `delta` (negative when a failed part is retried). */
  onBytes(delta: number): void;
  /** All bytes are with S3; the registry now verifies the digest. */
  onVerifying(): void;
}

interface DirectStart {
  id: string;
  location: string;
  partCount: number;
  parts: PartUrl[];
}

export class BlobPusher {
  constructor(
    private readonly client: RegistryClient,
    readonly registry: string,
    readonly repository: string,
    private readonly cache: BlobCache,
  ) {}

  private get scopes(): string[] {
    return [repositoryScope(this.repository, ['pull', 'push'])];
  }

  /** The size of `digest` in the repository, or undefined when it is not there (`HEAD`). */
  async size(digest: string): Promise<number | undefined> {
    const answer = RegistryClient.expect(await this.client.call('HEAD', `/v2/${this.repository}/blobs/${digest}`, { scopes: this.scopes }), `HEAD blob ${digest}`, 200, 404);
    return answer.status === 200 ? Number(header(answer.headers, 'content-length') ?? -1) : undefined;
  }

  /** Whether `blob` can be had without an upload: already there, or mounted from where the cache says it is. */
  async place(blob: Blob): Promise<Placement | undefined> {
    if ((await this.size(blob.digest)) !== undefined) return { kind: 'exists' };
    for (const from of this.cache.sources(blob.digest, this.registry, this.repository).slice(0, 3)) {
      const scopes = [...this.scopes, repositoryScope(from, ['pull'])];
      const answer = await this.client.call('POST', `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`, { scopes });
      if (answer.status === 201) return { kind: 'mounted', from };
      RegistryClient.expect(answer, `mount ${blob.digest} from ${from}`, 202);
      // 202: a fresh upload session instead of a mount; drop it.
      const location = header(answer.headers, 'location');
      if (location) await this.client.call('DELETE', location, { scopes: this.scopes }).catch(() => undefined);
    }
    return undefined;
  }

  /** Uploads `blob` from `source`. @throws RegistryError when the registry refuses it (DIGEST_INVALID, …). */
  async upload(blob: Blob, source: LocalBytes, events: UploadEvents): Promise<void> {
    if (blob.size < SMALL_BLOB_BYTES) return this.uploadWhole(blob, source, events);
    const answer = await this.client.call('POST', `/v2/${this.repository}/_berth/uploads/?digest=${encodeURIComponent(blob.digest)}&size=${blob.size}`, { scopes: this.scopes });
    if (answer.status === 404 || answer.status === 405) return this.uploadStandard(blob, source, events);
    RegistryClient.expect(answer, 'starting a direct upload', 202);
    const started = JSON.parse(answer.body.toString('utf8')) as DirectStart;
    const etags = await uploadParts(source, started.partCount, started.parts, {
      concurrency: PART_CONCURRENCY,
      onBytes: events.onBytes,
      moreUrls: async (first, count) => {
        const more = await this.client.call('GET', `${started.location}/parts?first=${first}&count=${count}`, { scopes: this.scopes });
        return (JSON.parse(RegistryClient.expect(more, 'part URLs', 200).body.toString('utf8')) as { parts: PartUrl[] }).parts;
      },
    });
    events.onVerifying();
    const body = Buffer.from(JSON.stringify({ parts: etags }));
    const completed = await this.client.call('POST', `${started.location}/complete`, { scopes: this.scopes, body, headers: { 'Content-Type': 'application/json' } });
    RegistryClient.expect(completed, `completing the upload of ${blob.digest}`, 200, 202);
    if (completed.status === 200) return;
    for (let wait = 250; ; wait = Math.min(wait * 2, 2000)) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      const status = await this.client.call('GET', started.location, { scopes: this.scopes });
      if (status.status === 200) return;
      RegistryClient.expect(status, `verification of ${blob.digest}`, 202);
    }
  }

  /** `POST ?digest=` with the whole blob; a registry that answers 202 (no monolithic POST) gets it by `PUT`. */
  private async uploadWhole(blob: Blob, source: LocalBytes, events: UploadEvents): Promise<void> {
    const headers = { 'Content-Type': 'application/octet-stream' };
    const answer = await this.client.call('POST', `/v2/${this.repository}/blobs/uploads/?digest=${encodeURIComponent(blob.digest)}`, { scopes: this.scopes, headers, body: bodyOf(source, blob, events) });
    if (answer.status === 201) return;
    RegistryClient.expect(answer, `uploading ${blob.digest}`, 202);
    events.onBytes(-blob.size);
    const location = withDigest(header(answer.headers, 'location'), blob.digest, this.client.base);
    RegistryClient.expect(await this.client.call('PUT', location, { scopes: this.scopes, headers, body: bodyOf(source, blob, events) }), `uploading ${blob.digest}`, 201);
  }

  /** The standard upload: `POST`, one `PATCH` with every byte, `PUT ?digest=`. */
  private async uploadStandard(blob: Blob, source: LocalBytes, events: UploadEvents): Promise<void> {
    const started = RegistryClient.expect(await this.client.call('POST', `/v2/${this.repository}/blobs/uploads/`, { scopes: this.scopes }), `starting an upload of ${blob.digest}`, 202);
    const headers = { 'Content-Type': 'application/octet-stream' };
    const patched = await this.client.call('PATCH', absolute(header(started.headers, 'location'), this.client.base), { scopes: this.scopes, headers, body: bodyOf(source, blob, events) });
    RegistryClient.expect(patched, `uploading ${blob.digest}`, 202);
    events.onVerifying();
    const done = await this.client.call('PUT', withDigest(header(patched.headers, 'location'), blob.digest, this.client.base), { scopes: this.scopes });
    RegistryClient.expect(done, `completing the upload of ${blob.digest}`, 201);
  }
}

function bodyOf(source: LocalBytes, blob: Blob, events: UploadEvents): BodySource {
  return { length: blob.size, open: () => readRange(source, 0, blob.size).on('data', (chunk: Buffer) => events.onBytes(chunk.length)) };
}

function absolute(location: string | undefined, base: string): string {
  if (!location) throw new RegistryError('the registry answered an upload without a Location', 0);
  return new URL(location, base).toString();
}

function withDigest(location: string | undefined, digest: string, base: string): string {
  const url = new URL(absolute(location, base));
  url.searchParams.set('digest', digest);
  return url.toString();
}

