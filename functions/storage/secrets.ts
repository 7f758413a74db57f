/**
 * Where the credentials of upstream registries are kept (README, "Pull-through cache"): a cache
 * rule holds only the reference that {@link SecretStore.write} returns, never the password.
 * - On AWS, in Secrets Manager: one secret per rule, `berth-<stage>/cache/<prefix>`, which only the
 *   stage's functions may read (serverless.yml); the reference is the secret's ARN. The CLI writes
 *   them (cli/secrets-manager.ts, with the operator's credentials); the functions only read.
 * - Locally, sealed with AES-256-GCM under the key the local server keeps in its data folder
 *   (`cache-key`, mode 0600); the reference is `sealed:` and the base64 of nonce, tag and ciphertext.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { type AwsCaller, getSecretString, isTransient } from './aws-calls.js';

/** What the registry needs of a secret store: reading. */
export interface SecretReader {
  /**
   * The value behind a reference `write` returned.
   * @throws SecretUnreadable when it is gone, sealed under another key, or altered.
   * @throws SecretUnavailable when the store did not answer in time or at all (worth a retry).
   */
  read(reference: string): Promise<string>;
}

/** A secret that cannot be read back; the message says why in one line, never the value. */
export class SecretUnreadable extends Error {}

/** A secret that could not be read just now (throttling, a 5xx, no answer) but may be on a retry; the message says why. */
export class SecretUnavailable extends Error {}

/** A place for secrets, as `npx berth cache` manages them. */
export interface SecretStore extends SecretReader {
  /** Stores `value` under `name` (replacing it); returns the reference to keep. */
  write(name: string, value: string): Promise<string>;
  /** Forgets the value (a missing one is not an error). */
  delete(reference: string): Promise<void>;
}

const SEALED = 'sealed:';

/** Secrets sealed with AES-256-GCM (NIST SP 800-38D: 96-bit nonce, 128-bit tag) under a local key. */
export class SealedSecrets implements SecretStore {
  /** @throws SecretUnreadable when `key` is not 32 bytes (AES-256). */
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new SecretUnreadable(`the cache key must be 32 bytes (base64), not ${key.length}`);
  }

  async write(_name: string, value: string): Promise<string> {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    const sealed = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return SEALED + Buffer.concat([nonce, cipher.getAuthTag(), sealed]).toString('base64');
  }

  async read(reference: string): Promise<string> {
    if (!reference.startsWith(SEALED)) throw new SecretUnreadable('the credentials are kept in Secrets Manager, not sealed locally');
    const bytes = Buffer.from(reference.slice(SEALED.length), 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, 12));
      decipher.setAuthTag(bytes.subarray(12, 28));
      return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      // GCM's tag check failed (or the nonce or tag is cut short): another key, or altered bytes.
      throw new SecretUnreadable('the sealed credentials do not open with this server\'s cache key (sealed under another key, or altered)');
    }
  }

  async delete(): Promise<void> {
    // Nothing to forget: the sealed value lives in the rule itself.
  }
}

/** Reads secrets of AWS Secrets Manager by ARN (the registry only reads; `npx berth cache` writes them). */
export class SecretsManagerReader implements SecretReader {
  constructor(private readonly caller: AwsCaller) {}

  async read(reference: string): Promise<string> {
    try {
      return await getSecretString(this.caller, reference);
    } catch (error) {
      // Throttled, 5xx or unreachable after the SDK-style retries: the rule itself is fine.
      if (isTransient(error)) throw new SecretUnavailable(`Secrets Manager is not answering (${(error as Error).name}); retry in a few seconds`);
      // ResourceNotFound, AccessDenied, DecryptionFailure… (Secrets Manager API reference, GetSecretValue errors).
      throw new SecretUnreadable(`Secrets Manager did not give the secret: ${(error as Error).name}`);
    }
  }
}
