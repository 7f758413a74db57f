/**
 * Uploads of one blob's parts straight to presigned S3 URLs: each part is read from the local
 * file by offset and length and sent with `Content-Length` (S3 refuses chunked part uploads),
 * several at a time, each tried up to {@link ATTEMPTS} times with a growing pause. The ETags are
 * returned in part order for `complete`.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { header, send } from './http.js';

/** A presigned part URL and the byte range of the blob it carries (as the registry hands it out). */
export interface PartUrl {
  number: number;
  url: string;
  offset: number;
  length: number;
}

/** Where the blob's bytes are: a file (read by range) or memory. */
export type LocalBytes = { path: string; size: number } | { bytes: Buffer };

export const ATTEMPTS = 3;
/** Pause before the second and third attempt (ms). */
export const BACKOFF_MS = [1000, 4000];

export interface PartUploadOptions {
  /** Parts in flight at once. */
  concurrency: number;
  /** Fresh URLs for parts `first…first+count-1` (when the first ones expired or more are needed). */
  moreUrls(first: number, count: number): Promise<PartUrl[]>;
  /** Bytes sent so far changed by `delta` (negative when a failed attempt is rolled back). */
  onBytes(delta: number): void;
}

/** A readable stream of `length` bytes from `offset` of `source`. */
export function readRange(source: LocalBytes, offset: number, length: number): Readable {
  if ('bytes' in source) return Readable.from([source.bytes.subarray(offset, offset + length)]);
  if (length === 0) return Readable.from([]);
  return createReadStream(source.path, { start: offset, end: offset + length - 1, highWaterMark: 1024 * 1024 });
}

/**
 * Uploads parts 1…`count` of `source`, starting with the URLs in `first` and asking for more as
 * needed. Returns `[{number, etag}]` in order.
 * @throws Error when a part fails {@link ATTEMPTS} times.
 */
export async function uploadParts(source: LocalBytes, count: number, first: PartUrl[], options: PartUploadOptions): Promise<{ number: number; etag: string }[]> {
  const urls = new Map(first.map((part) => [part.number, part]));
  const etags: { number: number; etag: string }[] = new Array(count);
  let next = 1;
  let fetching: Promise<void> | undefined;
  const urlOf = async (number: number): Promise<PartUrl> => {
    while (!urls.has(number)) {
      if (!fetching) {
        fetching = options.moreUrls(number, 1000).then((fresh) => {
          for (const part of fresh) urls.set(part.number, part);
          if (!urls.has(number)) throw new Error(`the registry handed out no URL for part ${number}`);
        });
        void fetching.finally(() => (fetching = undefined)).catch(() => undefined);
      }
      await fetching;
    }
    return urls.get(number)!;
  };
  const worker = async () => {
    while (next <= count) {
      const number = next++;
      const part = await urlOf(number);
      etags[number - 1] = { number, etag: await putWithRetries(source, part, options) };
      urls.delete(number);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, count) }, worker));
  return etags;
}

async function putWithRetries(source: LocalBytes, part: PartUrl, options: PartUploadOptions): Promise<string> {
  let url = part.url;
  for (let attempt = 1; ; attempt++) {
    let sent = 0;
    try {
      const answer = await send(url, {
        method: 'PUT',
        body: {
          length: part.length,
          open: () => readRange(source, part.offset, part.length).on('data', (chunk: Buffer) => {
            sent += chunk.length;
            options.onBytes(chunk.length);
          }),
        },
      });
      const etag = header(answer.headers, 'etag');
      if (answer.status === 200 && etag) return etag;
      const detail = answer.body.toString('utf8').match(/<Code>([^<]+)<\/Code>/)?.[1] ?? answer.body.toString('utf8').slice(0, 120);
      throw new Error(`S3 answered ${answer.status}${detail ? ` (${detail})` : ''}${answer.status === 200 ? ' without an ETag' : ''}`);
    } catch (error) {
      options.onBytes(-sent);
      if (attempt >= ATTEMPTS) throw new Error(`part ${part.number} failed ${ATTEMPTS} times: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS[attempt - 1] ?? 4000));
      // An expired or refused signature: ask the registry for a fresh URL.
      if (/\b403\b/.test((error as Error).message)) url = (await options.moreUrls(part.number, 1)).find((p) => p.number === part.number)?.url ?? url;
    }
  }
}
