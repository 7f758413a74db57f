/**
 * The web interface in a real browser: Debian's chromium driven by playwright-core against
 * `npm start` with BERTH_AUTH=required. Sign-in, search, a repository, an image and an index,
 * the copy button, an admin deleting a tag (gone from /v2/<name>/tags/list), sign-out; hostile
 * labels, annotations and descriptions rendered as text; axe-core; keyboard-only use; CSRF;
 * the login throttle; visibility. Screenshots of every page go to BERTH_SCREENSHOTS (default: a
 * temporary folder, printed); `BERTH_SCREENSHOTS=docs/screenshots` refreshes the README's.
 *
 * CHROMIUM overrides the browser (default /usr/bin/chromium).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { addUser, basic, cli, passwordOf, Pusher, startServer, type Digest, type Server } from './registry.js';

// A run must not rewrite tracked files; the README's pictures are refreshed on purpose.
const SCREENSHOTS = pathToFileURL(`${resolve(process.env.BERTH_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'berth-screenshots-')))}/`);
console.log(`# screenshots in ${fileURLToPath(SCREENSHOTS)}`);
/** Pages stay under this many bytes (issue: "pages under 100 KB"). */
const MAX_PAGE_BYTES = 100 * 1000;

const HOSTILE_SCRIPT = '<script>window.__pwned = "script"; alert(1)</script>';
const HOSTILE_ATTRIBUTE = '"><img src=x onerror="window.__pwned = \'img\'; alert(2)">';

let server: Server;
let browser: Browser;
let pusher: Pusher;
let app: { digest: Digest; size: number };
let multi: { digest: Digest; size: number };
let hostile: { digest: Digest; size: number };

before(async () => {
  server = await startServer();
  await addUser(server, 'root', 'admin');
  await addUser(server, 'alice', 'reader', ['web/app']);
  await addUser(server, 'victim', 'reader');
  pusher = new Pusher(server, 'root');
  app = await pusher.image('web/app', 'v1', {
    Entrypoint: ['/usr/bin/app'],
    Cmd: ['--listen', ':8080'],
    Env: ['PATH=/usr/bin', 'APP_MODE=production'],
    ExposedPorts: { '8080/tcp': {} },
    Labels: { 'org.opencontainers.image.description': 'The web app', 'org.opencontainers.image.source': 'https://example.com/app' },
  });
  await pusher.image('web/app', 'old', { Cmd: ['old'] });
  await pusher.referrer('web/app', app, 'application/spdx+json', { 'org.opencontainers.image.created': '2026-12-01T00:00:00Z' });
  multi = await pusher.index('web/multi', '1.0', ['amd64', 'arm64']);
  hostile = await pusher.image(
    'web/hostile',
    'latest',
    { Labels: { [HOSTILE_SCRIPT]: HOSTILE_ATTRIBUTE, note: HOSTILE_SCRIPT }, Env: [`X=${HOSTILE_ATTRIBUTE}`] },
    { annotations: { 'org.opencontainers.image.description': `${HOSTILE_SCRIPT}${HOSTILE_ATTRIBUTE}`, [HOSTILE_ATTRIBUTE]: HOSTILE_SCRIPT } },
  );
  // Text that costs most once escaped, as much as a config (1 MiB read at most) and manifest hold.
  const many = (n: number, value: string) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`key${i}`, value]));
  await pusher.image('web/hostile', 'huge', { Labels: many(100, '"'.repeat(3000)), Env: Array.from({ length: 100 }, () => `X=${'<'.repeat(2000)}`) }, { annotations: many(100, "'".repeat(3000)) });
  await pusher.image('web/public', 'stable', { Cmd: ['hello'] });
  await cli(server, ['repo', 'visibility', 'web/public', 'public']);
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  await mkdir(SCREENSHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh browser profile; `bypassCSP` lets a script that escaping failed to stop run (the hostile test). */
async function newPage(options: { bypassCSP?: boolean } = {}): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await browser.newContext({ baseURL: server.url, bypassCSP: options.bypassCSP ?? false, viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A page answered with an error status is logged as a failed resource: tests check statuses themselves.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
  });
  page.on('dialog', (dialog) => {
    // The interface's own confirmations are accepted; any other dialog is a script that ran.
    if (dialog.type() !== 'confirm') problems.push(`dialog: ${dialog.message()}`);
    void dialog.accept();
  });
  return { context, page, problems };
}

