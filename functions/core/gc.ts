/**
 * Online garbage collection: deletes what nothing reachable references any more while pushes and
 * pulls go on, and never what something still does.
 *
 * Retention rules (core/retention.ts) are applied first, per repository: the tags they expire go.
 * Kept: manifests a tag names, the manifests a kept image index names (recursively: platform
 * manifests are usually untagged), the referrers of kept manifests (signatures, SBOMs), and every
 * manifest younger than the grace period. Deleted, in this order (dependents before what they
 * depend on, so a crash never leaves a reference to something missing):
 * 1. manifests not kept (with their referrer entries);
 * 2. blob links no kept manifest of the repository references: used links (a manifest referenced
 *    them once) after the grace period, never-used links (a push in flight: layers uploaded, the
 *    manifest not yet `PUT`) only after the upload window (7 days, as long as an upload session lives);
 * 3. catalog entries of repositories left without tags, manifests and links;
 * 4. blob items no repository links any more, then their S3 objects;
 * 5. expired upload sessions with their S3 data (multipart uploads, tails, `incoming/` objects),
 *    and `incoming/` objects whose session is gone (a whole blob a session kept under `blobs/` is
 *    left to phase 6: a request may have published it and died before removing the session);
 * 6. S3 objects older than the grace period that nothing points at: under `blobs/` those of no blob
 *    item and no upload session (a crash between an upload's completion and its blob item, the
 *    losing copy of two uploads of one blob), under `manifests/` those of large manifests
 *    (> 256 KiB) that no manifest item names any more. Every write of a large manifest makes an
 *    object of its own, so a push during a run never writes to an object the run may delete.
 *
 * Race safety (see README, "Storage life cycle"): the collector reads an item's `claim` *before* it
 * looks for references to it, and deletes it only while the claim is unchanged (a conditional
 * delete). Writers that make something depend on an item claim it, write, and claim it again
 * (UploadSessions.link, Manifests.put): the second claim either makes a pending delete lose or finds
 * the item gone, in which case the writer undoes its write and fails. Nothing written after a run
 * started is ever older than the run's cutoff, so the grace period also covers the writes in flight.
 *
 * Resumable: the run's state (phase, cursor, blob candidates, counters) is saved in the blob store
 * under {@link STATE_KEY} at every change of phase and every 20 s, so a run cut short (Lambda timeout, kill -9) continues
 * where it stopped; a dry run saves nothing and runs to the end.
 */
import { randomUUID } from 'node:crypto';
import type { Digest } from './grammar.js';
import { ImmutableTags } from './immutable.js';
import { parseManifest } from './manifest.js';
import { Retention } from './retention.js';
import { DEFAULT_SESSION_SETTINGS, sessionOfKey, type UploadSessions } from './sessions.js';
import type { BlobStore, MetadataStore, RepositoryInfo, SpentUploads, StoredManifest, StoredObject } from '../storage/ports.js';

/** Where the state of an unfinished run is kept. */
export const STATE_KEY = 'gc/state.json';

/** Default grace period: 24 h. */
export const DEFAULT_GRACE_MS = 24 * 3600 * 1000;

/** Repositories and blob items read per page. */
const PAGE = 100;
/**
 * The state is saved at every change of phase and at most this often within one (ms): it holds the
 * blob candidates (~120 bytes each), so saving after every page would write O(n²) bytes. Every
 * step is idempotent, so a run killed before a save only repeats that much work.
 */
const SAVE_EVERY_MS = 20_000;
/** Objects listed, and blob items read, per page of phase 6 (S3's largest listing page). */
const OBJECTS_PAGE = 1000;
const BLOBS = 'blobs/';
const MANIFESTS = 'manifests/';
/** `incoming/` objects examined per run (they also expire by the bucket's lifecycle rule after 2 days). */
const INCOMING_PER_RUN = 1000;

