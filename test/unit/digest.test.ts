import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { nativeHasher, resumableHasher, sha256Of } from '../../functions/core/digest.js';

test('property: a hash saved and resumed across any split equals the one-shot digest', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), async (chunks) => {
      let state: string | undefined;
      for (const chunk of chunks) {
        const hasher = await resumableHasher(state);
        hasher.update(chunk);
        state = hasher.save();
      }
      const last = await resumableHasher(state);
      const oneShot = nativeHasher();
      for (const chunk of chunks) oneShot.update(chunk);
      const expected = sha256Of(Buffer.concat(chunks));
      assert.equal(last.digest(), expected);
      assert.equal(oneShot.digest(), expected);
    }),
    { numRuns: 200 },
  );
});

test('the empty blob has the well-known digest', () => {
  assert.equal(sha256Of(new Uint8Array()), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});
