/**
 * `npx berth …`: administration of a Berth registry.
 *
 *   berth user add <name> --password-stdin --role reader|writer|admin [--repo <pattern>…]
 *   berth user passwd <name> --password-stdin
 *   berth user revoke <name>        (its refresh tokens stop working)
 *   berth user unlock <name>        (forgets its failed logins)
 *   berth user list
 *   berth user remove <name>
 *   berth robot add <name> --role reader|writer|admin [--repo <pattern>…]   (prints the token once)
 *   berth robot rotate <name>       (a new token, printed once; the old one stops working)
 *   berth robot remove <name>
 *   berth repo visibility <name> [public|private]
 *   berth repo describe <name> "<text>"
 *   berth repo immutable [<pattern> on|off [--except <tag>…]]
 *   berth repo ls | tag ls <repo> | du
 *   berth rm <repo>:<tag> | <repo>@<digest> | <repo>
 *   berth gc [--dry-run] [--grace <duration>]
 *   berth retention ls | add <pattern> [--tags <p>] --keep-last|--expire-days|--untagged-days <n> | rm <id> | run [--dry-run]
 *   berth cache ls | add <prefix> <upstream-url> [--username <u> --password-stdin] [--ttl <duration>] | rm <prefix>
 *   berth push <registry>/<repository>[:<tag>] [--from …] [--path …]   (cli/push/command.ts)
 *
 * Locally it works on the data of a running `npm start` (same BERTH_DATA_DIR); with
 * `--stage <stage> [--region <region>]` on that deployed stage's table, with the operator's AWS
 * credentials.
 */
