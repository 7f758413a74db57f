/**
 * The web interface as deployed: `BERTH_EMULATE_LAMBDA=1 npm start` puts the emulated CloudFront
 * front door and API Gateway HTTP API before the bundled `api` Lambda, whose payload 2.0 events
 * carry cookies apart from the headers (both ways). Chromium signs in, reads a repository and an
 * image, deletes a tag and signs out through it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { addUser, passwordOf, Pusher, startServer, type Server } from './registry.js';

let server: Server;
let browser: Browser;
let pusher: Pusher;

before(async () => {
  server = await startServer({ BERTH_EMULATE_LAMBDA: '1' });
  await addUser(server, 'root', 'admin');
  pusher = new Pusher(server, 'root');
  await pusher.image('deployed/app', 'v1', { Cmd: ['serve'] });
  await pusher.image('deployed/app', 'v2', { Cmd: ['serve'] });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('through the emulated front door, HTTP API and Lambda: sign in, read, delete a tag, sign out', async () => {
  const context = await browser.newContext({ baseURL: server.url });
  const page = await context.newPage();
  const home = await page.goto('/');
  assert.equal(home?.status(), 200);
  assert.match(home?.headers().via ?? '', /CloudFront/, 'answered through the emulated front door');
  assert.equal(await page.locator('main tbody tr').count(), 0, 'anonymous: nothing public');
  await page.getByRole('navigation').getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('User name').fill('root');
  await page.getByLabel('Password').fill(passwordOf('root'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Signed in as').waitFor();
  await page.getByRole('link', { name: 'deployed/app' }).click();
  await page.getByRole('link', { name: 'v1', exact: true }).click();
  assert.equal(await page.locator('h2:text("Layers") + table tbody tr').count(), 2);
  await page.goBack();
  page.on('dialog', (dialog) => void dialog.accept());
  await page.getByRole('button', { name: 'Delete tag v1' }).click();
  await page.waitForURL(/done=tag/);
  assert.deepEqual(await pusher.tags('deployed/app'), ['v2']);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
  await context.close();
});
