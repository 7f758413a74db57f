/** The lock of a data folder: one server (or `npx berth` on the native journal) at a time. */
import { randomUUID } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
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
 * and taken over; one with no PID in it is held for {@link UNREADABLE_HELD_MS}, then stale.
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
      const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (!Number.isInteger(holder) || holder <= 0) {
        if (Date.now() - since < UNREADABLE_HELD_MS) {
          await sleep(50);
          continue;
        }
      } else if (holder !== process.pid && isRunning(holder)) throw new DataDirInUse(dataDir, holder);
      await removeStale(file, holder, dataDir);
    }
  } finally {
    await rm(mine, { force: true });
  }
}

/**
 * Removes the lock `file` found stale with `holder` in it, unless another process took it over
 * meanwhile: it is moved aside first, and put back when it is no longer that one.
 * @throws DataDirInUse when the lock moved aside was a live process's and could not be put back.
 */
async function removeStale(file: string, holder: number, dataDir: string): Promise<void> {
  const aside = `${file}.stale.${process.pid}.${randomUUID()}`;
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const moved = Number((await readFile(aside, 'utf8')).trim());
    if (moved === holder || !Number.isInteger(moved) || moved <= 0 || (moved !== process.pid && !isRunning(moved))) return;
    // Another process's fresh lock: back into place (it cannot be lost: link fails only if a lock is there).
    await link(aside, file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
    throw new DataDirInUse(dataDir, moved);
  } finally {
    await rm(aside, { force: true });
  }
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
