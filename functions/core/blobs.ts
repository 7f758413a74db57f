/**
 * Blob reads and deletes (distribution-spec end-2 GET/HEAD blob, end-10 DELETE blob). A
 * repository serves a blob only through its link, so a digest known elsewhere stays unknown
 * here. HEAD is answered from the link alone; GET either redirects to a presigned URL (a
 * back end that verifies signatures) or streams the bytes (the embedded emulator, which
 * checks none and so must never be exposed).
 */
import type { Readable } from 'node:stream';
import { fail } from './errors.js';
import type { Digest } from './grammar.js';
import { parseReadRange } from './range.js';
import type { BlobRecord, BlobStore, ByteRange, MetadataStore } from '../storage/ports.js';

/**
 * How blob bytes reach clients: `redirect` (307 to a presigned S3 URL), `stream` (through the
 * registry) or `frontdoor` (307 to a signed path on the registry's own host that CloudFront serves
 * from S3 and caches at the edge; presigned S3 where a blob has no such path).
 */
export type BlobDelivery = 'redirect' | 'stream' | 'frontdoor';

/**
 * Blob links as requests need them: a blob that reached S3 through the front door but is not
 * verified yet is verified, or waited for, until the request's deadline (see frontdoor.ts).
 */
export interface BlobLinks {
  /** The epoch ms until which a request that starts now may wait for blobs being verified. */
  deadline(): number;
  /**
   * The blob `digest` as linked to `repository`, or undefined.
   * @throws RegistryError TOOMANYREQUESTS (429, `Retry-After`) when it is still being verified at `deadline`.
   */
  find(repository: string, digest: Digest, deadline: number): Promise<BlobRecord | undefined>;
}

/** The front-door path of a blob's bytes, when it has one. */
export type SignedBlobPath = (blob: BlobRecord) => Promise<string | undefined>;

/** The answer to a blob GET: where to send the client, or the bytes (of `range`, when asked). */
export type BlobContent =
  | { kind: 'redirect'; blob: BlobRecord; url: string }
  | { kind: 'stream'; blob: BlobRecord; stream: Readable; range?: ByteRange };

/** Blob reads (stat, redirect or stream, with Range) and per-repository deletes. */
export class Blobs {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly delivery: BlobDelivery,
    private readonly links: BlobLinks,
    private readonly signedPath: SignedBlobPath,
    /** Lifetime of presigned GET URLs, seconds. */
    private readonly presignSeconds = 300,
  ) {}

  /** @throws RegistryError BLOB_UNKNOWN when `repository` has no link to `digest`, TOOMANYREQUESTS while it is being verified. */
  async stat(repository: string, digest: Digest): Promise<BlobRecord> {
    const blob = await this.links.find(repository, digest, this.links.deadline());
    if (!blob) throw fail('BLOB_UNKNOWN', `blob unknown to repository: ${digest}`, { digest });
    return blob;
  }

  /**
   * @param rangeHeader the request's `Range`, honoured in stream mode (S3 honours it after a redirect).
   * @throws RegistryError BLOB_UNKNOWN, SIZE_INVALID (416).
   */
  async open(repository: string, digest: Digest, rangeHeader?: string): Promise<BlobContent> {
    const blob = await this.stat(repository, digest);
    if (this.delivery !== 'stream') {
      const path = this.delivery === 'frontdoor' ? await this.signedPath(blob) : undefined;
      return { kind: 'redirect', blob, url: path ?? (await this.store.presignGet(blob.key, this.presignSeconds)) };
    }
    const range = parseReadRange(rangeHeader, blob.size);
    return { kind: 'stream', blob, range, stream: await this.store.open(blob.key, range) };
  }

  /** Unlinks a blob from one repository; its bytes stay while other repositories link them. */
  async delete(repository: string, digest: Digest): Promise<void> {
    if (!(await this.metadata.deleteBlobLink(repository, digest))) {
      throw fail('BLOB_UNKNOWN', `blob unknown to repository: ${digest}`, { digest });
    }
  }
}
