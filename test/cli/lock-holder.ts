/**
 * A contender for the lock test: takes the lock of the data folder argv[2] at each of argv[4]
 * rounds, the k-th at the time argv[3] + k × 500 ms (all contenders at once), prints `won <k>` or
 * `in use <k>`, and gives a lock it won back 300 ms later.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DataDirInUse, lockDataDir } from '../../infra/local/data-dir.js';

const [dataDir, start, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
for (let round = 0; round < rounds; round++) {
  const at = start + round * 500;
  await sleep(at - Date.now() - 5);
  while (Date.now() < at); // the last milliseconds busy, so that all contenders start together
  try {
    const unlock = await lockDataDir(dataDir);
    process.stdout.write(`won ${round}\n`);
    await sleep(300);
    await unlock();
  } catch (error) {
    if (!(error instanceof DataDirInUse)) throw error;
    process.stdout.write(`in use ${round}\n`);
  }
}
