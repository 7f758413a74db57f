/** The front door's signed paths (functions/core/signed-paths.ts), property-based. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkUpload, parseSegment, signBlob, signUpload } from '../../functions/core/signed-paths.js';

const key = { version: 3, secret: randomBytes(32) };
const now = 1_800_000_000;
const component = fc.stringMatching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, { maxLength: 20 });
const repository = fc.array(component, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
const expiry = fc.integer({ min: now + 1, max: now + 10 * 365 * 86400 });

test('an upload token parses back and checks for its repository until it expires', () => {
  fc.assert(
    fc.property(repository, fc.uuid({ version: 4 }), expiry, (name, id, expiresAt) => {
      const segment = signUpload(key, name, id, expiresAt);
      assert.deepEqual(parseSegment(segment), { id, expiresAt, version: 3, signature: segment.split('.')[3] });
      assert.ok(checkUpload(key, name, segment, now));
      assert.ok(!checkUpload(key, name, segment, expiresAt), 'expired at its expiry');
    }),
  );
});

test('any change of one character, another repository, key or version fails the check', () => {
  fc.assert(
    fc.property(repository, repository, fc.uuid({ version: 4 }), expiry, fc.nat(), (name, other, id, expiresAt, at) => {
      const segment = signUpload(key, name, id, expiresAt);
      const i = at % segment.length;
      const changed = segment.slice(0, i) + (segment[i] === '1' ? '2' : '1') + segment.slice(i + 1);
      assert.ok(!checkUpload(key, name, changed, now), changed);
      if (other !== name) assert.ok(!checkUpload(key, other, segment, now));
      assert.ok(!checkUpload({ version: 3, secret: randomBytes(32) }, name, segment, now));
      assert.ok(!checkUpload({ ...key, version: 4 }, name, segment, now));
    }),
  );
});

test('blob paths name the object id and are not upload tokens', () => {
  fc.assert(
    fc.property(fc.uuid({ version: 4 }), expiry, (id, expiresAt) => {
      const path = signBlob(key, id, expiresAt);
      assert.match(path, /^\/_berth\/blobs\/[0-9a-f-]{36}\.\d+\.3\.[A-Za-z0-9_-]{43}$/);
      assert.equal(parseSegment(path.slice('/_berth/blobs/'.length))!.id, id);
    }),
  );
});

test('malformed segments do not parse', () => {
  for (const text of ['', 'x', '0000.1.1.a', `${'a'.repeat(36)}.1.1.${'a'.repeat(43)}`, `${crypto.randomUUID()}.1.1.${'a'.repeat(42)}`, `${crypto.randomUUID()}.1.12345.${'a'.repeat(43)}`]) {
    assert.equal(parseSegment(text), undefined, text);
  }
});
