/**
 * The presigned URLs of the file store (functions/storage/files.ts), answered on the local server's
 * own port as S3 answers presigned URLs, since their users treat them as S3: docker and other
 * clients following a blob GET's `307`, and `npx berth push` putting the parts of a direct upload.
 * GET and HEAD of an object (`Range` read as S3 reads it, `ETag`, `Last-Modified`); PUT of a part
 * (the part's `ETag` in the answer); S3's XML errors: 403 `SignatureDoesNotMatch` or `AccessDenied`
 * ("Request has expired"), 404 `NoSuchKey` or `NoSuchUpload`, 411 `MissingContentLength`,
 * 416 `InvalidRange`, 400 `EntityTooLarge` (a part's `Content-Length` over 5 GiB, refused before its body is read) (source: Amazon S3 API Reference, GetObject, UploadPart, "Error responses").
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { FileBlobStore, MAX_OBJECT_BYTES, ObjectError } from '../../functions/storage/files.js';
import { s3Range } from './emulators.js';

/** Answers one request for a presigned URL of `store`; returns the status sent. */
export async function serveObjectUrl(store: FileBlobStore, req: IncomingMessage, res: ServerResponse): Promise<number> {
  const url = new URL(req.url ?? '/', 'http://local');
  const method = req.method ?? 'GET';
  try {
    const signed = store.checkSigned(method, url.pathname, url.searchParams);
    if (signed.kind === 'part') return await putPart(store, signed, req, res);
    return await getObject(store, signed.key, method, req.headers.range, res);
  } catch (error) {
    if (!res.headersSent) return sendError(res, req, error);
    res.destroy();
    return res.statusCode;
  }
}

async function getObject(store: FileBlobStore, key: string, method: string, rangeHeader: string | undefined, res: ServerResponse): Promise<number> {
  const object = await store.stat(key);
  if (!object) throw new ObjectError('NoSuchKey', 'The specified key does not exist.', 404);
  const range = rangeHeader === undefined ? undefined : s3Range(rangeHeader, object.size);
  if (range === 'unsatisfiable') throw new ObjectError('InvalidRange', 'The requested range is not satisfiable', 416);
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(range ? range.end - range.start + 1 : object.size),
    ETag: object.etag,
    'Last-Modified': new Date(object.lastModified).toUTCString(),
    'Accept-Ranges': 'bytes',
    ...(range ? { 'Content-Range': `bytes ${range.start}-${range.end}/${object.size}` } : {}),
  };
  const status = range ? 206 : 200;
  if (method === 'HEAD') {
    res.writeHead(status, headers).end();
    return status;
  }
  // Only the bytes of the file the headers describe (a put in between fails the read, 412 → retried by the client).
  const body = await store.open(key, range ?? undefined, object.etag);
  res.writeHead(status, headers);
  await pipeline(body, res);
  return status;
}

async function putPart(store: FileBlobStore, part: { key: string; uploadId: string; partNumber: number }, req: IncomingMessage, res: ServerResponse): Promise<number> {
  const length = req.headers['content-length'];
  if (length === undefined || !/^\d+$/.test(length)) throw new ObjectError('MissingContentLength', 'You must provide the Content-Length HTTP header.', 411);
  // Refused before a byte is read or stored, as S3 does (UploadPart: a part has at most 5 GiB).
  if (Number(length) > MAX_OBJECT_BYTES) throw new ObjectError('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', 400);
  const etag = await store.writePart(part.key, part.uploadId, part.partNumber, exactly(req, Number(length)));
  res.writeHead(200, { ETag: etag, 'Content-Length': '0' }).end();
  return 200;
}

/** The request body, failing (before the part is stored) when it ends short of `length` bytes. */
async function* exactly(body: AsyncIterable<Buffer>, length: number): AsyncGenerator<Buffer> {
  let received = 0;
  for await (const chunk of body) {
    received += chunk.length;
    if (received > length) break;
    yield chunk;
  }
  if (received !== length) throw new ObjectError('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.', 400);
}

function sendError(res: ServerResponse, req: IncomingMessage, error: unknown): number {
  const known = error instanceof ObjectError;
  const status = known ? error.$metadata.httpStatusCode : 500;
  const code = known ? error.name : 'InternalError';
  const message = known ? error.message : 'We encountered an internal error. Please try again.';
  if (!known) console.error('berth: presigned URL request failed:', error);
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`;
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': String(Buffer.byteLength(xml)), ...(req.complete ? {} : { Connection: 'close' }) });
  res.end(req.method === 'HEAD' ? undefined : xml);
  // A body the error left unread.
  if (!req.complete) req.resume();
  return status;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
