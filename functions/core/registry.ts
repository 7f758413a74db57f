/**
 * The registry core: one object that owns every service, built from the two storage ports.
 * Transports (the Lambda entry, the local server) hold a `Registry` and nothing else.
 */
import { Blobs, type BlobDelivery } from './blobs.js';
import { PullThrough, type CopyDispatch } from './cache.js';
import { Catalog } from './catalog.js';
import { DirectUploads, type Dispatch } from './direct.js';
import { FrontDoor } from './frontdoor.js';
import { GarbageCollector } from './gc.js';
import { ImmutableTags } from './immutable.js';
import { Manifests } from './manifests.js';
import { Repositories } from './repositories.js';
import { Retention } from './retention.js';
import { Search } from './search.js';
import { UploadSessions } from './sessions.js';
import type { PathKey } from './signed-paths.js';
import { DEFAULT_UPLOAD_SETTINGS, Uploads, type UploadSettings } from './uploads.js';
import { UpstreamClient, type HttpFetch } from './upstream.js';
import type { AccountStore, BlobStore, MetadataStore, SpentUploads } from '../storage/ports.js';
import type { SecretReader } from '../storage/secrets.js';
import { Auth, type AuthMode } from '../auth/service.js';
import { TokenService, type KeySource } from '../auth/tokens.js';

/** How long a pull on the local server waits for another pull's upstream fetch of the same blob (ms). */
const LOCAL_FETCH_WAIT_MS = 10 * 60_000;

/** Every service of the registry core, built once per process by {@link createRegistry}. */
export interface Registry {
  auth: Auth;
  sessions: UploadSessions;
  uploads: Uploads;
  direct: DirectUploads;
  frontDoor: FrontDoor;
  /**
   * Bytes of blob data one request can carry on this deployment (Lambda: see
   * infra/local/lambda-emulator.ts), advertised as `OCI-Chunk-Max-Length`; undefined: no limit.
   */
  maxChunk?: number;
  /** Continues verification of a direct upload elsewhere (see `dispatch` below). */
  dispatchVerification: Dispatch;
  blobs: Blobs;
  manifests: Manifests;
  catalog: Catalog;
  search: Search;
  gc: GarbageCollector;
  repositories: Repositories;
  /** The host names the registry answers to (BERTH_HOSTS, lower case, `name` or `name:port`); undefined: any. */
  hosts?: readonly string[];
  /** Immutability rules (core/immutable.ts). */
  immutable: ImmutableTags;
  /** Retention rules (core/retention.ts). */
  retention: Retention;
  /** Users and robots (the web interface's admin page; the CLI works on the table directly). */
  accounts: AccountStore;
  /** The pull-through cache of repositories under cache rules. */
  cache: PullThrough;
}

/** Wires the services onto the stores. */
export function createRegistry(
  metadata: MetadataStore & AccountStore,
  store: BlobStore,
  options: {
    delivery: BlobDelivery;
    uploads?: Partial<UploadSettings>;
    auth: AuthMode;
    tokenKey: KeySource;
    /** How verification of direct uploads continues elsewhere; default: in this process, in the background. */
    dispatch?: Dispatch;
    maxChunk?: number;
    /** The key of the front door's signed paths; undefined: no front door. */
    pathKey?: () => Promise<PathKey>;
    /** Where the front door's edge function learns which upload URLs were used; undefined: nowhere. */
    spent?: SpentUploads;
    /** Requests the stores have sent so far (for the collector's report); undefined: not counted. */
    requests?: () => { dynamodb: number; s3: number };
    /** See {@link Registry.hosts}. */
    hosts?: readonly string[];
    /** Where the credentials of cache rules are kept (Secrets Manager, or sealed under a local key). */
    secrets: SecretReader;
    /** How the pull-through cache reaches upstream registries; default: the global fetch. */
    upstreamFetch?: HttpFetch;
    /** How background copies of cached blobs run; default: in this process, in the background. */
    dispatchCopy?: CopyDispatch;
  },
): Registry {
  const sessions = new UploadSessions(metadata, store);
  const frontDoor = new FrontDoor(sessions, metadata, store, options.pathKey, options.spent);
  const uploads = new Uploads(sessions, store, frontDoor, { ...DEFAULT_UPLOAD_SETTINGS, ...options.uploads });
  const dispatch = options.dispatch ?? inProcess(sessions);
  const direct = new DirectUploads(sessions, store, dispatch);
  const tokens = new TokenService(options.tokenKey);
  const immutable = new ImmutableTags(metadata);
  const manifests = new Manifests(metadata, store, frontDoor, immutable);
  const cache: PullThrough = new PullThrough(metadata, manifests, uploads, sessions, new UpstreamClient(options.upstreamFetch ?? fetch), options.secrets, {
    stream: options.delivery === 'stream',
    dispatch: options.dispatchCopy ?? ((job) => inBackground(`copy of ${job.repository}@${job.digest}`, () => cache.copy(job))),
    // A local server has no request time limit: a waiting pull waits for the one fetching.
    deadline: () => (options.delivery === 'stream' ? Date.now() + LOCAL_FETCH_WAIT_MS : frontDoor.deadline()),
  });
  return {
    cache,
    maxChunk: options.maxChunk,
    hosts: options.hosts,
    dispatchVerification: dispatch,
    auth: new Auth(options.auth, tokens, metadata, metadata, (repository) => cache.pullName(repository)),
    sessions,
    uploads,
    direct,
    frontDoor,
    blobs: new Blobs(metadata, store, options.delivery, frontDoor, (blob) => frontDoor.blobPath(blob)),
    manifests,
    catalog: new Catalog(metadata, tokens),
    search: new Search(metadata),
    gc: new GarbageCollector(metadata, store, sessions, options.requests, options.spent),
    repositories: new Repositories(metadata, manifests, immutable),
    immutable,
    retention: new Retention(metadata, immutable),
    accounts: metadata,
  };
}

/** Background verification inside this process (the local server): runs until done, errors logged. */
function inProcess(sessions: UploadSessions): Dispatch {
  return (uploadId) => inBackground(`verification of upload ${uploadId}`, () => sessions.verify(uploadId, Number.POSITIVE_INFINITY));
}

/** Starts `work` after the current request, in this process; its failure is logged. */
async function inBackground(what: string, work: () => Promise<unknown>): Promise<void> {
  setImmediate(() => {
    work().catch((error: unknown) => console.error(`${what} failed:`, error));
  });
}