import { randomUUID } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { accountName, repositoryPattern, ROBOT_PREFIX, ROLES, type Account, type Role } from '../functions/auth/accounts.js';
import { generateRobotToken, hashPassword, newAccount } from '../functions/auth/passwords.js';
import { ACCESS_TOKEN_SECONDS } from '../functions/auth/tokens.js';
import { RegistryError } from '../functions/core/errors.js';
import { DEFAULT_GRACE_MS, GarbageCollector, parseDuration, type GcReport } from '../functions/core/gc.js';
import { parseReference, parseRepositoryName, type Digest, type Reference } from '../functions/core/grammar.js';
import { checkRepositoryPattern, ImmutableTags } from '../functions/core/immutable.js';
import { Manifests } from '../functions/core/manifests.js';
import { MAX_DESCRIPTION, Repositories } from '../functions/core/repositories.js';
import { Retention, retentionRule, ruleSummary } from '../functions/core/retention.js';
import { UploadSessions } from '../functions/core/sessions.js';
import type { AuditRecord } from '../functions/http/audit.js';
import { createDynamoClient, DynamoMetadataStore } from '../functions/storage/dynamodb.js';
import type { AccountStore, BlobStore, MetadataStore, RetentionRule } from '../functions/storage/ports.js';
import { countRequests } from '../functions/storage/requests.js';
import { createS3Client, S3BlobStore } from '../functions/storage/s3.js';
import { FileBlobStore } from '../functions/storage/files.js';
import { SealedSecrets, SecretUnreadable, type SecretStore } from '../functions/storage/secrets.js';
import { CacheRules } from '../functions/core/cache-rules.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage:
  berth user add <name> --password-stdin --role reader|writer|admin [--repo <pattern>...]
  berth user passwd <name> --password-stdin
  berth user revoke <name>         end its sessions: its refresh tokens stop working
  berth user unlock <name>         forget its failed logins (from every address)
  berth user list
  berth user remove <name>
  berth robot add <name> --role reader|writer|admin [--repo <pattern>...]
  berth robot rotate <name>        a new token, shown once; the old one stops working
  berth robot remove <name>
  berth repo visibility <name> [public|private]
  berth repo describe <name> "<text>"
  berth repo immutable [<pattern> on|off [--except <tag>...]]
                                   tags of matching repositories (team/*) cannot be moved or deleted, except
                                   the --except tags (e.g. latest); without arguments: the rules
  berth repo ls                    repositories: visibility, tags, stored bytes (shared blobs once), last push
  berth tag ls <repo>              tags with their digests and push times
  berth rm <repo>:<tag>            deletes the tag only
  berth rm <repo>@<digest>         deletes the manifest and every tag pointing at it (and its referrer entry)
  berth rm <repo>                  deletes the whole repository: tags, manifests, blob links; it leaves the
                                   catalog and search (the bytes are freed by the next gc)
  berth du                         stored bytes: registry total (each blob once) and per repository
  berth gc [--dry-run] [--grace <duration>]
                                   collects garbage now: unreachable untagged manifests, unreferenced blob links
                                   and blobs older than the grace period (default 24h; e.g. 0s, 30m, 7d),
                                   expired upload sessions; --dry-run lists what it would delete
  berth retention ls
  berth retention add <pattern> [--tags <tag pattern>] --keep-last <n> | --expire-days <n> | --untagged-days <n>
                                   keep the last n matching tags (by push time) / delete matching tags n days
                                   after their push / let untagged manifests go after n days (not before the
                                   gc grace period); immutable tags never expire
  berth retention rm <id>
  berth retention run [--dry-run]  deletes the tags the rules expire now (--dry-run: lists them); the daily gc
                                   applies the rules too, then frees what those tags kept
  berth cache ls                   pull-through cache rules
  berth cache add <prefix> <upstream-url> [--username <u> --password-stdin] [--ttl <duration>]
                                   docker pull <registry>/<prefix>/<path>:<tag> pulls <path>:<tag> from the
                                   upstream registry (https://registry-1.docker.io, https://ghcr.io, ...) the
                                   first time and from Berth afterwards; tags are looked up upstream again
                                   after --ttl (default 5m); the password is stored encrypted, never shown
  berth cache rm <prefix>          removes the rule and its credentials (cached repositories stay)
  berth push <registry>/<repository>[:<tag>] [--from docker|oci-layout|docker-archive] [--path <dir|file>]
  berth --help | --version
options: --stage <stage> [--region <region>] to administer a deployed stage`;

/** A mistake of the operator's: printed without a stack, exit code 2. */
class UsageError extends Error {}

// `berth push` talks HTTP to the registry in the image name: no endpoints.json, no AWS (cli/push/).
if (process.argv[2] === 'push') {
  const { pushCommand } = await import('./push/command.js');
  process.exit(await pushCommand(process.argv.slice(3)));
}

/** The command line; a mistake in it is a {@link UsageError} of one line. */
function parseCommandLine() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        'password-stdin': { type: 'boolean' },
        role: { type: 'string' },
        repo: { type: 'string', multiple: true },
        stage: { type: 'string' },
        region: { type: 'string' },
        'dry-run': { type: 'boolean' },
        grace: { type: 'string' },
        except: { type: 'string', multiple: true },
        tags: { type: 'string' },
        'keep-last': { type: 'string' },
        'expire-days': { type: 'string' },
        'untagged-days': { type: 'string' },
        username: { type: 'string' },
        ttl: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${/'([^']+)'/.exec(message)?.[1] ?? ''} (see berth --help)`);
    if (code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(`${message.split('. ')[0].replace(/\.$/, '')} (see berth --help)`);
    throw error;
  }
}

/** Runs `work`, reporting the core's refusal of bad input (UNSUPPORTED) as the operator's mistake. */
async function asUsage<T>(work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof RegistryError && error.code === 'UNSUPPORTED') throw new UsageError(error.message);
    throw error;
  }
}

/** The table to work on and, locally, the running server's login mode (undefined: not recorded). */
interface Target {
  store: MetadataStore & AccountStore;
  /** Where cache rules keep upstream credentials (Secrets Manager on a stage, sealed locally). */
  secrets: () => Promise<SecretStore>;
  /** The bucket, when known (locally); a deployed stage collects garbage in its `gc` function. */
  blobs?: BlobStore;
  /** Requests sent to the table and bucket so far. */
  requests?: () => { dynamodb: number; s3: number };
  /** The deployed stage's `gc` function. */
  gcFunction?: { name: string; region: string };
  auth?: string;
  /** Where the server runs, for messages. */
  where: string;
  /** Where account changes are recorded locally (undefined: on stderr). */
  auditFile?: string;
  /** Closes the native journal this process opened, and gives its data folder back. */
  release?: () => Promise<void>;
}

let options: ReturnType<typeof parseCommandLine>['values'] = {};

