/**
 * The pull-through cache (README, "Pull-through cache"). A repository under a cache rule's prefix
 * (`hub/library/alpine` under `hub`) mirrors a repository of the rule's upstream registry
 * (`library/alpine`): what it does not hold yet is fetched from there, verified, and stored as
 * ordinary manifests, tags, blobs and links, so visibility, search, retention and garbage
 * collection treat it like any repository. Cached repositories are read-only.
 *
 * Freshness: content by digest never changes, so it is fetched once. A tag is trusted for the
 * rule's TTL after it was last resolved, then resolved again with a HEAD; while the upstream is
 * unreachable or refuses, the cached tag is served.
 *
 * Blobs: one fetch per blob across every process, by a conditional claim in the metadata store.
 * Streamed delivery (the local server) streams the upstream's bytes through to the client while
 * they are written to the blob store; the last chunk is held back until the digest is checked, so
 * a client never receives a whole blob Berth did not verify. Redirect delivery (Lambda, whose
 * answers cannot carry a layer) hands the client the upstream's own redirect to its storage and
 * copies the blob in the background (`dispatch`); an upstream that serves the bytes itself gets
 * the client a 429 with Retry-After until the copy is done.
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { readLimited } from './body.js';
import { fail, type RegistryError } from './errors.js';
import { digestAlgorithm, type Digest, type Reference } from './grammar.js';
import { MAX_MANIFEST_BYTES, MediaTypes } from './manifest.js';
import type { ManifestContent, Manifests } from './manifests.js';
import type { UploadSessions } from './sessions.js';
import type { Uploads } from './uploads.js';
import { UpstreamError, type UpstreamClient, type UpstreamCredentials, type UpstreamTarget } from './upstream.js';
import type { CacheRule, MetadataStore, TagRecord } from '../storage/ports.js';
import { SecretUnavailable, SecretUnreadable, type SecretReader } from '../storage/secrets.js';

/** Tags are re-resolved upstream after this long unless the rule says otherwise (seconds). */
export const DEFAULT_TAG_TTL_SECONDS = 300;
/** Rules are read again after this long (ms): a rule added or removed takes effect within it. */
const RULES_TTL_MS = 5_000;
/** How long one fetch of a blob may hold its claim (ms): a Lambda invocation's maximum, 15 minutes. */
const CLAIM_MS = 15 * 60_000;
/** How often a request waiting for another one's fetch looks again (ms). */
const POLL_MS = 200;
/** Seconds a client is told to wait while a blob is copied in the background. */
const RETRY_AFTER_SECONDS = 5;

/** Every manifest media type Berth stores, as the `Accept` of upstream manifest requests. */
const ACCEPT = [MediaTypes.ociIndex, MediaTypes.ociManifest, MediaTypes.dockerManifestList, MediaTypes.dockerManifest].join(', ');

/** Upstream hosts that are Docker Hub, where one-part names live under `library/` (as `docker pull alpine` does). */
const DOCKER_HUB = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io']);

/** The prefix of the rule that also serves as Docker Hub mirror (Docker's `registry-mirrors`). */
export const DOCKER_HUB_MIRROR = 'docker.io';

/** A background copy of one blob (the `verify` function runs it on AWS). */
export interface CopyJob {
  repository: string;
  digest: Digest;
  /** The claim the request took for it (core/cache.ts `claimFetch`), handed over to the copy. */
  owner: string;
}

/** Runs a copy elsewhere (another Lambda invocation) or later (in this process). */
export type CopyDispatch = (job: CopyJob) => Promise<void>;

/** A blob of a cached repository that Berth does not hold yet, as a GET gets it. */
export type FetchedBlob =
  /** To the upstream's own storage (a short-lived URL the upstream handed out). */
  | { kind: 'redirect'; digest: Digest; url: string }
  /** The upstream's bytes, as they arrive; `size` when the upstream said it. */
  | { kind: 'stream'; digest: Digest; size?: number; stream: Readable };

/** A cached repository: its rule and where it lives upstream. */
interface Mirror {
  rule: CacheRule;
  target: UpstreamTarget;
}

/** Serves the repositories under cache rules from their upstreams. */
export class PullThrough {
  private rules?: { readAt: number; list: Promise<CacheRule[]> };

