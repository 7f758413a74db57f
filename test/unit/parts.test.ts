import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RegistryError } from '../../functions/core/errors.js';
import { MAX_BLOB_BYTES, MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES, partRange, planParts } from '../../functions/core/parts.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('small blobs use 8 MiB parts; an empty blob is one empty part', () => {
  assert.deepEqual(planParts(0), { size: 0, partSize: 8 * MiB, count: 1 });
  assert.deepEqual(partRange(planParts(0), 1), { start: 0, end: -1 });
  assert.deepEqual(planParts(300 * MiB), { size: 300 * MiB, partSize: 8 * MiB, count: 38 });
  assert.deepEqual(partRange(planParts(300 * MiB), 38), { start: 37 * 8 * MiB, end: 300 * MiB - 1 });
});

test('above 10,000 × 8 MiB the part size grows in whole MiB', () => {
  assert.deepEqual(planParts(10_000 * 8 * MiB), { size: 10_000 * 8 * MiB, partSize: 8 * MiB, count: 10_000 });
  assert.deepEqual(planParts(10_000 * 8 * MiB + 1), { size: 10_000 * 8 * MiB + 1, partSize: 9 * MiB, count: 8889 });
  const sixGiB = planParts(6 * GiB);
  assert.equal(sixGiB.partSize, 8 * MiB);
  assert.equal(sixGiB.count, 768);
});

test('the largest S3 object fits exactly; anything larger is refused', () => {
  assert.deepEqual(planParts(MAX_BLOB_BYTES), { size: MAX_BLOB_BYTES, partSize: MAX_PART_BYTES, count: MAX_PARTS });
  for (const size of [MAX_BLOB_BYTES + 1, -1, 1.5, Number.NaN]) {
    assert.throws(() => planParts(size), (e: RegistryError) => e.code === 'SIZE_INVALID', String(size));
  }
});

test('parts outside the plan are refused', () => {
  const plan = planParts(20 * MiB);
  for (const n of [0, 4, 1.5]) assert.throws(() => partRange(plan, n), (e: RegistryError) => e.code === 'BLOB_UPLOAD_INVALID');
});

test('property: parts tile the blob exactly, within S3 limits', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: MAX_BLOB_BYTES }), (size) => {
      const plan = planParts(size);
      assert.ok(plan.count >= 1 && plan.count <= MAX_PARTS);
      assert.ok(plan.partSize >= MIN_PART_BYTES && plan.partSize <= MAX_PART_BYTES && plan.partSize % MiB === 0);
      const last = partRange(plan, plan.count);
      assert.equal(last.end, size - 1);
      assert.ok(last.end - last.start + 1 <= plan.partSize);
      if (plan.count > 1) assert.equal(partRange(plan, 2).start, partRange(plan, 1).end + 1);
    }),
    { numRuns: 2000 },
  );
});
