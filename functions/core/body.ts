/**
 * Request bodies as the core sees them: a stream of bytes, never a transport object.
 * The local server hands in the socket stream; the Lambda entry hands in one decoded buffer.
 */
import { fail } from './errors.js';

/** A request body: a byte stream, with its length when the client sent `Content-Length`. */
export interface BodyStream {
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  length?: number;
}

/** A body made of bytes already in memory. */
export function bodyOf(bytes: Uint8Array): BodyStream {
  return { chunks: [bytes], length: bytes.length };
}

/**
 * Reads a whole body that may hold at most `limit` bytes, failing as soon as it is exceeded.
 * @throws RegistryError SIZE_INVALID with status 413 above `limit`.
 */
export async function readLimited(body: BodyStream, limit: number, what: string): Promise<Buffer> {
  const tooLarge = () => fail('SIZE_INVALID', `${what} is larger than the limit of ${limit} bytes`, { limit }, { status: 413 });
  if (body.length !== undefined && body.length > limit) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body.chunks) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