  constructor(
    private readonly metadata: MetadataStore,
    private readonly manifests: Manifests,
    private readonly uploads: Uploads,
    private readonly sessions: UploadSessions,
    private readonly upstream: UpstreamClient,
    private readonly secrets: SecretReader,
    private readonly options: {
      /** Stream blobs through (true) or hand out redirects and copy in the background (false). */
      stream: boolean;
      dispatch: CopyDispatch;
      /** The epoch ms until which a request that starts now may wait for another one's fetch. */
      deadline: () => number;
    },
  ) {}

  /** The rule `repository` falls under and its upstream name, or undefined for an ordinary repository. */
  async mirror(repository: string): Promise<Mirror | undefined> {
    const rule = (await this.currentRules()).find((r) => within(repository, r.prefix));
    if (!rule) return undefined;
    const path = repository.slice(rule.prefix.length + 1);
    const hub = DOCKER_HUB.has(new URL(rule.upstream).hostname);
    const secret = rule.secret;
    const credentials = secret === undefined ? undefined : () => this.credentials(rule, secret);
    return { rule, target: { rule: rule.prefix, base: rule.upstream, repository: hub && !path.includes('/') ? `library/${path}` : path, credentials } };
  }

  /**
   * The repository a pull of `repository` reads (and the access check applies to). A Docker
   * daemon whose `registry-mirrors` names Berth asks for Docker Hub's names as they are
   * (`library/alpine`, `bitnami/redis`: always a namespace and a name), so with a rule of the
   * prefix `docker.io` such a name reads `docker.io/<repository>`, where the rule caches it. Never
   * a name of the team's: the name is `repository` itself when it is one part (Docker never asks
   * for those), under a rule, or in a namespace (its first part) that holds a repository of
   * Berth's own, whether or not `repository` itself exists. So a team's repository, or a missing
   * name beside its repositories, is never answered or filled from Docker Hub, before or after
   * it is pushed.
   */
  async pullName(repository: string): Promise<string> {
    const rules = await this.currentRules();
    const slash = repository.indexOf('/');
    if (slash < 0 || !rules.some((r) => r.prefix === DOCKER_HUB_MIRROR) || rules.some((r) => within(repository, r.prefix))) return repository;
    return (await repositoryAtOrUnder(this.metadata, repository.slice(0, slash))) ? repository : `${DOCKER_HUB_MIRROR}/${repository}`;
  }

  /** The cache rules, read again after {@link RULES_TTL_MS}. */
  private async currentRules(): Promise<CacheRule[]> {
    const now = Date.now();
    if (!this.rules || now - this.rules.readAt > RULES_TTL_MS) this.rules = { readAt: now, list: this.metadata.listCacheRules() };
    try {
      return await this.rules.list;
    } catch (error) {
      this.rules = undefined;
      throw error;
    }
  }

  /** @throws RegistryError DENIED when `repository` is a cached one: nobody pushes or deletes there. */
  async refuseWrites(repository: string): Promise<void> {
    const mirror = await this.mirror(repository);
    if (!mirror) return;
    throw fail(
      'DENIED',
      `${repository} is a read-only pull-through cache of ${mirror.rule.upstream} (cache rule "${mirror.rule.prefix}"): push to a repository outside ${mirror.rule.prefix}/`,
      { repository, rule: mirror.rule.prefix },
    );
  }

  /**
   * The manifest of a cached repository, fetched or re-resolved upstream as freshness asks;
   * undefined for an ordinary repository.
   * @throws RegistryError MANIFEST_UNKNOWN (404 upstream too; 502 when the upstream fails and
   *   nothing is cached), MANIFEST_INVALID (502: the upstream sent other bytes than asked for),
   *   TOOMANYREQUESTS (the upstream's 429).
   */
  async manifest(repository: string, reference: Reference): Promise<ManifestContent | undefined> {
    const mirror = await this.mirror(repository);
    if (!mirror) return undefined;
    if (reference.kind === 'digest') {
      if (await this.metadata.getManifest(repository, reference.digest)) return this.manifests.get(repository, reference);
      return this.fetchManifest(mirror, repository, reference).catch((error: unknown) => {
        throw asRegistryError(error, 'MANIFEST_UNKNOWN');
      });
    }
    const tag = await this.metadata.getTag(repository, reference.tag);
    if (tag && Date.now() - tag.updatedAt < mirror.rule.ttlSeconds * 1000) return this.manifests.get(repository, reference);
    try {
      if (tag && (await this.upstreamDigest(mirror, reference.tag)) === tag.digest) {
        // Conditional, as every tag write of a refresh: one that raced another refresh (which may
        // have moved the tag on) or a delete (retention, gc, npx berth rm) must not undo it.
        await this.metadata.replaceTag({ ...tag, updatedAt: Date.now() }, tag);
        return await this.manifests.get(repository, { kind: 'digest', digest: tag.digest });
      }
      return await this.fetchManifest(mirror, repository, reference, tag);
    } catch (error) {
      if (!tag || !(error instanceof UpstreamError)) throw asRegistryError(error, 'MANIFEST_UNKNOWN');
      // The upstream is down or refuses: the tag as cached is the best answer there is.
      return this.manifests.get(repository, reference);
    }
  }