async function main(): Promise<void> {
  const commandLine = parseCommandLine();
  options = commandLine.values;
  const [group, command, ...args] = commandLine.positionals;
  if (options.version) return void console.log(`berth ${await version()}`);
  if (options.help || !group || group === 'help') return void console.log(USAGE);
  // Two-word commands (`user add`), then one-word ones (`rm <ref>`, `du`, `gc`).
  const [run, rest] = COMMANDS[`${group} ${command}`] ? [COMMANDS[`${group} ${command}`], args] : [COMMANDS[group], commandLine.positionals.slice(1)];
  if (!run) throw new UsageError(`unknown command: ${commandLine.positionals.join(' ').slice(0, 100)} (see berth --help)`);
  const target = await openStore();
  try {
    await run(target, rest);
    const action = ACCOUNT_ACTIONS[`${group} ${command}`];
    if (action) await audit(target, action, (group === 'robot' ? ROBOT_PREFIX : '') + rest[0]);
  } finally {
    await target.release?.();
  }
}

/** Commands that change an account, by the audit trail's name for them. */
const ACCOUNT_ACTIONS: Record<string, string> = {
  'user add': 'account.add',
  'user passwd': 'account.passwd',
  'user revoke': 'account.revoke',
  'user unlock': 'account.unlock',
  'user remove': 'account.remove',
  'robot add': 'account.add',
  'robot rotate': 'account.rotate',
  'robot remove': 'account.remove',
};

/**
 * The audit record of an account change made here (the shape of the server's, http/audit.ts): the
 * account is the operator (`cli:<OS user>`), the reference the account changed. Locally appended
 * to `<BERTH_DATA_DIR>/audit.log`; for a stage, printed on stderr (the operator's own log).
 */
async function audit(target: Target, action: string, account: string): Promise<void> {
  const record: AuditRecord = {
    time: new Date().toISOString(),
    requestId: randomUUID(),
    account: `cli:${userInfo().username}`,
    sourceIp: hostname(),
    action,
    reference: account,
    status: 200,
    bytes: 0,
  };
  const line = `${JSON.stringify(record)}\n`;
  if (target.auditFile) await appendFile(target.auditFile, line, { mode: 0o600 });
  else process.stderr.write(line);
}

/** The commands by `<group> <command>`, with the arguments after those two words. */
const COMMANDS: Record<string, (target: Target, args: string[]) => Promise<void>> = {
  'user add': async (target, [name]) => addAccount(target, 'user', name, await readPassword()),
  'user passwd': async ({ store }, [name]) => changePassword(store, name, await readPassword()),
  'user revoke': ({ store }, [name]) => revoke(store, name),
  'user unlock': ({ store }, [name]) => unlock(store, name),
  'user list': ({ store }) => listAccounts(store),
  'user remove': ({ store }, [name]) => removeAccount(store, validName(name)),
  'robot add': (target, [name]) => addAccount(target, 'robot', name, generateRobotToken()),
  'robot rotate': ({ store }, [name]) => rotate(store, name),
  'robot remove': ({ store }, [name]) => removeAccount(store, ROBOT_PREFIX + validName(name)),
  'repo visibility': (target, [name, value]) => visibility(target, name, value),
  'repo describe': (target, [name, text]) => describe(target, name, text),
  'repo ls': (target) => listRepositories(target),
  'repo immutable': (target, [pattern, value]) => immutable(target, pattern, value),
  'tag ls': (target, [name]) => listTags(target, name),
  rm: (target, [reference]) => remove(target, reference),
  du: (target) => diskUsage(target),
  gc: (target) => collect(target),
  'retention ls': ({ store }) => listRetention(store),
  'retention add': ({ store }, [pattern]) => addRetention(store, pattern),
  'retention rm': async ({ store }, [id]) => {
    if (!id || !(await store.deleteRetentionRule(id))) throw new UsageError(`no such retention rule: ${id ?? ''} (see berth retention ls)`);
    console.log(`removed retention rule ${id}`);
  },
  'retention run': ({ store }) => runRetention(store),
  'cache ls': ({ store }) => listCache(store),
  'cache add': (target, [prefix, upstream]) => addCache(target, prefix, upstream),
  'cache rm': async (target, [prefix]) => {
    if (!prefix || !(await new CacheRules(target.store, await target.secrets()).remove(prefix))) throw new UsageError(`no such cache rule: ${prefix ?? ''} (see berth cache ls)`);
    console.log(`removed cache rule ${prefix} and its credentials; repositories cached under ${prefix}/ stay (berth rm removes them)`);
  },
};

