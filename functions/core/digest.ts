/**
 * Digests of blobs and manifests. Two implementations behind one shape: node's crypto
 * (≈1.4 GB/s, any registered algorithm; its state cannot be saved, only kept in the process that
 * hashed) and hash-wasm SHA-256 (≈0.3 GB/s, state saves to ~116 bytes), which continues sessions
 * whose state was saved by earlier versions of Berth (uploads.ts says when each is used).
 */
import { createHash, type Hash } from 'node:crypto';
import type { IHasher } from 'hash-wasm';
import type { Digest } from './grammar.js';

/** An incremental hash over a blob's bytes. */
export interface BlobHasher {
  /** The digest algorithm, e.g. `sha256`. */
  readonly algorithm: string;
  update(chunk: Uint8Array): void;
  /** The digest of everything hashed so far; ends the hasher. */
  digest(): Digest;
  /** The state after everything hashed so far, base64; only for resumable hashers. */
  save(): string;
}

/** `sha256:<hex>` of a byte string held in memory. */
export function sha256Of(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A node crypto hasher: its state cannot be saved, but the process that hashed may keep it and go on. */
export interface NativeHasher extends BlobHasher {
  /** The digest of everything hashed so far; the hasher goes on. */
  peek(): Digest;
}

/** A node crypto hasher for a registered `algorithm` (`sha256`, `sha512`): fastest, but its state cannot be saved. */
export function nativeHasher(algorithm = 'sha256'): NativeHasher {
  const hash: Hash = createHash(algorithm);
  return {
    algorithm,
    update: (chunk) => hash.update(chunk),
    digest: () => `${algorithm}:${hash.digest('hex')}`,
    peek: () => `${algorithm}:${hash.copy().digest('hex')}`,
    save: () => {
      throw new Error('one-shot hasher state cannot be saved');
    },
  };
}

/** A resumable hasher, continuing from `state` (base64 of hash-wasm `save()`) when given. */
export async function resumableHasher(state?: string): Promise<BlobHasher> {
  // The SHA-256-only build (the package's main entry embeds every algorithm's WASM, ~200 KB more
  // per bundle), loaded by the first upload that spans requests: other cold starts never parse it.
  const { default: sha256Wasm } = await import('hash-wasm/dist/sha256.umd.min.js');
  const hasher: IHasher = await sha256Wasm.createSHA256();
  hasher.init();
  if (state) hasher.load(Buffer.from(state, 'base64'));
  return {
    algorithm: 'sha256',
    update: (chunk) => hasher.update(chunk),
    digest: () => `sha256:${hasher.digest('hex')}`,
    save: () => Buffer.from(hasher.save()).toString('base64'),
  };
}