  /**
   * A blob of a cached repository that is not linked there yet: linked from the blob store when
   * Berth holds it already (then undefined: serve it as usual), else fetched. Undefined too for
   * an ordinary repository.
   * @throws RegistryError BLOB_UNKNOWN, TOOMANYREQUESTS (429 with Retry-After: being copied).
   */
  async blob(repository: string, digest: Digest): Promise<FetchedBlob | undefined> {
    const mirror = await this.mirror(repository);
    if (!mirror || (await this.holds(mirror, repository, digest))) return undefined;
    return this.options.stream ? this.streamBlob(mirror, repository, digest) : this.redirectBlob(mirror, repository, digest);
  }

  /**
   * The size of a blob of a cached repository that Berth does not hold (HEAD asks the upstream;
   * nothing is fetched); undefined when Berth holds it or the repository is an ordinary one.
   * @throws RegistryError BLOB_UNKNOWN
   */
  async blobSize(repository: string, digest: Digest): Promise<number | undefined> {
    const mirror = await this.mirror(repository);
    if (!mirror || (await this.metadata.getBlobLink(repository, digest))) return undefined;
    const size = await this.upstreamSize(mirror, digest);
    const stored = await this.metadata.getBlob(digest);
    return stored && (await this.sessions.link(repository, stored)) ? undefined : size;
  }

  /**
   * A background copy (see {@link CopyDispatch}): fetches the blob, verifies it and links it, unless
   * another fetch holds the claim or it is here already. Failures are thrown (and logged by the runner).
   */
  async copy(job: CopyJob): Promise<void> {
    const mirror = await this.mirror(job.repository);
    if (!mirror) return;
    if (!(await this.metadata.claimFetch(job.digest, job.owner, Date.now(), Date.now() + CLAIM_MS))) return;
    try {
      if (await this.holds(mirror, job.repository, job.digest)) return;
      const response = await this.upstream.request(mirror.target, `blobs/${job.digest}`, { method: 'GET' });
      checkStatus(response, 'blob', job.digest);
      await this.uploads.uploadWhole(job.repository, job.digest, { chunks: Readable.fromWeb(response.body! as never), length: contentLength(response) });
    } finally {
      await this.metadata.releaseFetch(job.digest, job.owner);
    }
  }

  /**
   * Whether the repository holds the blob, linking it when Berth stored it for another repository
   * (or another fetch did) and the upstream confirms that this repository has it: a digest
   * known elsewhere in Berth must not leak into a cached repository whose upstream lacks it.
   * @throws RegistryError BLOB_UNKNOWN when the upstream does not confirm a stored blob.
   */
  private async holds(mirror: Mirror, repository: string, digest: Digest): Promise<boolean> {
    if (await this.metadata.getBlobLink(repository, digest)) return true;
    const stored = await this.metadata.getBlob(digest);
    if (!stored) return false;
    await this.upstreamSize(mirror, digest);
    return (await this.sessions.link(repository, stored)) !== undefined;
  }

  /** The blob's size as the upstream's HEAD says it. @throws RegistryError BLOB_UNKNOWN (and others of {@link asRegistryError}) */
  private async upstreamSize(mirror: Mirror, digest: Digest): Promise<number> {
    try {
      const response = await this.upstream.request(mirror.target, `blobs/${digest}`, { method: 'HEAD' });
      checkStatus(response, 'blob', digest);
      const size = Number(response.headers.get('content-length'));
      if (!Number.isSafeInteger(size) || size < 0) throw new UpstreamError(`${mirror.rule.upstream} did not say the size of ${digest}`);
      return size;
    } catch (error) {
      throw asRegistryError(error, 'BLOB_UNKNOWN');
    }
  }

