/**
 * `docker search <registry>/<term>` with real docker: the description of an image built with
 * `LABEL org.opencontainers.image.description=…` shows up once it is pushed; with
 * `BERTH_AUTH=required`, a private repository appears only to logged-in users who may pull it
 * (not anonymously, not after `docker logout`), a public one to everybody.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { buildImage, Cleanup, describeFailure, Docker, RegistryProcess, RUN_ID, withRegistryLog } from './helpers.js';

const DESCRIPTION_LABEL = 'org.opencontainers.image.description';

const cleanup = new Cleanup();
let current: RegistryProcess | undefined;

after(() => cleanup.run());

const withLog = (body: () => Promise<void>) => withRegistryLog(() => current, body);

interface SearchRow {
  name: string;
  description: string;
  stars: string;
  line: string;
}

/**
 * `docker search <host>/<term>` as docker prints it (the default table, no flags), which must
 * succeed: its rows by repository name.
 */
async function search(docker: Docker, host: string, term: string): Promise<Map<string, SearchRow>> {
  const result = await docker.run(['search', `${host}/${term}`], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, describeFailure(result));
  const [header, ...lines] = result.stdout.split('\n').filter((line) => line.trim() !== '');
  assert.match(header ?? '', /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL/, describeFailure(result));
  // A tabwriter table: every column starts where its header does.
  const at = (column: string) => header.indexOf(column);
  const rows = new Map<string, SearchRow>();
  for (const line of lines) {
    const cell = (from: string, to: string) => line.slice(at(from), at(to)).trim();
    const row = { name: cell('NAME', 'DESCRIPTION'), description: cell('DESCRIPTION', 'STARS'), stars: cell('STARS', 'OFFICIAL'), line };
    rows.set(row.name, row);
  }
  return rows;
}

/** A description of at most 45 characters, which docker prints untruncated. */
function description(what: string): string {
  const text = `${what} ${RUN_ID}`;
  assert.ok(text.length <= 45);
  return text;
}

test('docker search prints the repository and the description from the image label', { timeout: 600_000 }, withLog(async () => {
  const registry = await RegistryProcess.start(cleanup);
  current = registry;
  const docker = await Docker.create(cleanup);

  const text = description('A tiny web server for demos');
  const web = `${registry.host}/demo/webserver:${RUN_ID}`;
  await buildImage(docker, cleanup, web, [{ 'www/index.html': `<h1>${RUN_ID}</h1>\n` }], { [DESCRIPTION_LABEL]: text });
  await docker.push(web);
  const tool = `${registry.host}/tools/cli:${RUN_ID}`;
  await buildImage(docker, cleanup, tool, [{ 'bin/cli': 'a tool\n' }]);
  await docker.push(tool);

  const found = await search(docker, registry.host, 'web');
  assert.deepEqual([...found.keys()], ['demo/webserver'], 'only the repository matching the term');
  const row = found.get('demo/webserver')!;
  assert.equal(row.description, text, row.line);
  assert.equal(row.stars, '0', row.line);
  assert.ok(registry.requests('GET', /^\/v1\/search$/, 200).length >= 1, 'docker asked /v1/search');

  // The term matches the description too, and the other repository by its own name.
  assert.deepEqual([...(await search(docker, registry.host, 'tiny')).keys()], ['demo/webserver']);
  const tools = await search(docker, registry.host, 'tools');
  assert.deepEqual([...tools.keys()], ['tools/cli']);
  assert.equal(tools.get('tools/cli')!.description, '', 'no label, no description');
  assert.equal((await search(docker, registry.host, `nothing-${randomBytes(4).toString('hex')}`)).size, 0);
  await registry.stop();
  current = undefined;
}));

test('with BERTH_AUTH=required a private repository appears only after docker login, a public one for everybody', { timeout: 600_000 }, withLog(async () => {
  const registry = await RegistryProcess.start(cleanup, { env: { BERTH_AUTH: 'required' } });
  current = registry;
  const alice = { name: 'alice', password: `alice-${randomBytes(12).toString('hex')}` };
  const carol = { name: 'carol', password: `carol-${randomBytes(12).toString('hex')}` };
  await registry.addUser(alice.name, alice.password, 'writer', ['team/*']);
  await registry.addUser(carol.name, carol.password, 'reader', ['other/*']);

  // alice pushes two repositories, both private.
  const pusher = await Docker.create(cleanup);
  const login = await pusher.login(registry.host, alice.name, alice.password);
  assert.equal(login.code, 0, describeFailure(login));
  const secretText = description('Private web app');
  const publicText = description('Public web app');
  const secret = `${registry.host}/team/secret-web:${RUN_ID}`;
  const open = `${registry.host}/team/open-web:${RUN_ID}`;
  await buildImage(pusher, cleanup, secret, [{ 'secret.txt': 'private\n' }], { [DESCRIPTION_LABEL]: secretText });
  await buildImage(pusher, cleanup, open, [{ 'open.txt': 'public\n' }], { [DESCRIPTION_LABEL]: publicText });
  await pusher.push(secret);
  await pusher.push(open);
  await pusher.ok(['logout', registry.host]);

  // Someone else's docker: nothing anonymously, both after docker login as alice, nothing after logout.
  const searcher = await Docker.create(cleanup);
  assert.equal((await search(searcher, registry.host, 'web')).size, 0, 'anonymous callers see no private repository');

  assert.equal((await searcher.login(registry.host, alice.name, alice.password)).code, 0);
  const loggedIn = await search(searcher, registry.host, 'web');
  assert.deepEqual([...loggedIn.keys()].sort(), ['team/open-web', 'team/secret-web']);
  assert.equal(loggedIn.get('team/secret-web')!.description, secretText);
  assert.equal(loggedIn.get('team/open-web')!.description, publicText);

  const logout = await searcher.ok(['logout', registry.host]);
  assert.match(logout.output, /Removing login credentials/);
  assert.equal((await search(searcher, registry.host, 'web')).size, 0, 'nothing private after docker logout');

  // One of them made public: everybody sees it (anonymous, and a user without rights on team/*),
  // the other stays hidden from them.
  await registry.berthOk(['repo', 'visibility', 'team/open-web', 'public']);
  const anonymous = await search(searcher, registry.host, 'web');
  assert.deepEqual([...anonymous.keys()], ['team/open-web']);
  assert.equal(anonymous.get('team/open-web')!.description, publicText);

  const other = await Docker.create(cleanup);
  assert.equal((await other.login(registry.host, carol.name, carol.password)).code, 0);
  assert.deepEqual([...(await search(other, registry.host, 'web')).keys()], ['team/open-web'], 'carol may pull only other/* and public repositories');
  await other.ok(['logout', registry.host]);

  assert.equal((await searcher.login(registry.host, alice.name, alice.password)).code, 0);
  assert.deepEqual([...(await search(searcher, registry.host, 'web')).keys()].sort(), ['team/open-web', 'team/secret-web']);
  await searcher.ok(['logout', registry.host]);
  await registry.stop();
  current = undefined;
}));
