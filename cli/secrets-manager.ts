/**
 * The upstream credentials of a deployed stage's cache rules in AWS Secrets Manager, written with
 * the operator's credentials (`npx berth cache add|rm --stage`); the stage's functions only read
 * them (functions/storage/secrets.ts).
 */
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { SecretsManagerReader, type SecretStore } from '../functions/storage/secrets.js';

/** Secrets named `<namePrefix><name>` (`berth-<stage>/cache/<prefix>`) in `region`. */
export class SecretsManagerSecrets extends SecretsManagerReader implements SecretStore {
  constructor(
    private readonly secrets: SecretsManagerClient,
    private readonly namePrefix: string,
    region: string,
  ) {
    // Reads go through the signed call the functions use (functions/storage/aws-calls.ts), as this client's identity.
    super({ region, credentials: secrets.config.credentials });
  }

  async write(name: string, value: string): Promise<string> {
    const id = `${this.namePrefix}${name}`;
    try {
      return (await this.secrets.send(new CreateSecretCommand({ Name: id, SecretString: value, Description: 'Berth pull-through cache: upstream credentials' }))).ARN!;
    } catch (error) {
      if (!(error instanceof ResourceExistsException)) throw error;
      return (await this.secrets.send(new PutSecretValueCommand({ SecretId: id, SecretString: value }))).ARN!;
    }
  }

  async delete(reference: string): Promise<void> {
    try {
      // Without recovery: a rule added again under the same prefix creates the same name at once.
      await this.secrets.send(new DeleteSecretCommand({ SecretId: reference, ForceDeleteWithoutRecovery: true }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
  }
}