  /**
   * Streams the blob through while it is stored; a request that finds another fetch of it in flight
   * waits until that one is done (then the blob is served as usual).
   */
  private async streamBlob(mirror: Mirror, repository: string, digest: Digest): Promise<FetchedBlob | undefined> {
    const owner = randomUUID();
    const deadline = this.options.deadline();
    while (!(await this.metadata.claimFetch(digest, owner, Date.now(), Date.now() + CLAIM_MS))) {
      if (Date.now() + POLL_MS > deadline) throw copying(digest, mirror);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (await this.holds(mirror, repository, digest)) return undefined;
    }
    let response: Response;
    try {
      // Another fetch may have finished between the last look and the claim.
      if (await this.holds(mirror, repository, digest)) {
        await this.metadata.releaseFetch(digest, owner);
        return undefined;
      }
      response = await this.upstream.request(mirror.target, `blobs/${digest}`, { method: 'GET' });
      checkStatus(response, 'blob', digest);
    } catch (error) {
      await this.metadata.releaseFetch(digest, owner);
      throw asRegistryError(error, 'BLOB_UNKNOWN');
    }
    const size = contentLength(response);
    const out = new PassThrough();
    const relay = holdingLast(Readable.fromWeb(response.body! as never), out);
    this.uploads
      .uploadWhole(repository, digest, { chunks: relay.chunks, length: size })
      .then(() => relay.finish(), (error: unknown) => {
        console.error(`pull-through of ${repository}@${digest} from ${mirror.rule.upstream} failed:`, error instanceof Error ? error.message : error);
        out.destroy(error instanceof Error ? error : new Error(String(error)));
      })
      .finally(() => this.metadata.releaseFetch(digest, owner).catch(() => undefined));
    return { kind: 'stream', digest, size, stream: out };
  }

  /** Hands the client the upstream's redirect, or a 429, and copies the blob in the background. */
  private async redirectBlob(mirror: Mirror, repository: string, digest: Digest): Promise<FetchedBlob> {
    let response: Response;
    try {
      response = await this.upstream.request(mirror.target, `blobs/${digest}`, { method: 'GET', redirect: 'manual' });
      await response.body?.cancel();
      if (response.status < 300 || response.status >= 400) checkStatus(response, 'blob', digest);
    } catch (error) {
      throw asRegistryError(error, 'BLOB_UNKNOWN');
    }
    const owner = randomUUID();
    if (await this.metadata.claimFetch(digest, owner, Date.now(), Date.now() + CLAIM_MS)) {
      await this.options.dispatch({ repository, digest, owner }).catch(async (error: unknown) => {
        await this.metadata.releaseFetch(digest, owner);
        throw error;
      });
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && location) return { kind: 'redirect', digest, url: location };
    throw copying(digest, mirror);
  }

  /**
   * Fetches a manifest, checks its digest, stores it; asked for by tag, tags it unless the tag
   * changed since it was read as `cached` (undefined: it was not there).
   */
  private async fetchManifest(mirror: Mirror, repository: string, reference: Reference, cached?: TagRecord): Promise<ManifestContent> {
    const name = reference.kind === 'tag' ? reference.tag : reference.digest;
    const response = await this.upstream.request(mirror.target, `manifests/${name}`, { method: 'GET', headers: { Accept: ACCEPT } });
    checkStatus(response, 'manifest', name);
    const bytes = await readLimited({ chunks: Readable.fromWeb(response.body! as never) }, MAX_MANIFEST_BYTES, 'upstream manifest');
    const announced = response.headers.get('docker-content-digest') ?? undefined;
    const expected = reference.kind === 'digest' ? reference.digest : announced;
    const algorithm = expected ? digestAlgorithm(expected as Digest) : 'sha256';
    const digest: Digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    for (const claimed of [expected, announced]) {
      if (claimed !== undefined && claimed !== digest && claimed.startsWith(`${algorithm}:`)) {
        throw fail('MANIFEST_INVALID', `${mirror.rule.upstream} sent a manifest for ${mirror.target.repository}:${name} whose digest is ${digest}, not ${claimed}; nothing was cached`, { expected: claimed, actual: digest }, { status: 502 });
      }
    }
    const tag = reference.kind === 'tag' ? { name: reference.tag, replacing: cached } : undefined;
    return this.manifests.cache(repository, digest, response.headers.get('content-type') ?? undefined, bytes, tag);
  }

