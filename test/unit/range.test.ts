import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RegistryError } from '../../functions/core/errors.js';
import { parseContentRange, parseReadRange } from '../../functions/core/range.js';

const chunk416 = (e: RegistryError) => e.code === 'BLOB_UPLOAD_INVALID' && e.status === 416;
const read416 = (e: RegistryError) => e.code === 'SIZE_INVALID' && e.status === 416;

test('Content-Range of a chunk: spec form and the bytes form', () => {
  assert.deepEqual(parseContentRange('0-1023'), { start: 0, end: 1023 });
  assert.deepEqual(parseContentRange('bytes 10-20/*'), { start: 10, end: 20 });
  assert.deepEqual(parseContentRange('bytes=10-20'), { start: 10, end: 20 });
});

test('garbage and reversed Content-Range are 416', () => {
  for (const value of ['', 'abc', '10-', '-5', '5-4', '1-2-3', '0x1-2', '99999999999999999-99999999999999999']) {
    assert.throws(() => parseContentRange(value), chunk416, value);
  }
});

test('read ranges: whole, open-ended, suffix, clipped', () => {
  assert.equal(parseReadRange(undefined, 10), undefined);
  assert.deepEqual(parseReadRange('bytes=0-4', 10), { start: 0, end: 4 });
  assert.deepEqual(parseReadRange('bytes=5-', 10), { start: 5, end: 9 });
  assert.deepEqual(parseReadRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseReadRange('bytes=8-100', 10), { start: 8, end: 9 });
});

test('unsatisfiable read ranges are 416 with Content-Range: bytes */size', () => {
  for (const value of ['bytes=10-', 'bytes=5-4', 'bytes=20-30']) {
    assert.throws(() => parseReadRange(value, 10), (e: RegistryError) => read416(e) && e.headers['Content-Range'] === 'bytes */10', value);
  }
});

test('other units, several ranges and garbage are ignored: the whole blob is served', () => {
  for (const value of ['items=0-1', 'bytes=0-1,3-4', 'bytes=-', 'nonsense']) assert.equal(parseReadRange(value, 10), undefined, value);
});

test('property: every satisfiable read range lies inside the blob', () => {
  fc.assert(
    fc.property(fc.nat(1000), fc.nat(1000), fc.integer({ min: 1, max: 1000 }), (a, b, size) => {
      try {
        const range = parseReadRange(`bytes=${a}-${b}`, size)!;
        assert.ok(range.start <= range.end && range.end < size && range.start === a);
      } catch (error) {
        assert.ok(read416(error as RegistryError));
        assert.ok(a > b || a >= size);
      }
    }),
  );
});
