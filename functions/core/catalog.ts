/** The repository catalog (`GET /v2/_catalog`, the reference registry's listing extension). */
import { fail } from './errors.js';
import type { MetadataStore, Page, RepositoryInfo } from '../storage/ports.js';

/**
 * Most catalog entries one request examines, whatever `n`: a caller who may see few of many
 * repositories (anonymous, with hundreds of private ones) must not make one request read them all.
 */
export const MAX_EXAMINED = 1000;

/** Marks a sealed position in `last`: no repository name can contain `~`. */
const SEALED = '~';

/** Whether `value` has the form of a sealed position (whether it opens is for {@link Catalog.list} to find out). */
export function isSealedPosition(value: string): boolean {
  return value.startsWith(SEALED) && value.length <= 1024 && /^[A-Za-z0-9_-]+$/.test(value.slice(SEALED.length));
}

/** Encrypts positions for this deployment alone (the token service: functions/auth/tokens.ts). */
export interface Sealer {
  seal(value: string): Promise<string>;
  /** The sealed value, or undefined for anything {@link seal} did not make. */
  open(sealed: string): Promise<string | undefined>;
}

/** The catalog: repositories in lexical order, as far as the caller may see them. */
export class Catalog {
  /** @param maxExamined entries one request examines at most (tests lower it). */
  constructor(
    private readonly metadata: MetadataStore,
    private readonly sealer: Sealer,
    private readonly maxExamined = MAX_EXAMINED,
  ) {}

  /**
   * Up to `limit` names of repositories `visible` to the caller, in lexical order after `last`.
   * Reads in batches of `limit` entries, doubling, and at most `maxExamined` entries: a page that
   * is still not full then is answered as it is, with `last` where to continue. `last` never
   * reveals a repository the caller may not see: where the answer stops at one, `last` is that
   * position sealed (`~…`), which only this registry can read back.
   * @throws RegistryError NAME_INVALID (400) for a sealed `last` this registry did not make.
   */
  async list(limit: number, last: string | undefined, visible: (repository: RepositoryInfo) => Promise<boolean>): Promise<Page<string>> {
    if (limit === 0) return { items: [] };
    const names: string[] = [];
    // The last entry examined, and whether the caller may see it.
    let position = last?.startsWith(SEALED) ? await this.open(last) : last;
    let hidden = false;
    let examined = 0;
    for (let batch = limit; names.length < limit; batch *= 2) {
      if (examined >= this.maxExamined) return { items: names, last: hidden ? SEALED + (await this.sealer.seal(position!)) : position };
      const page = await this.metadata.listRepositories(Math.min(batch, this.maxExamined - examined), position);
      let used = 0;
      for (const repository of page.items) {
        if (names.length === limit) break;
        used++;
        position = repository.name;
        hidden = !(await visible(repository));
        if (!hidden) names.push(repository.name);
      }
      examined += used;
      if (used === page.items.length && page.last === undefined) return { items: names };
    }
    return { items: names, last: position };
  }

  private async open(sealed: string): Promise<string> {
    const position = await this.sealer.open(sealed.slice(SEALED.length));
    if (position === undefined) throw fail('NAME_INVALID', 'invalid last: not a position this registry gave out', null, { status: 400 });
    return position;
  }
}
