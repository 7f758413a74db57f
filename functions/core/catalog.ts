/** The repository catalog (`GET /v2/_catalog`, the reference registry's listing extension). */
import type { MetadataStore, Page, RepositoryInfo } from '../storage/ports.js';

/** The catalog: repositories in lexical order, as far as the caller may see them. */
export class Catalog {
  constructor(private readonly metadata: MetadataStore) {}

  /**
   * Up to `limit` names of repositories `visible` to the caller, in lexical order after `last`.
   * Reads on until the page is full or the catalog ends, and `last` of the answer is always a
   * name the caller may see: a cursor must never reveal a repository the caller may not.
   */
  async list(limit: number, last: string | undefined, visible: (repository: RepositoryInfo) => Promise<boolean>): Promise<Page<string>> {
    const names: string[] = [];
    let cursor = last;
    while (names.length < limit) {
      const page = await this.metadata.listRepositories(limit, cursor);
      for (const repository of page.items) {
        if (names.length < limit && (await visible(repository))) names.push(repository.name);
      }
      cursor = page.last;
      if (cursor === undefined) return { items: names };
    }
    return { items: names, last: names.at(-1) };
  }
}
