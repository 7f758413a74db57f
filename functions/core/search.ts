/**
 * Repository search (`docker search <registry>/<term>`, served as the v1 search API). Matches the
 * term against repository names (whole name or path segment, prefix, substring) and descriptions,
 * ranked exact > prefix > substring > description, then most recently pushed.
 *
 * The catalog partition is the index: one small item per repository (name, visibility,
 * description, last push), read with 1 MB query pages. At 10,000 repositories of ~200 bytes
 * that is 2 queries, ≈ 250 read units (eventually consistent), whatever the term.
 */
import type { MetadataStore, RepositoryInfo } from '../storage/ports.js';

/** Rank classes, best first. */
const enum Rank {
  Exact,
  Prefix,
  Substring,
  Description,
}

/** One page of search results and the number of matches in all. */
export interface SearchPage {
  total: number;
  results: RepositoryInfo[];
}

/** Listing page size while reading the whole catalog. */
const SCAN_PAGE = 1000;

/** Repository search over the catalog (see the module comment for cost). */
export class Search {
  constructor(private readonly metadata: MetadataStore) {}

  /**
   * Repositories matching `term` that `visible` allows, page `page` (1-based) of `size`.
   * An empty term matches every visible repository.
   */
  async search(term: string, visible: (repository: RepositoryInfo) => Promise<boolean>, size: number, page: number): Promise<SearchPage> {
    const needle = term.trim().toLowerCase();
    const ranked: { repository: RepositoryInfo; rank: Rank }[] = [];
    let last: string | undefined;
    do {
      const batch = await this.metadata.listRepositories(SCAN_PAGE, last);
      for (const repository of batch.items) {
        const rank = rankOf(repository, needle);
        if (rank !== undefined && (await visible(repository))) ranked.push({ repository, rank });
      }
      last = batch.last;
    } while (last);
    ranked.sort((a, b) => a.rank - b.rank || (b.repository.pushedAt ?? 0) - (a.repository.pushedAt ?? 0) || a.repository.name.localeCompare(b.repository.name));
    return { total: ranked.length, results: ranked.slice((page - 1) * size, page * size).map((r) => r.repository) };
  }
}

function rankOf(repository: RepositoryInfo, needle: string): Rank | undefined {
  const name = repository.name;
  const segments = name.split('/');
  if (needle === '' || name === needle || segments.includes(needle)) return Rank.Exact;
  if (name.startsWith(needle) || segments.some((s) => s.startsWith(needle))) return Rank.Prefix;
  if (name.includes(needle)) return Rank.Substring;
  if (repository.description?.toLowerCase().includes(needle)) return Rank.Description;
  return undefined;
}
