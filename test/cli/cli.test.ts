/**
 * `npx berth` and `npm start` as a person meets them, run as child processes: help and version,
 * mistakes answered with one line and no stack trace, and warnings where the CLI would otherwise
 * silently do something that has no effect (accounts on a registry without logins, visibility of
 * a repository nothing was pushed to).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startEmulators } from '../../infra/local/emulators.js';
import type { RunResult } from '../e2e/helpers.js';
import { berth, start } from '../support/cli.js';
import { startBackends, type Backends, metadataOf, type Metadata } from '../support/stack.js';

let backends: Backends;
let store: Metadata;
/** A data folder for `npm start` runs that must fail before serving anything. */
let scratch: string;

before(async () => {
  // BERTH_AUTH=off, as `npm start` has it by default.
  backends = await startBackends();
  store = metadataOf(backends);
  scratch = await mkdtemp(join(tmpdir(), 'berth-cli-'));
});
after(async () => {
  await backends.stop();
  await rm(scratch, { recursive: true, force: true });
});

const cli = (args: string[], input?: string) => berth(args, { dataDir: backends.dataDir, input });

/** Asserts that a failed run said what is wrong in one `berth: …` line on stderr, without a stack trace. */
function oneLine(result: RunResult, exitCode: number, pattern: RegExp): void {
  assert.equal(result.code, exitCode, result.output);
  assert.match(result.stderr, /^berth: [^\n]+\n$/, `one line: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.output, /\n\s+at |node:internal|ERR_/, 'no stack trace or error code');
}

test('npx berth --version, --help, help; an unknown option, a missing value or an unknown command: one line, exit 2', async () => {
  const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
  const printed = await berth(['--version']);
  assert.equal(printed.code, 0, printed.output);
  assert.equal(printed.stdout, `berth ${version}\n`);
  for (const args of [['--help'], ['help']]) {
    const help = await berth(args);
    assert.equal(help.code, 0, help.output);
    assert.match(help.stdout, /^usage:\n/);
    assert.match(help.stdout, /berth user unlock <name>/);
  }
  oneLine(await berth(['--bogus']), 2, /^berth: unknown option --bogus \(see berth --help\)\n$/);
  oneLine(await berth(['user', 'add', 'x', '--role']), 2, /--role/);
  oneLine(await berth(['frobnicate', 'now']), 2, /^berth: unknown command: frobnicate now \(see berth --help\)\n$/);
});

test('npx berth user add on a registry that does not require logins: added, with a warning saying so', async () => {
  const added = await cli(['user', 'add', 'alice', '--password-stdin', '--role', 'reader'], 'a-long-password\n');
  assert.equal(added.code, 0, added.output);
  assert.match(added.stdout, /^added user alice/);
  assert.match(added.stderr, /^berth: warning: the registry on .* does not require logins \(BERTH_AUTH=off\): anyone can pull, push and delete without an account, and docker login accepts any password; restart it with BERTH_AUTH=required\n$/);
  assert.ok(await store.getAccount('alice'));
});

test('npx berth repo visibility: without a value prints it; setting it where nothing was pushed warns', async () => {
  await store.touchRepository('team/app', Date.now());
  const shown = await cli(['repo', 'visibility', 'team/app']);
  assert.equal(shown.code, 0, shown.output);
  assert.equal(shown.stdout, 'team/app is private\n');
  const set = await cli(['repo', 'visibility', 'team/app', 'public']);
  assert.equal(set.stdout, 'team/app is public\n');
  assert.doesNotMatch(set.stderr, /nothing has been pushed/);
  assert.equal((await cli(['repo', 'visibility', 'team/app'])).stdout, 'team/app is public\n');
  const typo = await cli(['repo', 'visibility', 'team/apq', 'public']);
  assert.equal(typo.code, 0, typo.output);
  assert.match(typo.stderr, /^berth: warning: nothing has been pushed to team\/apq yet; it will be public when something is$/m);
  assert.equal((await cli(['repo', 'visibility', 'team/apq'])).stdout, 'team/apq is public (nothing pushed there yet)\n');
  oneLine(await cli(['repo', 'visibility', 'team/app', 'maybe']), 2, /public or private/);
});

test('npm start -- --help prints the usage; an unknown argument or an invalid variable: one line, exit 2', async () => {
  const env = { BERTH_DATA_DIR: scratch, HOST: '127.0.0.1', PORT: '0' };
  const help = await start(['--help'], env);
  assert.equal(help.code, 0, help.output);
  assert.match(help.stdout, /^usage: npm start/);
  assert.match(help.stdout, /BERTH_AUTH/);
  oneLine(await start(['--verbose'], env), 2, /^berth: unknown argument --verbose/);
  oneLine(await start([], { ...env, BERTH_PART_SIZE: 'huge' }), 2, /^berth: invalid configuration: BERTH_PART_SIZE: /);
  oneLine(await start([], { ...env, PORT: 'fifty' }), 2, /^berth: invalid configuration: PORT: not a port number: fifty\n$/);
  oneLine(await start([], { ...env, BERTH_BODY_IDLE_TIMEOUT: 'soon' }), 2, /^berth: invalid configuration: BERTH_BODY_IDLE_TIMEOUT: not a positive number of seconds: soon\n$/);
});

test('npm start on a data folder it cannot make: one line naming it, exit 2', async () => {
  // A folder inside a file: ENOTDIR for root and anyone else alike.
  const file = join(scratch, 'a-file');
  await writeFile(file, 'not a folder\n');
  const result = await start([], { BERTH_DATA_DIR: join(file, 'berth'), HOST: '127.0.0.1', PORT: '0' });
  const folder = join(file, 'berth').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  oneLine(result, 2, new RegExp(`^berth: cannot use the data folder ${folder}: ENOTDIR on ${folder}; set BERTH_DATA_DIR to a folder this user can write`));
});

test('npm start on a port in use: one line, exit 1', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const { port } = taken.address() as AddressInfo;
  try {
    const result = await start([], { BERTH_DATA_DIR: scratch, HOST: '127.0.0.1', PORT: String(port) });
    oneLine(result, 1, new RegExp(`^berth: cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use`));
  } finally {
    taken.close();
  }
});

test('npm start on a data folder another running server uses: one line, exit 1, endpoints.json untouched', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-cli-'));
  // This test process serves the folder, as another `npm start` would.
  const running = await startEmulators(dataDir);
  try {
    const endpoints = await readFile(join(dataDir, 'endpoints.json'), 'utf8');
    const result = await start([], { BERTH_DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0' });
    oneLine(result, 1, new RegExp(`^berth: the data folder .* is in use by another running Berth server \\(pid ${process.pid}\\)`));
    assert.equal(await readFile(join(dataDir, 'endpoints.json'), 'utf8'), endpoints, 'the running server stays reachable for the CLI');
  } finally {
    await running.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
