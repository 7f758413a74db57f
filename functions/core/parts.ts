/**
 * Part arithmetic of direct-to-S3 uploads. S3 multipart uploads take at most 10,000 parts of
 * 5 MiB … 5 GiB (the last may be smaller) and objects of at most 5 TiB. Berth uses parts of
 * 8 MiB … 512 MiB: the smallest size in whole MiB that fits the blob into 10,000 parts, so small
 * blobs get many parallel parts and a 5 TiB blob still fits (10,000 × 512 MiB = 5 TiB).
 */
import { fail } from './errors.js';

const MiB = 1024 * 1024;
/** S3's smallest part but the last (5 MiB); parts of one upload need not be equal. */
export const S3_MIN_PART_BYTES = 5 * MiB;
export const MIN_PART_BYTES = 8 * MiB;
export const MAX_PART_BYTES = 512 * MiB;
export const MAX_PARTS = 10_000;
/** S3's largest object (5 TiB). */
export const MAX_BLOB_BYTES = MAX_PARTS * MAX_PART_BYTES;

/** How a blob of a given size is split: `count` parts of `partSize` bytes, the last one shorter. */
export interface PartPlan {
  size: number;
  partSize: number;
  count: number;
}

/**
 * Plans the parts of a blob of `size` bytes.
 * @throws RegistryError SIZE_INVALID for a negative, fractional or over-5-TiB size.
 */
export function planParts(size: number): PartPlan {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_BLOB_BYTES) {
    throw fail('SIZE_INVALID', `blob size must be an integer from 0 to ${MAX_BLOB_BYTES} bytes`, { size });
  }
  const partSize = Math.max(MIN_PART_BYTES, Math.ceil(size / MAX_PARTS / MiB) * MiB);
  return { size, partSize, count: Math.max(1, Math.ceil(size / partSize)) };
}

/** The inclusive byte range of part `number` (1-based) of `plan`. */
export function partRange(plan: PartPlan, number: number): { start: number; end: number } {
  if (!Number.isInteger(number) || number < 1 || number > plan.count) throw fail('BLOB_UPLOAD_INVALID', `no part ${number}`, { parts: plan.count });
  const start = (number - 1) * plan.partSize;
  return { start, end: Math.min(start + plan.partSize, plan.size) - 1 };
}
