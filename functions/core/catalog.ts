/** The repository catalog (`GET /v2/_catalog`, the reference registry's listing extension). */
import type { MetadataStore, Page, RepositoryInfo } from '../storage/ports.js';

export class Catalog {
  constructor(private readonly metadata: MetadataStore) {}

  /**
   * Repository names in lexical order after `last`: one page of at most `limit` entries, of which
   * only those `visible` to the caller are returned (so a page may hold fewer).
   */
  async list(limit: number, last: string | undefined, visible: (repository: RepositoryInfo) => Promise<boolean>): Promise<Page<string>> {
    if (limit === 0) return { items: [] };
    const page = await this.metadata.listRepositories(limit, last);
    const shown = await Promise.all(page.items.map(visible));
    return { items: page.items.filter((_, i) => shown[i]).map((repository) => repository.name), last: page.last };
  }
}