/** Opens `path`, checks the status, size and security headers, saves a screenshot as `shot`. */
async function open(page: Page, path: string, shot?: string, status = 200): Promise<void> {
  const response = await page.goto(path);
  assert.ok(response, path);
  assert.equal(response.status(), status, `${path}: ${(await response.text()).slice(0, 500)}`);
  await checkPage(page, response, shot);
}

async function checkPage(page: Page, response: NonNullable<Awaited<ReturnType<Page['goto']>>>, shot?: string): Promise<void> {
  const headers = response.headers();
  assert.match(headers['content-security-policy'] ?? '', /script-src 'self';/);
  assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.doesNotMatch(headers['content-security-policy'] ?? '', /unsafe-inline/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  const body = await response.body();
  assert.ok(body.length < MAX_PAGE_BYTES, `${response.url()} is ${body.length} bytes`);
  if (shot) await page.screenshot({ path: new URL(`${shot}.png`, SCREENSHOTS).pathname, fullPage: true });
}

async function signIn(page: Page, name: string, password = passwordOf(name)): Promise<void> {
  await open(page, '/login', name === 'root' ? 'login' : undefined);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
}

/** Runs axe-core (injected from its file) on the page; fails on serious or critical violations. */
async function checkAccessibility(page: Page, what: string): Promise<void> {
  const source = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  const violations = await page.evaluate(async () => {
    const result = await (window as unknown as { axe: { run: () => Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious, [], `${what}: ${JSON.stringify(serious, null, 1)}`);
}

test('anonymous visitors see public repositories only; private ones stay hidden, even by name', async () => {
  const { context, page, problems } = await newPage();
  await open(page, '/', 'repositories-anonymous');
  const names = await page.locator('main table tbody tr th, main table tbody tr td:first-child a').allTextContents();
  assert.deepEqual(names, ['web/public']);
  await open(page, '/r/web/app', undefined, 404);
  await open(page, '/r/web/app/-/manifests/v1', undefined, 404);
  await open(page, '/admin', undefined, 401);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a reader sees what it may pull: its repositories and the public ones', async () => {
  const { context, page } = await newPage();
  await signIn(page, 'alice');
  await open(page, '/?sort=name');
  assert.deepEqual(await page.locator('main tbody td:first-child a').allTextContents(), ['web/app', 'web/public']);
  await open(page, '/r/web/multi', undefined, 404);
  await open(page, '/admin', undefined, 403);
  assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0);
  await context.close();
});

test('sign in, search, open a repository and a tag, read layers, config, referrers and platforms, copy the pull command', async () => {
  const { context, page, problems } = await newPage();
  await signIn(page, 'root');
  await page.getByText('Signed in as').waitFor();
  await open(page, '/?sort=name', 'repositories');
  assert.deepEqual(await page.locator('main tbody td:first-child a').allTextContents(), ['web/app', 'web/hostile', 'web/multi', 'web/public']);
  await page.getByLabel('Search repositories').fill('mult');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/q=mult/);
  assert.deepEqual(await page.locator('main tbody td:first-child a').allTextContents(), ['web/multi']);
  await page.screenshot({ path: new URL('search.png', SCREENSHOTS).pathname, fullPage: true });
  await page.getByRole('link', { name: 'web/multi' }).click();
  await page.waitForURL(/\/r\/web\/multi$/);
  assert.match(await page.locator('main tbody tr').first().innerText(), /linux\/amd64, linux\/arm64/);
  await page.screenshot({ path: new URL('repository-index.png', SCREENSHOTS).pathname, fullPage: true });
  await page.getByRole('link', { name: '1.0', exact: true }).click();
  await page.waitForURL(/manifests\/1\.0$/);
  const platforms = page.locator('h2:text("Platforms") + table');
  assert.deepEqual(await platforms.locator('tbody td:first-child').allTextContents(), ['linux/amd64', 'linux/arm64']);
  await page.screenshot({ path: new URL('image-index.png', SCREENSHOTS).pathname, fullPage: true });
  await platforms.getByRole('link').first().click();
  await page.waitForURL(/manifests\/sha256/);
  assert.equal(await page.locator('h2:text("Layers") + table tbody tr').count(), 2);

  await open(page, '/r/web/app', 'repository');
  const row = page.locator('main tbody tr', { hasText: 'v1' });
  assert.match(await row.innerText(), /single platform/);
  assert.match(await page.locator('main > p').first().innerText(), /The web app/);
  await row.getByRole('button', { name: 'Copy pull command for web/app:v1' }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `docker pull ${server.host}/web/app:v1`);
  await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor();

  await row.getByRole('link', { name: 'v1' }).click();
  await page.waitForURL(/manifests\/v1$/);
  await page.screenshot({ path: new URL('image.png', SCREENSHOTS).pathname, fullPage: true });
  const layers = await page.locator('h2:text("Layers") + table tbody tr').allInnerTexts();
  assert.equal(layers.length, 2);
  assert.match(layers[0], /20\.0 KB/);
  const facts = await page.locator('h2:text("Config") + dl').innerText();
  for (const expected of ['/usr/bin/app', '--listen', '8080/tcp', 'APP_MODE=production', 'linux/amd64']) assert.ok(facts.includes(expected), `${expected} in ${facts}`);
  assert.match(await page.locator('h2:text("Labels") + table').innerText(), /org\.opencontainers\.image\.source\s+https:\/\/example\.com\/app/);
  assert.match(await page.locator('h2:text("Referrers") + table').innerText(), /application\/spdx\+json/);
  assert.match(await page.locator('dl.facts').first().innerText(), new RegExp(app.digest));
  assert.deepEqual(problems, []);
  await context.close();
});

test('an admin deletes a tag and it is gone from /v2/<name>/tags/list; settings, robots and the storage chart', async () => {
  const { context, page, problems } = await newPage();
  await signIn(page, 'root');
  assert.deepEqual((await pusher.tags('web/app')).sort(), ['old', 'v1']);
  await open(page, '/r/web/app');
  await page.getByRole('button', { name: 'Delete tag old' }).click();
  await page.waitForURL(/done=tag/);
  assert.match(await page.getByRole('status').first().innerText(), /The tag was deleted/);
  assert.deepEqual(await pusher.tags('web/app'), ['v1']);

  await page.getByLabel('Visibility').selectOption('public');
  await page.getByLabel('Description').fill('Our web application');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.waitForURL(/done=settings/);
  const anonymous = await fetch(`${server.url}/v2/web/app/tags/list`);
  assert.equal(anonymous.status, 401, 'the distribution API still needs a token');
  const token = (await (await fetch(`${server.url}/token?service=${server.host}&scope=repository:web/app:pull`)).json()) as { token: string };
  const pulled = await fetch(`${server.url}/v2/web/app/tags/list`, { headers: { Authorization: `Bearer ${token.token}` } });
  assert.equal(pulled.status, 200, 'public now: anonymous tokens may pull');
  assert.match(await page.locator('main > p').first().innerText(), /Our web application/);

  await open(page, '/admin', 'admin');
  const chart = page.locator('svg[role="img"]');
  assert.match((await chart.locator('text').allTextContents()).join(' '), /web\/multi/);
  await page.getByLabel('Name (becomes robot$name)').fill('ci');
  await page.getByLabel('Role', { exact: true }).first().selectOption('writer');
  await page.getByRole('button', { name: 'Create robot' }).click();
  await page.waitForLoadState();
  const robotToken = await page.locator('#robot-token').innerText();
  assert.match(robotToken, /^berth_/);
  await page.screenshot({ path: new URL('admin-robot.png', SCREENSHOTS).pathname, fullPage: true });
  const issued = await fetch(`${server.url}/token?service=${server.host}&scope=repository:web/app:push`, { headers: basic('robot$ci', robotToken) });
  assert.equal(issued.status, 200, 'the robot token works with the token service');
  await open(page, '/admin');
  assert.equal(await page.locator('#robot-token').count(), 0, 'the admin page does not show the token again (no token in any URL)');
  assert.doesNotMatch(page.url(), /berth_/);

  await page.goto('/login');
  await page.getByLabel('User name').fill('robot$ci');
  await page.getByLabel('Password').fill(robotToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  assert.match(await page.getByRole('alert').innerText(), /robot accounts cannot sign in/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('an admin makes tags immutable (a delete is then refused) and adds and removes a retention rule', async () => {
  const { context, page, problems } = await newPage();
  await signIn(page, 'root');
  await open(page, '/admin');
  await page.locator('#immutable-pattern').fill('web/app');
  await page.locator('#immutable-except').fill('latest');
  await page.getByRole('button', { name: 'Make tags immutable' }).click();
  await page.getByRole('status').filter({ hasText: 'Tags of web/app are immutable' }).waitFor();
  await open(page, '/r/web/app');
  await page.getByRole('button', { name: 'Delete tag v1' }).click();
  await page.waitForLoadState();
  assert.match(await page.getByRole('alert').innerText(), /tag v1 of web\/app is immutable/);
  assert.ok((await pusher.tags('web/app')).includes('v1'), 'the immutable tag stays');

  await open(page, '/admin');
  await page.locator('#retention-pattern').fill('web/*');
  await page.getByLabel('Rule').selectOption('keepLast');
  await page.locator('#retention-value').fill('5');
  await page.locator('#retention-tags').fill('v*');
  await page.getByRole('button', { name: 'Add retention rule' }).click();
  await page.getByRole('status').filter({ hasText: 'Added retention rule' }).waitFor();
  assert.match(await page.locator('h2:text("Retention rules") + table').innerText(), /web\/\*\s+keep last 5 tags v\*/);
  await page.screenshot({ path: new URL('admin-rules.png', SCREENSHOTS).pathname, fullPage: true });
  await page.getByRole('button', { name: /^Remove retention rule/ }).click();
  await page.getByRole('status').filter({ hasText: 'Removed retention rule' }).waitFor();
  await page.getByRole('button', { name: 'Turn off immutable tags of web/app' }).click();
  await page.getByRole('status').filter({ hasText: 'mutable again' }).waitFor();
  assert.equal(await page.getByText('No rules.').count(), 2);
  await page.locator('#retention-pattern').fill('web/*');
  await page.locator('#retention-value').fill('many');
  await page.getByRole('button', { name: 'Add retention rule' }).evaluate((button) => (button.closest('form') as HTMLFormElement).noValidate = true);
  await page.getByRole('button', { name: 'Add retention rule' }).click();
  assert.match(await page.getByRole('alert').innerText(), /whole number/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('hostile labels, annotations and descriptions render as text and no script of theirs runs (CSP bypassed)', async () => {
  const { context, page, problems } = await newPage({ bypassCSP: true });
  // The detector itself: with the CSP bypassed, markup like the payload does run.
  await page.setContent(`<p>control</p>${HOSTILE_ATTRIBUTE}`);
  await page.waitForFunction(() => (window as unknown as { __pwned?: string }).__pwned === 'img');
  assert.equal(problems.filter((p) => p.startsWith('dialog')).length, 1, 'the control payload raised its alert');
  problems.length = 0;
  await signIn(page, 'root');
  for (const [path, shot] of [
    ['/?q=hostile', undefined],
    ['/r/web/hostile', 'hostile-repository'],
    ['/r/web/hostile/-/manifests/latest', 'hostile-image'],
    [`/r/web/hostile/-/manifests/${hostile.digest}`, undefined],
  ] as const) {
    await open(page, path, shot);
    const text = await page.locator('main').innerText();
    assert.ok(text.includes(HOSTILE_SCRIPT), `${path} shows the script payload as text`);
    if (path.includes('manifests')) assert.ok(text.includes(HOSTILE_ATTRIBUTE), `${path} shows the attribute payload as text`);
    assert.equal(await page.locator('img').count(), 0, `${path}: no img element was injected`);
    assert.deepEqual(await page.locator('script').evaluateAll((scripts) => scripts.map((s) => s.getAttribute('src'))), ['/-/app.js']);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned), undefined, `${path}: a payload ran`);
  }
  // The most expensive text a push can carry is cut to keep the page under 100 KB (open checks the size).
  await open(page, '/r/web/hostile/-/manifests/huge');
  assert.match(await page.locator('h2:text("Config") + dl').innerText(), /X=<+…/);
  assert.match(await page.locator('h2:text("Labels") + table').innerText(), /…/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('axe-core finds no serious or critical violations on any page', async () => {
  const { context, page } = await newPage({ bypassCSP: true });
  await open(page, '/');
  await checkAccessibility(page, 'repositories (anonymous)');
  await open(page, '/login');
  await checkAccessibility(page, 'login');
  await signIn(page, 'root');
  for (const path of ['/', '/?q=web&sort=size', '/r/web/app', '/r/web/app/-/manifests/v1', '/r/web/multi/-/manifests/1.0', '/admin', '/r/nothing-here']) {
    await page.goto(path);
    await checkAccessibility(page, path);
  }
  await context.close();
});

test('keyboard only: sign in, search, open a repository and a tag, sign out', async () => {
  const { context, page, problems } = await newPage();
  await open(page, '/');
  const tabTo = async (description: string, matches: (element: { tag: string; text: string; label: string }) => boolean) => {
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const element = document.activeElement as HTMLElement | null;
        return { tag: element?.tagName ?? '', text: element?.innerText?.trim() ?? '', label: element?.getAttribute('aria-label') ?? element?.id ?? '' };
      });
      if (matches(focused)) return;
    }
    assert.fail(`Tab never reached ${description}`);
  };
  await tabTo('the skip link', (e) => e.text === 'Skip to content');
  await tabTo('Sign in', (e) => e.tag === 'A' && e.text === 'Sign in');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/login$/);
  await tabTo('the user name', (e) => e.label === 'name');
  await page.keyboard.type('root');
  await page.keyboard.press('Tab');
  await page.keyboard.type(passwordOf('root'));
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/$/);
  await page.getByText('Signed in as').waitFor();
  await tabTo('the search box', (e) => e.label === 'q');
  await page.keyboard.type('app');
  await page.keyboard.press('Enter');
  await page.waitForURL(/q=app/);
  await tabTo('web/app', (e) => e.tag === 'A' && e.text === 'web/app');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/r\/web\/app$/);
  await tabTo('the tag v1', (e) => e.tag === 'A' && e.text === 'v1');
  await page.keyboard.press('Enter');
  await page.waitForURL(/manifests\/v1$/);
  await tabTo('Sign out', (e) => e.tag === 'BUTTON' && e.text === 'Sign out');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/$/);
  await page.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

test('forms without the CSRF token, or from another site, are refused; sign-out ends the session', async () => {
  const { context, page } = await newPage();
  await signIn(page, 'root');
  await pusher.image('web/app', 'keep');
  const csrf = await page.locator('input[name="csrf"]').first().inputValue();
  const post = (form: Record<string, string>, headers: Record<string, string> = {}) => context.request.post('/r/web/app/-/delete', { form, headers, maxRedirects: 0 });
  assert.equal((await post({ reference: 'keep' })).status(), 403, 'no token');
  assert.equal((await post({ reference: 'keep', csrf: 'x'.repeat(csrf.length) })).status(), 403, 'a wrong token');
  assert.equal((await post({ reference: 'keep', csrf }, { Origin: 'http://evil.example' })).status(), 403, 'another origin');
  assert.ok((await pusher.tags('web/app')).includes('keep'), 'nothing was deleted');
  assert.equal((await post({ reference: 'keep', csrf })).status(), 303, 'with the token it works');
  assert.ok(!(await pusher.tags('web/app')).includes('keep'));

  const [session] = (await context.cookies()).filter((c) => c.name === 'berth_session');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  await page.goto('/');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
  assert.equal((await context.cookies()).filter((c) => c.name === 'berth_session').length, 0);
  assert.equal((await context.request.get('/admin')).status(), 401);
  await context.close();
});

test('the login throttle applies to the sign-in form', async () => {
  const { context, page } = await newPage();
  for (let attempt = 1; attempt <= 6; attempt++) {
    await page.goto('/login');
    await page.getByLabel('User name').fill('victim');
    await page.getByLabel('Password').fill('wrong');
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.getByRole('button', { name: 'Sign in' }).click()]);
    assert.equal(response.status(), attempt <= 5 ? 401 : 429, `attempt ${attempt}`);
  }
  assert.match(await page.getByRole('alert').innerText(), /too many failed logins/);
  assert.ok(multi.digest);
  await context.close();
});