async function version(): Promise<string> {
  return (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * Accounts and visibility change nothing while the server lets everyone in: say so, since
 * `docker login` then "succeeds" with any password and hides it.
 */
function warnIfOpen(target: Target): void {
  if (target.auth === undefined || target.auth === 'required') return;
  console.error(`berth: warning: the registry on ${target.where} does not require logins (BERTH_AUTH=${target.auth}): anyone can pull, push and delete without an account, and docker login accepts any password; restart it with BERTH_AUTH=required`);
}

async function addAccount(target: Target, kind: Account['kind'], rawName: string | undefined, secret: string): Promise<void> {
  const { store } = target;
  const name = (kind === 'robot' ? ROBOT_PREFIX : '') + validName(rawName);
  if (await store.getAccount(name)) throw new UsageError(`${name} exists already`);
  const repositories = (options.repo ?? []).map((pattern) => {
    if (!repositoryPattern.safeParse(pattern).success) throw new UsageError(`not a repository pattern: ${pattern}`);
    return pattern;
  });
  const account = await newAccount(kind, name, validRole(options.role), repositories, secret);
  await store.putAccount(account);
  console.log(`added ${kind} ${name} (${account.role}${repositories.length ? ` on ${repositories.join(', ')}` : ' on all repositories'})`);
  if (kind === 'robot') printRobotToken(name, secret);
  warnIfOpen(target);
}

function printRobotToken(name: string, token: string): void {
  console.log(`username: ${name}\ntoken:    ${token}\n(shown once: keep it now)`);
}

async function changePassword(store: MetadataStore & AccountStore, rawName: string | undefined, password: string): Promise<void> {
  const account = await existing(store, 'user', rawName);
  await replaceCredentials(store, account, await hashPassword(password));
  console.log(`password of ${account.name} changed; its refresh tokens no longer work`);
}

async function revoke(store: MetadataStore & AccountStore, rawName: string | undefined): Promise<void> {
  const account = await existing(store, 'user', rawName);
  await replaceCredentials(store, account, account.passwordHash);
  console.log(`sessions of ${account.name} revoked: its refresh tokens no longer work (access tokens already issued expire within ${ACCESS_TOKEN_SECONDS / 60} minutes)`);
}

async function rotate(store: MetadataStore & AccountStore, rawName: string | undefined): Promise<void> {
  const account = await existing(store, 'robot', rawName);
  const token = generateRobotToken();
  await replaceCredentials(store, account, await hashPassword(token));
  console.log(`new token of ${account.name}; the old one no longer works`);
  printRobotToken(account.name, token);
}

async function unlock(store: MetadataStore & AccountStore, rawName: string | undefined): Promise<void> {
  const account = await existing(store, 'user', rawName);
  const sources = await store.clearLoginFailures(account.name);
  console.log(`unlocked ${account.name} (failed logins forgotten from ${sources} address${sources === 1 ? '' : 'es'})`);
}

/** The account of that kind and name. @throws UsageError when there is none. */
async function existing(store: MetadataStore & AccountStore, kind: Account['kind'], rawName: string | undefined): Promise<Account> {
  const name = (kind === 'robot' ? ROBOT_PREFIX : '') + validName(rawName);
  const account = await store.getAccount(name);
  if (!account || account.kind !== kind) throw new UsageError(`no such ${kind}: ${rawName}`);
  return account;
}

/**
 * Stores `passwordHash` and a new credential version: refresh tokens carry the version they were
 * issued under (functions/auth/tokens.ts), so every one issued before stops working.
 */
async function replaceCredentials(store: MetadataStore & AccountStore, account: Account, passwordHash: string): Promise<void> {
  await store.putAccount({ ...account, passwordHash, credentialVersion: account.credentialVersion + 1 });
}

async function listAccounts(store: MetadataStore & AccountStore): Promise<void> {
  for (const a of await store.listAccounts()) {
    console.log(`${a.name}\t${a.kind}\t${a.role}\t${a.repositories.length ? a.repositories.join(',') : '*'}`);
  }
}

async function removeAccount(store: MetadataStore & AccountStore, name: string): Promise<void> {
  if (!(await store.deleteAccount(name))) throw new UsageError(`no such account: ${name}`);
  console.log(`removed ${name}`);
}

/** Prints a repository's visibility, or sets it (warning when nothing was pushed there yet: a typo?). */
async function visibility(target: Target, repository: string | undefined, value: string | undefined): Promise<void> {
  const { store } = target;
  const name = validRepository(repository);
  if (value !== undefined && value !== 'public' && value !== 'private') throw new UsageError('visibility is public or private');
  const current = await store.getRepository(name);
  const pushed = current?.pushedAt !== undefined;
  if (value === undefined) return void console.log(`${name} is ${current?.visibility ?? 'private'}${pushed ? '' : ' (nothing pushed there yet)'}`);
  await repositoriesOf(target).setVisibility(name, value);
  console.log(`${name} is ${value}`);
  if (!pushed) console.error(`berth: warning: nothing has been pushed to ${name} yet; it will be ${value} when something is`);
  warnIfOpen(target);
}

async function describe(target: Target, repository: string | undefined, text: string | undefined): Promise<void> {
  if (text === undefined || text.length > MAX_DESCRIPTION) throw new UsageError(`give the description as one argument of at most ${MAX_DESCRIPTION} characters`);
  await repositoriesOf(target).describe(validRepository(repository), text);
  console.log(`${repository}: ${text}`);
}

/** The repository service on the target's table (deletes and listings touch no bytes). */
function repositoriesOf({ store, blobs }: Target): Repositories {
  const noBytes = blobs ?? (new Proxy({}, { get: () => () => Promise.reject(new Error('no bucket')) }) as BlobStore);
  const immutable = new ImmutableTags(store);
  // The CLI never waits for front-door verifications: a blob is linked or it is not.
  const links = { deadline: () => Date.now(), find: (repository: string, digest: Digest) => store.getBlobLink(repository, digest) };
  return new Repositories(store, new Manifests(store, noBytes, links, immutable), immutable);
}

/** Lists the immutability rules, or turns the rule of `pattern` on (with its exceptions) or off. */
async function immutable({ store }: Target, pattern: string | undefined, value: string | undefined): Promise<void> {
  if (pattern === undefined) {
    const rules = await store.listImmutableRules();
    if (rules.length === 0) console.log('no immutable tags');
    for (const rule of rules) console.log(`${rule.pattern}\timmutable${rule.except.length ? `, except ${rule.except.join(', ')}` : ''}`);
    return;
  }
  const rules = new ImmutableTags(store);
  if (value === 'off') {
    if (options.except) throw new UsageError('--except goes with on');
    console.log((await rules.remove(await asUsage(() => checkRepositoryPattern(pattern)))) ? `tags of ${pattern} are mutable again` : `${pattern} had no rule; nothing changed`);
    return;
  }
  if (value !== 'on') throw new UsageError('repo immutable <pattern> on|off [--except <tag>...]');
  const { except } = await asUsage(() => rules.set(pattern, options.except ?? []));
  console.log(`tags of ${pattern} are immutable${except.length ? `, except ${except.join(', ')}` : ''}`);
}

function describeRule(rule: RetentionRule): string {
  return `${rule.id}\t${rule.pattern}\t${ruleSummary(rule)}`;
}

async function listRetention(store: MetadataStore & AccountStore): Promise<void> {
  const rules = await store.listRetentionRules();
  if (rules.length === 0) console.log('no retention rules');
  for (const rule of rules) console.log(describeRule(rule));
}

async function addRetention(store: MetadataStore & AccountStore, pattern: string | undefined): Promise<void> {
  if (!pattern) throw new UsageError('retention add needs a repository pattern (team/*)');
  const given = (['keep-last', 'expire-days', 'untagged-days'] as const).filter((name) => options[name] !== undefined);
  if (given.length !== 1) throw new UsageError('give exactly one of --keep-last, --expire-days, --untagged-days');
  const kind = ({ 'keep-last': 'keepLast', 'expire-days': 'expireDays', 'untagged-days': 'untaggedDays' } as const)[given[0]];
  const rule = await asUsage(() => retentionRule(pattern, kind, options[given[0]]!, options.tags));
  await store.putRetentionRule(rule);
  console.log(`added retention rule ${describeRule(rule)}`);
}

async function runRetention(store: MetadataStore & AccountStore): Promise<void> {
  const dryRun = options['dry-run'] ?? false;
  const expired = await new Retention(store, new ImmutableTags(store)).apply(dryRun);
  for (const { repository, expired: e } of expired) console.log(`${dryRun ? 'would delete' : 'deleted'} tag ${repository}:${e.tag.tag} (${e.reason})`);
  console.log(`${expired.length} tag${expired.length === 1 ? '' : 's'} ${dryRun ? 'would be deleted' : 'deleted'}; berth gc frees what they kept`);
}

async function listCache(store: MetadataStore & AccountStore): Promise<void> {
  const rules = await store.listCacheRules();
  if (rules.length === 0) return void console.log('no cache rules');
  printTable(['PREFIX', 'UPSTREAM', 'USER', 'TAG TTL'], rules.map((r) => [r.prefix, r.upstream, r.username ?? '(anonymous)', `${r.ttlSeconds}s`]));
}

async function addCache(target: Target, prefix: string | undefined, upstream: string | undefined): Promise<void> {
  if (!prefix || !upstream) throw new UsageError('cache add <prefix> <upstream-url> [--username <u> --password-stdin] [--ttl <duration>]');
  if ((options.username === undefined) !== (options['password-stdin'] === undefined)) throw new UsageError('--username and --password-stdin go together');
  let ttlSeconds: number | undefined;
  try {
    if (options.ttl !== undefined) ttlSeconds = Math.round(parseDuration(options.ttl) / 1000);
  } catch (error) {
    throw new UsageError(`--ttl: ${(error as Error).message}`);
  }
  const credentials = options.username === undefined ? undefined : { username: options.username, password: await readStdin() };
  if (credentials && credentials.password === '') throw new UsageError('no password on standard input');
  try {
    const rule = await new CacheRules(target.store, await target.secrets()).add({ prefix, upstream, credentials, ttlSeconds });
    console.log(`added cache rule ${rule.prefix} → ${rule.upstream}${rule.username ? ` as ${rule.username}` : ' (anonymous)'}, tags looked up again after ${rule.ttlSeconds}s`);
  } catch (error) {
    if (error instanceof RegistryError) throw new UsageError(error.message);
    throw error;
  }
}

async function listRepositories(target: Target): Promise<void> {
  const rows = (await repositoriesOf(target).list()).map((r) => [r.name, r.visibility, String(r.tags), bytes(r.bytes), r.pushedAt ? new Date(r.pushedAt).toISOString() : '-']);
  printTable(['NAME', 'VISIBILITY', 'TAGS', 'SIZE', 'LAST PUSH'], rows);
}

async function listTags(target: Target, repository: string | undefined): Promise<void> {
  const tags = await repositoriesOf(target).tags(validRepository(repository));
  printTable(['TAG', 'DIGEST', 'PUSHED'], tags.map((t) => [t.tag, t.digest, new Date(t.updatedAt).toISOString()]));
}

async function diskUsage(target: Target): Promise<void> {
  const usage = await repositoriesOf(target).usage();
  printTable(['REPOSITORY', 'SIZE'], usage.repositories.map((r) => [r.name, bytes(r.bytes)]));
  console.log(`total ${bytes(usage.total)} in ${usage.blobs} blobs (shared blobs once); ${bytes(usage.unlinked)} linked by no repository (freed by gc)`);
}

/** `rm <repo>:<tag> | <repo>@<digest> | <repo>`. */
async function remove(target: Target, text: string | undefined): Promise<void> {
  if (!text) throw new UsageError('rm needs <repo>:<tag>, <repo>@<digest> or <repo>');
  const at = text.lastIndexOf('@');
  const colon = text.lastIndexOf(':');
  let repository = text;
  let reference: Reference | undefined;
  try {
    if (at > 0) [repository, reference] = [text.slice(0, at), parseReference(text.slice(at + 1))];
    else if (colon > text.lastIndexOf('/')) [repository, reference] = [text.slice(0, colon), parseReference(text.slice(colon + 1))];
    if (reference && (at > 0) !== (reference.kind === 'digest')) throw new UsageError(`${text}: a tag follows ":", a digest follows "@"`);
    const removed = await repositoriesOf(target).remove(validRepository(repository), reference);
    if (!reference) console.log(`deleted repository ${repository} (${removed.tags} tags, ${removed.manifests} manifests, ${removed.links} blob links); berth gc frees its bytes`);
    else if (reference.kind === 'tag') console.log(`deleted tag ${repository}:${reference.tag}`);
    else console.log(`deleted manifest ${repository}@${reference.digest} and ${removed.tags} tag${removed.tags === 1 ? '' : 's'} pointing at it`);
  } catch (error) {
    if (error instanceof RegistryError) throw new UsageError(error.message);
    throw error;
  }
}

/** `gc`: locally in this process on the server's stores; on a stage, one invocation of its `gc` function. */
async function collect(target: Target): Promise<void> {
  let graceMs = DEFAULT_GRACE_MS;
  try {
    if (options.grace !== undefined) graceMs = parseDuration(options.grace);
  } catch (error) {
    throw new UsageError(`--grace: ${(error as Error).message}`);
  }
  const dryRun = options['dry-run'] ?? false;
  let report: GcReport;
  if (target.gcFunction) {
    const { LambdaClient, InvokeCommand } = await import('@aws-sdk/client-lambda');
    const client = new LambdaClient({ region: target.gcFunction.region });
    const result = await client.send(new InvokeCommand({ FunctionName: target.gcFunction.name, Payload: JSON.stringify({ graceMs, dryRun }) }));
    report = JSON.parse(Buffer.from(result.Payload!).toString('utf8')) as GcReport;
  } else {
    if (!target.blobs) throw new UsageError(`the S3 endpoint of the registry on ${target.where} is not recorded: run gc where npm start runs`);
    const sessions = new UploadSessions(target.store, target.blobs);
    report = await new GarbageCollector(target.store, target.blobs, sessions, target.requests).run({ graceMs, dryRun });
  }
  printReport(report);
}

function printReport(report: GcReport): void {
  for (const line of report.planned) console.log(`would delete ${line}`);
  const counts = (c: GcReport['scanned']) => Object.entries(c).map(([k, v]) => `${v} ${k}`).join(', ');
  const grace = `grace ${report.graceMs / 1000}s`;
  console.log(`${report.dryRun ? 'dry run' : 'gc'} ${report.finished ? 'finished' : 'stopped (continues at the next run)'} (${grace})`);
  console.log(`scanned: ${counts(report.scanned)}`);
  console.log(`${report.dryRun ? 'would delete' : 'deleted'}: ${report.dryRun ? `${report.planned.length} items` : counts(report.deleted)}; ${bytes(report.bytesReclaimed)} reclaimed`);
  if (report.requests) console.log(`requests: ${report.requests.dynamodb} DynamoDB, ${report.requests.s3} S3`);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
}

/** Bytes for people: `0 B`, `1.5 KiB`, `12.0 MiB`. */
function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let value = n;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${value.toFixed(1)} ${units[i]}`;
}

function validRepository(repository: string | undefined): string {
  try {
    return parseRepositoryName(repository ?? '');
  } catch (error) {
    throw new UsageError((error as RegistryError).message);
  }
}

function validName(name: string | undefined): string {
  const parsed = accountName.safeParse(name ?? '');
  if (!parsed.success) throw new UsageError(`invalid name ${JSON.stringify(name ?? '')}: ${parsed.error.issues[0].message}`);
  return parsed.data;
}

function validRole(role: string | undefined): Role {
  if (!ROLES.includes(role as Role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  return role as Role;
}

async function readPassword(): Promise<string> {
  if (!options['password-stdin']) throw new UsageError('pass the password on standard input with --password-stdin');
  const password = await readStdin();
  if (password.length < 8) throw new UsageError('passwords have at least 8 characters');
  return password;
}

/** Standard input, without one trailing line break. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** The table of a deployed stage, or the one a running `npm start` serves from BERTH_DATA_DIR. */
async function openStore(): Promise<Target> {
  if (options.stage) {
    const region = options.region ?? process.env.AWS_REGION ?? 'us-east-1';
    const table = `berth-${options.stage}`;
    // Deployments always require logins (serverless.yml).
    return {
      store: new DynamoMetadataStore(createDynamoClient({ table, region }), table),
      secrets: async () => {
        const [{ SecretsManagerClient }, { SecretsManagerSecrets }] = await Promise.all([import('@aws-sdk/client-secrets-manager'), import('./secrets-manager.js')]);
        return new SecretsManagerSecrets(new SecretsManagerClient({ region }), `berth-${options.stage}/cache/`, region);
      },
      auth: 'required',
      where: `stage ${options.stage}`,
      gcFunction: { name: `berth-${options.stage}-gc`, region },
    };
  }
  const dataDir = resolve(process.env.BERTH_DATA_DIR ?? '.berth');
  let env: Record<string, string>;
  try {
    env = JSON.parse(await readFile(resolve(dataDir, 'endpoints.json'), 'utf8'));
  } catch {
    throw new UsageError(`no running registry found under ${dataDir}: start it with npm start (same BERTH_DATA_DIR), or pass --stage`);
  }
  const credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
  const settings = { table: env.BERTH_TABLE, region: 'us-east-1', endpoint: env.BERTH_DYNAMODB_ENDPOINT, credentials };
  const dynamo = createDynamoClient(settings);
  const s3 = env.BERTH_S3_ENDPOINT ? createS3Client({ bucket: env.BERTH_BUCKET, region: 'us-east-1', endpoint: env.BERTH_S3_ENDPOINT, credentials }) : undefined;
  const [dynamoRequests, s3Requests] = [countRequests(dynamo), s3 ? countRequests(s3) : () => 0];
  const native = env.BERTH_METADATA === 'native' ? await nativeStore(dataDir, env.BERTH_METADATA_URL) : undefined;
  return {
    ...native,
    store: native?.store ?? new DynamoMetadataStore(dynamo, settings.table),
    secrets: () => localSecrets(resolve(dataDir, 'cache-key')),
    blobs: env.BERTH_BLOB_DIR ? new FileBlobStore(env.BERTH_BLOB_DIR) : s3 && new S3BlobStore(s3, env.BERTH_BUCKET),
    requests: () => ({ dynamodb: dynamoRequests(), s3: s3Requests() }),
    auth: env.BERTH_AUTH,
    where: dataDir,
    auditFile: resolve(dataDir, 'audit.log'),
  };
}

/**
 * The local server's sealed secrets, under the key in `file` (npm start made it).
 * @throws Error of one line when the key file is missing or holds no 32-byte key.
 */
async function localSecrets(file: string): Promise<SealedSecrets> {
  try {
    return new SealedSecrets(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64'));
  } catch (error) {
    const reason = error instanceof SecretUnreadable ? error.message : `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
    throw new Error(`the cache key ${file}: ${reason}; npm start writes it on its first start (the sealed credentials of cache rules need the same key)`);
  }
}

