/**
 * Byte-range arithmetic: `Content-Range` of upload chunks (distribution-spec end-5, where the
 * value is `<start>-<end>`, inclusive) and `Range` of blob reads (RFC 9110 §14.2, one range).
 */
import { fail } from './errors.js';
import type { ChunkRange } from './uploads.js';
import type { ByteRange } from '../storage/ports.js';

const CHUNK_RANGE = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/;
const READ_RANGE = /^bytes=(\d{0,15})-(\d{0,15})$/;

/**
 * Parses a chunk's `Content-Range` (`0-1023`; `bytes 0-1023/*` is accepted too).
 * @throws RegistryError BLOB_UPLOAD_INVALID (416) for garbage or an end before its start.
 */
export function parseContentRange(value: string): ChunkRange {
  const match = CHUNK_RANGE.exec(value.trim());
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || end < start) throw fail('BLOB_UPLOAD_INVALID', `invalid Content-Range: ${value.slice(0, 60)}`, undefined, { status: 416 });
  return { start, end };
}

/**
 * Parses a blob read's `Range` against a blob of `size` bytes; undefined means the whole blob.
 * A range in another unit, or several ranges, is ignored (RFC 9110 §14.2 lets a server answer
 * the whole representation), so only one `bytes` range is ever served.
 * @throws RegistryError SIZE_INVALID (416, with `Content-Range: bytes *\/size`) when unsatisfiable.
 */
export function parseReadRange(value: string | undefined, size: number): ByteRange | undefined {
  const match = value === undefined ? null : READ_RANGE.exec(value.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (match[1] === '') {
    start = Math.max(size - Number(match[2]), 0);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start > end || start >= size) {
    throw fail('SIZE_INVALID', `range not satisfiable: ${value!.slice(0, 60)}`, undefined, { status: 416, headers: { 'Content-Range': `bytes */${size}` } });
  }
  return { start, end };
}
