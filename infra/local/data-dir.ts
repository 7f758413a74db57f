/** The lock of a data folder: one server (or `npx berth` on the native journal) at a time. */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Thrown when another live process serves the data folder. */
export class DataDirInUse extends Error {
  constructor(dataDir: string, pid: number) {
    super(`the data folder ${dataDir} is in use by another running Berth server (pid ${pid}): stop it, or set BERTH_DATA_DIR to another folder`);
  }
}

/**
 * Takes `<dataDir>/server.lock` (the holder's PID) for this process and returns its release. The
 * embedded DynamoDB's files and the native store's journal serve one process at a time: a second server on them would start,
 * overwrite endpoints.json, and fail on its first request with "Database is closed". A lock whose
 * process is gone (or is this one: a container's PID 1 again) is stale and taken over.
 * @throws DataDirInUse when a live process holds the lock.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = join(dataDir, 'server.lock');
  for (;;) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isRunning(holder)) throw new DataDirInUse(dataDir, holder);
    await rm(file, { force: true });
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
