/** The repository catalog (`GET /v2/_catalog`, the reference registry's listing extension). */
import type { MetadataStore, Page } from '../storage/ports.js';

export class Catalog {
  constructor(private readonly metadata: MetadataStore) {}

  /** Repository names in lexical order after `last`, at most `limit`. */
  async list(limit: number, last?: string): Promise<Page<string>> {
    if (limit === 0) return { items: [] };
    return this.metadata.listRepositories(limit, last);
  }
}
