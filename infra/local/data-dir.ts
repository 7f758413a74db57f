/** The lock of a data folder: one server (or `npx berth` on the native journal) at a time. */
import { randomUUID } from 'node:crypto';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Thrown when another live process serves the data folder. */
export class DataDirInUse extends Error {
  constructor(dataDir: string, pid: number) {
    super(`the data folder ${dataDir} is in use by another running Berth server (pid ${pid}): stop it, or set BERTH_DATA_DIR to another folder`);
  }
}

/** How long a lock holding no PID counts as held (written by something else, mid-write) before it is stale. */
const UNREADABLE_HELD_MS = 2000;

/**
 * Takes `<dataDir>/server.lock` (the holder's PID) for this process and returns its release. The
 * embedded DynamoDB's files and the native store's journal serve one process at a time: a second server on them would start,
 * overwrite endpoints.json, and fail on its first request with "Database is closed". The lock
 * appears whole or not at all (a file of this process's PID hard-linked into place, which fails if
 * one is there). A lock whose process is gone (or is this one: a container's PID 1 again) is stale
 * and taken over (see removeStale); one with no PID in it is held for {@link UNREADABLE_HELD_MS}, then stale.
 * @throws DataDirInUse when a live process holds the lock.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = join(dataDir, 'server.lock');
  const mine = join(dataDir, `server.lock.${process.pid}.${randomUUID()}`);
  await writeFile(mine, String(process.pid), { flag: 'wx' });
  try {
    const since = Date.now();
    for (;;) {
      try {
        await link(mine, file);
        return () => rm(file, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = Number((await readLock(file))?.trim());
      if (isHeld(holder)) throw new DataDirInUse(dataDir, holder);
      if (!(holder > 0) && Date.now() - since < UNREADABLE_HELD_MS) {
        await sleep(50);
        continue;
      }
      await removeStale(file, mine);
    }
  } finally {
    await rm(mine, { force: true });
  }
}

/**
 * Removes the lock `file` if it is still stale, under `<file>.takeover` (`mine`, this process's PID
 * file, hard-linked there): the only place a lock is removed that is not the remover's own, so two
 * processes that both found it stale cannot remove the one a third linked meanwhile. A takeover
 * whose process is gone (killed in these few steps) is removed.
 */
async function removeStale(file: string, mine: string): Promise<void> {
  const takeover = `${file}.takeover`;
  try {
    await link(mine, takeover);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (isAbandoned(await readLock(takeover))) await rm(takeover, { force: true });
    await sleep(10);
    return;
  }
  try {
    // Gone meanwhile: not removed, as a lock linked since would be another's.
    if (isAbandoned(await readLock(file))) await rm(file, { force: true });
  } finally {
    await rm(takeover, { force: true });
  }
}

/** The text of a lock file; undefined when there is none. */
function readLock(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch(() => undefined);
}

/** Whether a lock of text `text` is there and no other live process's. */
function isAbandoned(text: string | undefined): boolean {
  return text !== undefined && !isHeld(Number(text.trim()));
}

/** Whether `pid` (of a lock) is another live process's. */
function isHeld(pid: number): boolean {
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && isRunning(pid);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
