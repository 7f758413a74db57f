/**
 * `npm start` stopped as a container runtime or a process supervisor stops it: a signal to npm's
 * own PID. The server, its embedded stores and every process under npm are gone within 10 s, the
 * port is free, and a request in flight ends rather than hanging.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, ROOT, sleep, waitFor } from '../e2e/helpers.js';

/** Every process under `pid`, recursively. */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    // ps exits 1 when there are none.
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portFree(port: number): Promise<boolean> {
  const probe = createServer();
  const free = await new Promise<boolean>((resolve) => probe.once('error', () => resolve(false)).listen(port, '127.0.0.1', () => resolve(true)));
  if (free) await new Promise((resolve) => probe.close(resolve));
  return free;
}

/** A PATCH that sends a few bytes and then waits: a request in flight when the signal arrives. */
async function stalledPatch(url: string): Promise<{ ended: Promise<string> }> {
  const started = await fetch(`${url}/v2/stop/test/blobs/uploads/`, { method: 'POST' });
  assert.equal(started.status, 202);
  const location = new URL(started.headers.get('location')!, url);
  const ended = new Promise<string>((resolve) => {
    const req = request(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': '1000' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(`answered ${res.statusCode}`)).on('error', () => resolve('cut off'));
    });
    req.on('error', () => resolve('cut off'));
    req.write(Buffer.alloc(10));
  });
  return { ended };
}

const CASES: Array<[NodeJS.Signals, string, Record<string, string>]> = [
  ['SIGTERM', 'npm start', {}],
  ['SIGINT', 'npm start', {}],
  ['SIGTERM', 'BERTH_EMULATE_LAMBDA=1 npm start', { BERTH_EMULATE_LAMBDA: '1' }],
];

for (const [signal, what, mode] of CASES) {
  test(`${signal} to npm's PID stops ${what} within 10 s: no process left, the port free, the request in flight ended`, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-stop-'));
    const port = await freePort();
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', BERTH_DATA_DIR: dataDir, BERTH_AUTH: 'off', BERTH_S3_ENDPOINT: '', BERTH_DYNAMODB_ENDPOINT: '', ...mode },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    npm.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    npm.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
    const exited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
    let left: number[] = [];
    try {
      await waitFor('npm start to listen', () => {
        if (npm.exitCode !== null) throw new Error(`npm start exited ${npm.exitCode}:\n${output}`);
        return output.includes('registry listening');
      }, 60_000);
      const inFlight = await stalledPatch(`http://127.0.0.1:${port}`);
      await sleep(200);
      left = descendants(npm.pid!);
      assert.ok(left.length > 0, 'npm runs the server as its child');
      const sent = Date.now();
      process.kill(npm.pid!, signal);
      const ended = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      assert.ok(ended, `npm start still runs 10 s after ${signal}:\n${output}`);
      await waitFor('every process under npm to end', () => left.every((pid) => !alive(pid)), Math.max(0, 10_000 - (Date.now() - sent)), 50);
      assert.ok(await portFree(port), `port ${port} is free`);
      assert.match(await inFlight.ended, /^(answered \d+|cut off)$/);
    } finally {
      for (const pid of [npm.pid!, ...left]) if (alive(pid)) process.kill(pid, 'SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
}
