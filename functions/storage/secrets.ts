/**
 * Where the credentials of upstream registries are kept (README, "Pull-through cache"): a cache
 * rule holds only the reference that {@link SecretStore.write} returns, never the password.
 * - On AWS, in Secrets Manager: one secret per rule, `berth-<stage>/cache/<prefix>`, which only the
 *   stage's functions may read (serverless.yml); the reference is the secret's ARN.
 * - Locally, sealed with AES-256-GCM under the key the local server keeps in its data folder
 *   (`cache-key`, mode 0600); the reference is `sealed:` and the base64 of nonce, tag and ciphertext.
 */
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** A place for secrets. */
export interface SecretStore {
  /** Stores `value` under `name` (replacing it); returns the reference to keep. */
  write(name: string, value: string): Promise<string>;
  /** The value behind a reference `write` returned. @throws Error when it is gone or unreadable. */
  read(reference: string): Promise<string>;
  /** Forgets the value (a missing one is not an error). */
  delete(reference: string): Promise<void>;
}

const SEALED = 'sealed:';

/** Secrets sealed with AES-256-GCM (NIST SP 800-38D: 96-bit nonce, 128-bit tag) under a local key. */
export class SealedSecrets implements SecretStore {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the cache key must be 32 bytes');
  }

  async write(_name: string, value: string): Promise<string> {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    const sealed = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return SEALED + Buffer.concat([nonce, cipher.getAuthTag(), sealed]).toString('base64');
  }

  async read(reference: string): Promise<string> {
    if (!reference.startsWith(SEALED)) throw new Error('the credentials of this rule are kept in Secrets Manager, not locally');
    const bytes = Buffer.from(reference.slice(SEALED.length), 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, 12));
    decipher.setAuthTag(bytes.subarray(12, 28));
    return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
  }

  async delete(): Promise<void> {
    // Nothing to forget: the sealed value lives in the rule itself.
  }
}

/** Secrets in AWS Secrets Manager, named `<namePrefix><name>`. */
export class SecretsManagerSecrets implements SecretStore {
  constructor(
    private readonly client: SecretsManagerClient,
    private readonly namePrefix: string,
  ) {}

  async write(name: string, value: string): Promise<string> {
    const id = `${this.namePrefix}${name}`;
    try {
      return (await this.client.send(new CreateSecretCommand({ Name: id, SecretString: value, Description: 'Berth pull-through cache: upstream credentials' }))).ARN!;
    } catch (error) {
      if (!(error instanceof ResourceExistsException)) throw error;
      return (await this.client.send(new PutSecretValueCommand({ SecretId: id, SecretString: value }))).ARN!;
    }
  }

  async read(reference: string): Promise<string> {
    return (await this.client.send(new GetSecretValueCommand({ SecretId: reference }))).SecretString!;
  }

  async delete(reference: string): Promise<void> {
    try {
      // Without recovery: a rule added again under the same prefix creates the same name at once.
      await this.client.send(new DeleteSecretCommand({ SecretId: reference, ForceDeleteWithoutRecovery: true }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
  }
}