/**
 * The native metadata store of the data folder: the running server's, over its loopback endpoint
 * (infra/local/store-rpc.ts), or, when no server holds the folder, its journal opened here under
 * the folder's lock (a server started meanwhile waits for nothing: it is refused, as for a second server).
 */
async function nativeStore(dataDir: string, url: string): Promise<Pick<Target, 'store' | 'release'>> {
  const [{ DataDirInUse, lockDataDir }, { NativeMetadataStore, nativeJournal }, { remoteStore }] = await Promise.all([
    import('../infra/local/data-dir.js'),
    import('../infra/local/native-store.js'),
    import('../infra/local/store-rpc.js'),
  ]);
  let unlock: () => Promise<void>;
  try {
    unlock = await lockDataDir(dataDir);
  } catch (error) {
    if (error instanceof DataDirInUse) return { store: await remoteStore(url, dataDir) };
    throw error;
  }
  const store = new NativeMetadataStore(nativeJournal(dataDir));
  return {
    store,
    async release() {
      NativeMetadataStore.close(store);
      await unlock();
    },
  };
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`berth: ${error.message}`);
    process.exit(2);
  }
  const name = (error as { name?: string }).name;
  if (name === 'TimeoutError' || (error as { code?: string }).code === 'ECONNREFUSED') {
    console.error('berth: the registry\'s database is not reachable: is npm start still running?');
    process.exit(1);
  }
  console.error(`berth: ${(error as Error).message}`);
  process.exit(1);
});
