/**
 * `npx berth …`: administration of a Berth registry.
 *
 *   berth user add <name> --password-stdin --role reader|writer|admin [--repo <pattern>…]
 *   berth user passwd <name> --password-stdin
 *   berth user unlock <name>        (forgets its failed logins)
 *   berth user list
 *   berth user remove <name>
 *   berth robot add <name> --role reader|writer|admin [--repo <pattern>…]   (prints the token once)
 *   berth robot remove <name>
 *   berth repo visibility <name> public|private
 *   berth repo describe <name> "<text>"
 *   berth push <registry>/<repository>[:<tag>] [--from …] [--path …]   (cli/push/command.ts)
 *
 * Locally it works on the data of a running `npm start` (same BERTH_DATA_DIR); with
 * `--stage <stage> [--region <region>]` on that deployed stage's table, with the operator's AWS
 * credentials.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { accountName, repositoryPattern, ROBOT_PREFIX, ROLES, type Account, type Role } from '../functions/auth/accounts.js';
import { generateRobotToken, hashPassword } from '../functions/auth/passwords.js';
import { parseRepositoryName } from '../functions/core/grammar.js';
import { RegistryError } from '../functions/core/errors.js';
import { createDynamoClient, DynamoMetadataStore } from '../functions/storage/dynamodb.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage:
  berth user add <name> --password-stdin --role reader|writer|admin [--repo <pattern>...]
  berth user passwd <name> --password-stdin
  berth user unlock <name>         forget its failed logins (from every address)
  berth user list
  berth user remove <name>
  berth robot add <name> --role reader|writer|admin [--repo <pattern>...]
  berth robot remove <name>
  berth repo visibility <name> public|private
  berth repo describe <name> "<text>"
  berth push <registry>/<repository>[:<tag>] [--from docker|oci-layout|docker-archive] [--path <dir|file>]
options: --stage <stage> [--region <region>] to administer a deployed stage`;

/** A mistake of the operator's: printed without a stack, exit code 2. */
class UsageError extends Error {}

// `berth push` talks HTTP to the registry in the image name: no endpoints.json, no AWS (cli/push/).
if (process.argv[2] === 'push') {
  const { pushCommand } = await import('./push/command.js');
  process.exit(await pushCommand(process.argv.slice(3)));
}

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'password-stdin': { type: 'boolean' },
    role: { type: 'string' },
    repo: { type: 'string', multiple: true },
    stage: { type: 'string' },
    region: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

async function main(): Promise<void> {
  const [group, command, ...args] = positionals;
  if (options.help || !group) return void console.log(USAGE);
  const store = await openStore();
  const key = `${group} ${command}`;
  if (key === 'user add') return addAccount(store, 'user', args[0], await readPassword());
  if (key === 'user passwd') return changePassword(store, args[0], await readPassword());
  if (key === 'user unlock') return unlock(store, args[0]);
  if (key === 'user list') return listAccounts(store);
  if (key === 'user remove') return removeAccount(store, validName(args[0]));
  if (key === 'robot add') return addAccount(store, 'robot', args[0], generateRobotToken());
  if (key === 'robot remove') return removeAccount(store, ROBOT_PREFIX + validName(args[0]));
  if (key === 'repo visibility') return setVisibility(store, args[0], args[1]);
  if (key === 'repo describe') return describe(store, args[0], args[1]);
  throw new UsageError(`unknown command: ${positionals.join(' ')}\n${USAGE}`);
}

async function addAccount(store: DynamoMetadataStore, kind: Account['kind'], rawName: string | undefined, secret: string): Promise<void> {
  const name = (kind === 'robot' ? ROBOT_PREFIX : '') + validName(rawName);
  if (await store.getAccount(name)) throw new UsageError(`${name} exists already`);
  const repositories = (options.repo ?? []).map((pattern) => {
    if (!repositoryPattern.safeParse(pattern).success) throw new UsageError(`not a repository pattern: ${pattern}`);
    return pattern;
  });
  const account: Account = {
    name,
    kind,
    role: validRole(options.role),
    repositories,
    passwordHash: await hashPassword(secret),
    // Not 1: a re-created name must not revive refresh tokens issued to the account it replaces.
    credentialVersion: Date.now(),
    createdAt: Date.now(),
  };
  await store.putAccount(account);
  console.log(`added ${kind} ${name} (${account.role}${repositories.length ? ` on ${repositories.join(', ')}` : ' on all repositories'})`);
  if (kind === 'robot') console.log(`username: ${name}\ntoken:    ${secret}\n(shown once: keep it now)`);
}

async function changePassword(store: DynamoMetadataStore, rawName: string | undefined, password: string): Promise<void> {
  const account = await store.getAccount(validName(rawName));
  if (!account || account.kind !== 'user') throw new UsageError(`no such user: ${rawName}`);
  await store.putAccount({ ...account, passwordHash: await hashPassword(password), credentialVersion: account.credentialVersion + 1 });
  console.log(`password of ${account.name} changed; its refresh tokens no longer work`);
}

async function unlock(store: DynamoMetadataStore, rawName: string | undefined): Promise<void> {
  const account = await store.getAccount(validName(rawName));
  if (!account || account.kind !== 'user') throw new UsageError(`no such user: ${rawName}`);
  const sources = await store.clearLoginFailures(account.name);
  console.log(`unlocked ${account.name} (failed logins forgotten from ${sources} address${sources === 1 ? '' : 'es'})`);
}

async function listAccounts(store: DynamoMetadataStore): Promise<void> {
  for (const a of await store.listAccounts()) {
    console.log(`${a.name}\t${a.kind}\t${a.role}\t${a.repositories.length ? a.repositories.join(',') : '*'}`);
  }
}

async function removeAccount(store: DynamoMetadataStore, name: string): Promise<void> {
  if (!(await store.deleteAccount(name))) throw new UsageError(`no such account: ${name}`);
  console.log(`removed ${name}`);
}

async function setVisibility(store: DynamoMetadataStore, repository: string | undefined, visibility: string | undefined): Promise<void> {
  if (visibility !== 'public' && visibility !== 'private') throw new UsageError('visibility is public or private');
  await store.setVisibility(validRepository(repository), visibility);
  console.log(`${repository} is ${visibility}`);
}

async function describe(store: DynamoMetadataStore, repository: string | undefined, text: string | undefined): Promise<void> {
  if (text === undefined || text.length > 300) throw new UsageError('give the description as one argument of at most 300 characters');
  await store.setDescription(validRepository(repository), text);
  console.log(`${repository}: ${text}`);
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
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (password.length < 8) throw new UsageError('passwords have at least 8 characters');
  return password;
}

/** The table of a deployed stage, or the one a running `npm start` serves from BERTH_DATA_DIR. */
async function openStore(): Promise<DynamoMetadataStore> {
  if (options.stage) {
    const region = options.region ?? process.env.AWS_REGION ?? 'us-east-1';
    const table = `berth-${options.stage}`;
    return new DynamoMetadataStore(createDynamoClient({ table, region }), table);
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
  return new DynamoMetadataStore(createDynamoClient(settings), settings.table);
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