  /** The digest the upstream's tag names now (HEAD); undefined when it does not say. */
  private async upstreamDigest(mirror: Mirror, tag: string): Promise<string | undefined> {
    const response = await this.upstream.request(mirror.target, `manifests/${tag}`, { method: 'HEAD', headers: { Accept: ACCEPT } });
    checkStatus(response, 'manifest', tag);
    return response.headers.get('docker-content-digest') ?? undefined;
  }

  /**
   * The credentials of `rule`, read when the upstream asks for them.
   * @throws UpstreamError when they cannot be read (the client gets a 502 saying so; cached tags are still served),
   *   CredentialsUnavailable when the secret store did not answer (a 503 with Retry-After).
   */
  private async credentials(rule: CacheRule, secret: string): Promise<UpstreamCredentials> {
    try {
      return JSON.parse(await this.secrets.read(secret)) as UpstreamCredentials;
    } catch (error) {
      if (error instanceof SecretUnavailable) throw new CredentialsUnavailable(`the credentials of cache rule "${rule.prefix}" cannot be read just now: ${error.message}`);
      const reason = error instanceof SecretUnreadable ? error.message : 'they are not the JSON that npx berth cache add stores';
      throw new UpstreamError(`the credentials of cache rule "${rule.prefix}" cannot be read: ${reason}; add the rule again with npx berth cache add ${rule.prefix} …`);
    }
  }
}

/** Whether `name` is under `prefix/`. */
export function within(name: string, prefix: string): boolean {
  return name.startsWith(`${prefix}/`);
}

/** A repository named `prefix` or under `prefix/` (the first in name order), or undefined when there is none. */
export async function repositoryAtOrUnder(metadata: MetadataStore, prefix: string): Promise<string | undefined> {
  if (await metadata.getRepository(prefix)) return prefix;
  // The catalog is in name order: the first name after `prefix/` is under it, if any is.
  const next = (await metadata.listRepositories(1, `${prefix}/`)).items[0]?.name;
  return next !== undefined && within(next, prefix) ? next : undefined;
}

/** @throws UpstreamError for any answer but 2xx (404 included: a cached tag outlives its upstream). */
function checkStatus(response: Response, what: 'manifest' | 'blob', name: string): void {
  if (response.ok) return;
  void response.body?.cancel();
  throw new UpstreamError(`the upstream answered HTTP ${response.status} for ${what} ${name}`, response.status);
}

/** The secret store holding a rule's credentials did not answer: the pull may pass when tried again. */
class CredentialsUnavailable extends UpstreamError {}

/** An upstream failure as the client sees it: 404 and 429 as the upstream said, unanswered credentials 503, anything else 502. */
function asRegistryError(error: unknown, unknown: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'): unknown {
  if (!(error instanceof UpstreamError)) return error;
  if (error instanceof CredentialsUnavailable) return fail(unknown, error.message, null, { status: 503, headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } });
  if (error.status === 404) return fail(unknown, error.message);
  if (error.status === 429) return fail('TOOMANYREQUESTS', error.message, null, { headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } });
  return fail(unknown, error.message, null, { status: 502 });
}

function copying(digest: Digest, mirror: Mirror): RegistryError {
  return fail('TOOMANYREQUESTS', `blob ${digest} is being copied from ${mirror.rule.upstream}; retry in a few seconds`, { digest }, {
    headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
  });
}

function contentLength(response: Response): number | undefined {
  const length = Number(response.headers.get('content-length') ?? NaN);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

/**
 * Passes `source`'s chunks on to the store (`chunks`) and, one chunk behind, to `out`: the last
 * chunk reaches `out` only on `finish()`, once the whole blob is verified. A client that went away
 * does not stop the copy.
 */
function holdingLast(source: Readable, out: PassThrough): { chunks: AsyncIterable<Uint8Array>; finish: () => void } {
  let held: Uint8Array | undefined;
  const write = async (chunk: Uint8Array) => {
    if (out.destroyed || out.write(chunk)) return;
    await Promise.race([once(out, 'drain'), once(out, 'close')]);
  };
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      if (held) await write(held);
      held = chunk as Uint8Array;
      yield held;
    }
  }
  return {
    chunks: chunks(),
    finish: () => {
      if (held) out.write(held);
      out.end();
    },
  };
}
