/**
 * The data folder's lock (infra/local/data-dir.ts) is exclusive: of processes taking it at the same
 * moment exactly one gets it, also when the lock left there is a dead process's.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { run, runOk } from '../e2e/helpers.js';

test('of 8 processes taking the lock at once, in each of 6 rounds, exactly one wins (the first round over a dead process\'s lock)', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-lock-'));
  try {
    const dead = await runOk(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    await writeFile(join(dataDir, 'server.lock'), dead.stdout);
    const rounds = 6;
    const start = Date.now() + 6000;
    const contenders = await Promise.all(
      Array.from({ length: 8 }, () => run(process.execPath, ['--import', 'tsx', 'test/cli/lock-holder.ts', dataDir, String(start), String(rounds)], { timeoutMs: 60_000 })),
    );
    for (const contender of contenders) assert.equal(contender.code, 0, contender.output);
    const lines = contenders.flatMap((contender) => contender.stdout.trim().split('\n'));
    for (let round = 0; round < rounds; round++) {
      assert.equal(lines.filter((line) => line === `won ${round}`).length, 1, `round ${round}: ${lines.filter((line) => line.endsWith(` ${round}`)).join(', ')}`);
      assert.equal(lines.filter((line) => line === `in use ${round}`).length, 7, `round ${round}`);
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