/**
 * A duration such as `0s`, `90s`, `30m`, `24h`, `7d` in milliseconds.
 * @throws Error naming the accepted forms.
 */
export function parseDuration(text: string): number {
  const match = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new Error(`not a duration: ${JSON.stringify(text.slice(0, 40))} (use e.g. 0s, 30m, 24h, 7d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** What one run does. */
export interface GcOptions {
  /** Untagged manifests, used links and unlinked blobs younger than this (ms) are kept. */
  graceMs: number;
  /** Report what would go, delete nothing (and save no state). */
  dryRun?: boolean;
  /** Epoch ms after which the run saves its state and stops (unfinished); default: none. */
  deadline?: number;
  /** The clock (epoch ms): tests run "later" without waiting. */
  now?: () => number;
  /** Never-used links younger than this (ms) are a push in flight; default: the upload session lifetime. */
  inFlightMs?: number;
}

/** Counts of one kind of item. */
export interface GcCounts {
  repositories: number;
  manifests: number;
  tags: number;
  links: number;
  blobs: number;
  uploads: number;
  objects: number;
}

/** What a run did (a run resumed over several invocations reports the whole run). */
export interface GcReport {
  runId: string;
  /** Epoch ms the run started (its cutoffs are measured from here). */
  startedAt: number;
  graceMs: number;
  dryRun: boolean;
  /** False when the deadline came first: call again to continue. */
  finished: boolean;
  scanned: GcCounts;
  deleted: GcCounts;
  /** Bytes of blob objects deleted (bytes of abandoned upload data are not known without a read). */
  bytesReclaimed: number;
  /** Store requests of this invocation, when the wiring counts them. */
  requests?: { dynamodb: number; s3: number };
  /** Dry run: everything the run would delete, one line each (`manifest <repo>@<digest>`, …). */
  planned: string[];
}

type Phase = 'blobs' | 'repositories' | 'collect-blobs' | 'uploads' | 'objects' | 'done';

interface Candidate {
  key: string;
  size: number;
  claim?: string;
}

/** The saved state of a run (JSON under {@link STATE_KEY}). */
interface GcState {
  version: 1;
  phase: Phase;
  /** Position within the phase: a Scan cursor or the last repository name. */
  cursor?: string;
  /** Unlinked-so-far blob items older than the cutoff, with the claim read before any link was looked for. */
  candidates: Record<string, Candidate>;
  /** S3 keys of the large manifests that the repositories seen so far still hold. */
  manifestKeys?: Record<string, true>;
  report: GcReport;
}

const zero = (): GcCounts => ({ repositories: 0, manifests: 0, tags: 0, links: 0, blobs: 0, uploads: 0, objects: 0 });

/** The collector of one registry. */
export class GarbageCollector {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly sessions: UploadSessions,
    /** Requests sent so far by the stores (counted by the wiring), for the report. */
    private readonly requests?: () => { dynamodb: number; s3: number },
    /** The front door's marks of used upload URLs: a finished run drops those that expired. */
    private readonly spent?: SpentUploads,
  ) {}

  /**
   * Runs (or continues) a collection until it is done or `deadline` passes.
   * A saved unfinished run is continued with its own options (grace, start time); a dry run
   * always starts afresh and leaves a saved run alone.
   */
  async run(options: GcOptions): Promise<GcReport> {
    const now = options.now ?? Date.now;
    const before = this.requests?.();
    const state = (!options.dryRun && (await this.loadState())) || this.fresh(options, now());
    // Rules are read afresh by every run.
    const retention = new Retention(this.metadata, new ImmutableTags(this.metadata));
    const run = new Run(this.metadata, this.store, this.sessions, retention, state, options, now);
    await run.execute();
    if (!state.report.dryRun) {
      if (state.phase === 'done') {
        await this.store.delete(STATE_KEY);
        await this.spent?.prune(Math.floor(now() / 1000));
      } else await this.saveState(state);
    }
    const after = this.requests?.();
    if (before && after) state.report.requests = { dynamodb: after.dynamodb - before.dynamodb, s3: after.s3 - before.s3 };
    return state.report;
  }

  /** The unfinished run, if any. */
  async pending(): Promise<GcReport | undefined> {
    return (await this.loadState())?.report;
  }

  private fresh(options: GcOptions, startedAt: number): GcState {
    return {
      version: 1,
      phase: 'blobs',
      candidates: {},
      report: {
        runId: randomUUID(),
        startedAt,
        graceMs: options.graceMs,
        dryRun: options.dryRun ?? false,
        finished: false,
        scanned: zero(),
        deleted: zero(),
        bytesReclaimed: 0,
        planned: [],
      },
    };
  }

  private async loadState(): Promise<GcState | undefined> {
    if ((await this.store.size(STATE_KEY)) === undefined) return undefined;
    const state = JSON.parse((await this.store.read(STATE_KEY)).toString('utf8')) as GcState;
    return state.version === 1 && state.phase !== 'done' ? state : undefined;
  }

  private saveState(state: GcState): Promise<void> {
    return this.store.put(STATE_KEY, Buffer.from(JSON.stringify(state)));
  }
}

/** One invocation's share of a run. */
class Run {
  private readonly report: GcReport;
  /** Untagged manifests, used links and unlinked blobs last touched before this are collected. */
  private readonly cutoff: number;
  /** Never-used links (pushes in flight) written before this are collected. */
  private readonly inFlightCutoff: number;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly sessions: UploadSessions,
    private readonly retention: Retention,
    private readonly state: GcState,
    private readonly options: GcOptions,
    private readonly now: () => number,
  ) {
    this.report = state.report;
    this.cutoff = this.report.startedAt - this.report.graceMs;
    const inFlight = options.inFlightMs ?? DEFAULT_SESSION_SETTINGS.sessionTtlSeconds * 1000;
    this.inFlightCutoff = this.report.startedAt - Math.max(this.report.graceMs, inFlight);
  }

  private get dry(): boolean {
    return this.report.dryRun;
  }

  private outOfTime(): boolean {
    return !this.dry && this.options.deadline !== undefined && this.now() >= this.options.deadline;
  }

  /** Runs the phases from where the state stands; saves the state at every change of phase and every 20 s. */
  async execute(): Promise<void> {
    let savedAt = this.now();
    let savedPhase = this.state.phase;
    const save = async () => {
      if (this.dry || (this.state.phase === savedPhase && this.now() - savedAt < SAVE_EVERY_MS)) return;
      await this.store.put(STATE_KEY, Buffer.from(JSON.stringify(this.state)));
      savedAt = this.now();
      savedPhase = this.state.phase;
    };
    while (this.state.phase !== 'done') {
      if (this.outOfTime()) return;
      switch (this.state.phase) {
        case 'blobs':
          await this.snapshotBlobs();
          break;
        case 'repositories':
          await this.repositories();
          break;
        case 'collect-blobs':
          await this.collectBlobs();
          break;
        case 'uploads':
          await this.uploads();
          break;
        case 'objects':
          await this.objects();
          break;
      }
      await save();
    }
    this.report.finished = true;
  }

  /** Phase 1, one page: records each blob item old enough to go, with its claim, before any link is looked at. */
  private async snapshotBlobs(): Promise<void> {
    const page = await this.metadata.scanBlobs(PAGE, this.state.cursor);
    for (const blob of page.items) {
      this.report.scanned.blobs++;
      if (blob.linkedAt < this.cutoff) this.state.candidates[blob.digest] = { key: blob.key, size: blob.size, claim: blob.claim };
    }
    this.advance(page.last, 'repositories');
  }

  /** Phase 2, one page of the catalog: collects in each repository; its remaining links save their blobs. */
  private async repositories(): Promise<void> {
    const page = await this.metadata.listRepositories(PAGE, this.state.cursor);
    for (const repository of page.items) {
      this.report.scanned.repositories++;
      for (const digest of await this.repository(repository)) delete this.state.candidates[digest];
    }
    this.advance(page.last, 'collect-blobs');
  }

  /** Collects in one repository; returns the digests it still links. */
  private async repository(info: RepositoryInfo): Promise<Digest[]> {
    const name = info.name;
    // Claims first, references second: a reference written after the second read comes with a new claim.
    const claims = await this.metadata.readRepository(name);
    const contents = await this.metadata.readRepository(name);
    this.report.scanned.manifests += contents.manifests.length;
    this.report.scanned.tags += contents.tags.length;
    this.report.scanned.links += contents.links.length;

    // Retention rules first: the tags they expire keep nothing alive any more.
    const gone = new Set<string>();
    for (const { tag, reason } of await this.retention.expiredTags(name, contents.tags, this.report.startedAt)) {
      if (this.dry) this.report.planned.push(`tag ${name}:${tag.tag} (${reason})`);
      else if (await this.metadata.collect({ kind: 'tag', repository: name, tag: tag.tag, digest: tag.digest, updatedAt: tag.updatedAt })) this.report.deleted.tags++;
      else continue;
      gone.add(tag.tag);
    }
    contents.tags = contents.tags.filter((tag) => !gone.has(tag.tag));
    const untaggedAge = await this.retention.untaggedAgeMs(name);
    // A rule may keep untagged manifests longer than the grace period, never shorter.
    const cutoff = untaggedAge === undefined ? this.cutoff : Math.min(this.cutoff, this.report.startedAt - untaggedAge);

    const manifests = new Map(contents.manifests.map((m) => [m.digest, m]));
    const referrers = new Map<Digest, Digest[]>();
    for (const m of contents.manifests) if (m.subject) referrers.set(m.subject, [...(referrers.get(m.subject) ?? []), m.digest]);
    const roots = [
      ...contents.tags.map((t) => t.digest),
      ...contents.manifests.filter((m) => Math.max(m.createdAt ?? 0, m.usedAt ?? 0) >= cutoff).map((m) => m.digest),
    ];
    const kept = new Set<Digest>();
    const usedBlobs = new Set<Digest>();
    let unreadable = false;
    const queue = [...roots];
    while (queue.length > 0) {
      const digest = queue.pop()!;
      if (kept.has(digest)) continue;
      kept.add(digest);
      queue.push(...(referrers.get(digest) ?? []));
      const manifest = manifests.get(digest);
      if (!manifest) continue;
      const references = await this.references(manifest);
      if (!references) {
        unreadable = true;
        continue;
      }
      references.blobs.forEach((b) => usedBlobs.add(b));
      queue.push(...references.manifests);
    }

    // Indexes and referrers before what they name: a crash in between leaves no reference to a missing manifest.
    const doomed = claims.manifests
      .filter((m) => !kept.has(m.digest) && manifests.has(m.digest) && Math.max(m.createdAt ?? 0, m.usedAt ?? 0) < cutoff)
      .sort((a, b) => dependents(b) - dependents(a));
    const collected = new Set<Digest>();
    for (const manifest of doomed) {
      if (this.dry) {
        this.report.planned.push(`manifest ${name}@${manifest.digest}`);
        collected.add(manifest.digest);
        continue;
      }
      if (!(await this.metadata.collect({ kind: 'manifest', repository: name, digest: manifest.digest, claim: manifest.claim }))) continue;
      if (manifest.subject) await this.metadata.deleteReferrer(name, manifest.subject, manifest.digest);
      this.report.deleted.manifests++;
      collected.add(manifest.digest);
    }
    const manifestsLeft = contents.manifests.filter((m) => !collected.has(m.digest));
    for (const m of manifestsLeft) if (m.key) (this.state.manifestKeys ??= {})[m.key] = true;

    const linked: Digest[] = [];
    const current = new Map(contents.links.map((l) => [l.digest, l]));
    for (const link of claims.links) {
      const now = current.get(link.digest);
      if (!now) continue;
      const used = link.usedAt !== undefined;
      const old = used ? Math.max(link.linkedAt, link.usedAt!) < this.cutoff : link.linkedAt < this.inFlightCutoff;
      if (unreadable || usedBlobs.has(link.digest) || !old) continue;
      current.delete(link.digest);
      if (this.dry) {
        this.report.planned.push(`link ${name}@${link.digest}`);
        continue;
      }
      if (await this.metadata.collect({ kind: 'link', repository: name, digest: link.digest, claim: link.claim })) this.report.deleted.links++;
      else current.set(link.digest, now);
    }
    linked.push(...current.keys());

    if (contents.tags.length === 0 && manifestsLeft.length === 0 && current.size === 0 && info.pushedAt !== undefined) {
      if (this.dry) this.report.planned.push(`repository ${name}`);
      else if (await this.metadata.deleteRepository(name, info.pushedAt)) this.report.deleted.repositories++;
    }
    return linked;
  }

  /** The blobs and child manifests a stored manifest references; undefined when it cannot be read. */
  private async references(manifest: StoredManifest): Promise<{ blobs: Digest[]; manifests: Digest[] } | undefined> {
    try {
      const bytes = manifest.bytes ? Buffer.from(manifest.bytes) : await this.store.read(manifest.key!);
      const parsed = parseManifest(bytes, manifest.mediaType);
      return { blobs: parsed.blobs, manifests: parsed.manifests };
    } catch {
      // Keep everything of a repository whose manifest cannot be read: what it names is unknown.
      return undefined;
    }
  }

  /** Phase 3: deletes the blob items no repository links, each while its claim is unchanged, then their bytes. */
  private async collectBlobs(): Promise<void> {
    const batch = Object.entries(this.state.candidates).slice(0, PAGE);
    for (const [digest, candidate] of batch) {
      if (this.dry) {
        this.report.planned.push(`blob ${digest} (${candidate.size} bytes)`);
        this.report.bytesReclaimed += candidate.size;
      } else if (await this.metadata.collect({ kind: 'blob', digest: digest as Digest, claim: candidate.claim })) {
        this.report.deleted.blobs++;
        await this.deleteBytes(candidate);
      } else {
        // Lost against a new link, or deleted by an earlier invocation that stopped before the
        // bytes went: the bytes go when no blob item points at them any more.
        const blob = await this.metadata.getBlob(digest as Digest);
        if (!blob || blob.key !== candidate.key) await this.deleteBytes(candidate);
      }
      delete this.state.candidates[digest];
    }
    if (Object.keys(this.state.candidates).length === 0) this.advance(undefined, 'uploads');
  }

  private async deleteBytes(candidate: Candidate): Promise<void> {
    if ((await this.store.size(candidate.key)) === undefined) return;
    await this.store.delete(candidate.key);
    this.report.deleted.objects++;
    this.report.bytesReclaimed += candidate.size;
  }

  /** Phase 4, one page: expired sessions with their data; at the end, `incoming/` objects without a session. */
  private async uploads(): Promise<void> {
    const page = await this.metadata.scanUploads(PAGE, this.state.cursor);
    for (const session of page.items) {
      this.report.scanned.uploads++;
      if (session.expiresAt * 1000 >= this.report.startedAt) continue;
      if (this.dry) this.report.planned.push(`upload ${session.id} (${session.repository}, ${session.offset} bytes received)`);
      else {
        await this.sessions.discard(session);
        this.report.deleted.uploads++;
      }
    }
    if (page.last === undefined) await this.incoming();
    this.advance(page.last, 'objects');
  }

  /** Front-door uploads land at `incoming/sha256-<hex>/<session id>`: without their session nothing will ever verify them. */
  private async incoming(): Promise<void> {
    for (const object of await this.store.list('incoming/', INCOMING_PER_RUN)) {
      this.report.scanned.objects++;
      const id = object.key.split('/').pop()!;
      if (await this.metadata.getUpload(id)) continue;
      if (this.dry) this.report.planned.push(`object ${object.key} (${object.size} bytes)`);
      else {
        await this.store.delete(object.key);
        this.report.deleted.objects++;
        this.report.bytesReclaimed += object.size;
      }
    }
  }

  /** Phase 6, one page: old objects under `blobs/`, then `manifests/`, that nothing points at. */
  private async objects(): Promise<void> {
    const prefix = this.state.cursor?.startsWith(MANIFESTS) ? MANIFESTS : BLOBS;
    const page = await this.store.list(prefix, OBJECTS_PAGE, this.state.cursor);
    const unused: StoredObject[] = [];
    for (const object of page) {
      this.report.scanned.objects++;
      if (object.lastModified < this.cutoff && !(await this.pointedAt(prefix, object.key))) unused.push(object);
    }
    for (const object of prefix === BLOBS ? await this.unpublished(unused) : unused) {
      if (this.dry) this.report.planned.push(`object ${object.key} (${object.size} bytes)`);
      else {
        await this.store.delete(object.key);
        this.report.deleted.objects++;
      }
      this.report.bytesReclaimed += object.size;
    }
    if (page.length === OBJECTS_PAGE) this.state.cursor = page[page.length - 1].key;
    else if (prefix === BLOBS) this.state.cursor = MANIFESTS;
    else this.advance(undefined, 'done');
  }

  /**
   * Whether a blob item (as of the blob keys read last) or an upload session (`blobs/<id>`,
   * `blobs/<id>.<owner>`), or a kept manifest (`manifests/…`), uses the key. A key this misses
   * may have been published since the blob keys were read: see `unpublished`.
   */
  private async pointedAt(prefix: string, key: string): Promise<boolean> {
    if (prefix === MANIFESTS) return this.state.manifestKeys?.[key] === true;
    this.blobKeys ??= this.readBlobKeys();
    if ((await this.blobKeys).has(key)) return true;
    return (await this.metadata.getUpload(sessionOfKey(key))) !== undefined;
  }

  /**
   * Of `objects` under `blobs/` whose session was gone, those no blob item points at, by the blob
   * keys read again after those sessions were looked at: a closing PUT writes the blob item before
   * it deletes its session, so an object it published meanwhile (a whole blob written at PATCH
   * time, older than the grace) is seen. One more read of the blob keys per page with objects to delete.
   */
  private async unpublished(objects: StoredObject[]): Promise<StoredObject[]> {
    if (objects.length === 0) return objects;
    this.blobKeys = this.readBlobKeys();
    const keys = await this.blobKeys;
    return objects.filter((object) => !keys.has(object.key));
  }

  /** The key of every blob item: read once per invocation, and again before objects are deleted. */
  private async readBlobKeys(): Promise<Set<string>> {
    const keys = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await this.metadata.scanBlobs(OBJECTS_PAGE, cursor);
      for (const blob of page.items) keys.add(blob.key);
      cursor = page.last;
    } while (cursor !== undefined);
    return keys;
  }

  private blobKeys?: Promise<Set<string>>;

  private advance(last: string | undefined, next: Phase): void {
    if (last !== undefined) this.state.cursor = last;
    else {
      this.state.cursor = undefined;
      this.state.phase = next;
    }
  }
}

/** How many other stored manifests a manifest names (an index) or refers to (a referrer): those go first. */
function dependents(manifest: StoredManifest): number {
  const children = manifest.mediaType.includes('index') || manifest.mediaType.includes('list') ? 2 : 0;
  return children + (manifest.subject ? 1 : 0);
}
