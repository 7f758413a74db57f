/**
 * The native metadata store (native-store.ts) lives in the `npm start` process that owns the data
 * folder; `npx berth` reaches it here: an HTTP endpoint on loopback only, `POST /` with
 * `{"method","args"}` and `Authorization: Bearer <secret>`, where the secret is random per start and
 * kept in `<dataDir>/metadata-secret` (mode 0600), readable only by the user who runs the server.
 * Answers: 200 `{"result"}`; 409 `{"error":"UploadConflict","current"}` (thrown again as
 * {@link UploadConflict}); 400 an unknown method; 401 a wrong secret; 500 `{"error","message"}`.
 * Byte strings and undefined travel as in the journal ({@link encodeJson}).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { UploadConflict, type AccountStore, type MetadataStore, type UploadSession } from '../../functions/storage/ports.js';
import { decodeJson, encodeJson, NativeMetadataStore } from './native-store.js';

type Store = MetadataStore & AccountStore;

/** The port methods a client may call: the native store's public methods. */
const METHODS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(NativeMetadataStore.prototype).filter((name) => name !== 'constructor'));

/** The file holding the endpoint's secret. */
const secretFile = (dataDir: string) => join(dataDir, 'metadata-secret');

/** A running endpoint: its URL (`http://127.0.0.1:<port>`) and its stop. */
export interface StoreEndpoint {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `store` on an ephemeral loopback port, with a new secret written to `<dataDir>/metadata-secret`.
 */
export async function serveStore(store: Store, dataDir: string): Promise<StoreEndpoint> {
  const secret = randomBytes(32).toString('base64url');
  // A new file (mode applies only on creation) renamed over any older one, which may be readable by others.
  const temporary = `${secretFile(dataDir)}.${process.pid}.tmp`;
  await rm(temporary, { force: true });
  await writeFile(temporary, secret, { mode: 0o600, flag: 'wx' });
  await rename(temporary, secretFile(dataDir));
  const expected = Buffer.from(`Bearer ${secret}`);
  const server = createServer((req, res) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (req.method !== 'POST' || given.length !== expected.length || !timingSafeEqual(given, expected)) return answer(res, 401, { error: 'Unauthorized' });
    void call(store, req).then(
      (result) => answer(res, 200, { result }),
      (error: unknown) =>
        error instanceof UploadConflict
          ? answer(res, 409, { error: 'UploadConflict', current: error.current })
          : answer(res, error instanceof BadCall ? 400 : 500, { error: (error as Error).name, message: (error as Error).message }),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A request naming no port method. */
class BadCall extends Error {}

async function call(store: Store, req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const { method, args } = decodeJson(Buffer.concat(chunks).toString('utf8')) as { method: string; args: unknown[] };
  if (!METHODS.has(method) || !Array.isArray(args)) throw new BadCall(`no such method: ${String(method)}`);
  return (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[method](...args);
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(encodeJson(body));
}

/**
 * A store whose every port method is a call to the endpoint at `url`, authorised by the secret
 * in `<dataDir>/metadata-secret`.
 * @throws Error when the secret cannot be read (not the server's user, or no server started here).
 */
export async function remoteStore(url: string, dataDir: string): Promise<Store> {
  const authorization = `Bearer ${(await readFile(secretFile(dataDir), 'utf8')).trim()}`;
  const invoke = async (method: string, args: unknown[]): Promise<unknown> => {
    const response = await fetch(url, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: encodeJson({ method, args }) }).catch(
      // The socket's error (ECONNREFUSED: the server stopped), rather than fetch's "fetch failed".
      (error: Error) => {
        throw error.cause ?? error;
      },
    );
    const body = decodeJson(await response.text()) as { result?: unknown; error?: string; message?: string; current?: UploadSession };
    if (response.status === 409) throw new UploadConflict(body.current);
    if (!response.ok) throw new Error(`the registry's metadata store answered ${response.status}: ${body.message ?? body.error}`);
    return body.result;
  };
  return Object.fromEntries([...METHODS].map((method) => [method, (...args: unknown[]) => invoke(method, args)])) as unknown as Store;
}
