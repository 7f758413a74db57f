/** The file store of `npm start` for tests: a fresh folder, its presigned URLs answered on a loopback port. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlobStore } from '../../functions/storage/files.js';
import type { BlobStore } from '../../functions/storage/ports.js';
import { serveObjectUrl } from '../../infra/local/object-urls.js';

/** A store under test and its release. */
export interface Subject {
  store: BlobStore;
  stop(): Promise<void>;
}

/** The file store in a fresh folder, its presigned URLs answered by a server on a loopback port. */
export async function fileSubject(): Promise<Subject & { files: FileBlobStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-files-'));
  let origin = '';
  const files = new FileBlobStore(join(dir, 'blobs'), { key: { version: 1, secret: randomBytes(32) }, origin: () => origin });
  const server: Server = createServer((req, res) => void serveObjectUrl(files, req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    store: files,
    files,
    dir: join(dir, 'blobs'),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

