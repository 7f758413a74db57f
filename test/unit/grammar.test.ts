import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RegistryError } from '../../functions/core/errors.js';
import { isDigest, isRepositoryName, isTag, parseDigest, parseReference, parseRepositoryName } from '../../functions/core/grammar.js';

const hex64 = 'a'.repeat(64);

test('repository names follow the spec grammar', () => {
  for (const name of ['a', 'library/ubuntu', 'a.b_c__d-e--f/g9', 'team/sub/deep/name']) assert.ok(isRepositoryName(name), name);
  for (const name of ['', 'A', 'a/../b', '..', 'a/./b', '/a', 'a/', 'a//b', 'a..b', '-a', 'a-', 'a___b', 'a%2e', 'a b', 'x'.repeat(256)]) {
    assert.ok(!isRepositoryName(name), name);
  }
});

test('parseRepositoryName throws NAME_INVALID', () => {
  assert.throws(() => parseRepositoryName('Upper'), (e: RegistryError) => e.code === 'NAME_INVALID' && e.status === 400);
});

test('tags follow the spec grammar', () => {
  for (const tag of ['latest', 'v1.2.3', '_x', 'A-b_c.d', 'x'.repeat(128)]) assert.ok(isTag(tag), tag);
  for (const tag of ['', '.x', '-x', 'a/b', 'a:b', 'x'.repeat(129)]) assert.ok(!isTag(tag), tag);
});

test('digests need a registered algorithm and its encoding', () => {
  assert.ok(isDigest(`sha256:${hex64}`));
  assert.ok(isDigest(`sha512:${'b'.repeat(128)}`));
  for (const value of [`sha256:${hex64.slice(1)}`, `sha256:${'A'.repeat(64)}`, `md5:${hex64}`, `sha256${hex64}`, 'sha256:', `SHA256:${hex64}`]) {
    assert.ok(!isDigest(value), value);
  }
  assert.throws(() => parseDigest('sha256:zz'), (e: RegistryError) => e.code === 'DIGEST_INVALID');
});

test('references are tags or digests', () => {
  assert.deepEqual(parseReference('latest'), { kind: 'tag', tag: 'latest' });
  assert.deepEqual(parseReference(`sha256:${hex64}`), { kind: 'digest', digest: `sha256:${hex64}` });
  assert.throws(() => parseReference('bad tag'), (e: RegistryError) => e.code === 'MANIFEST_INVALID');
  assert.throws(() => parseReference('sha256:short'), (e: RegistryError) => e.code === 'DIGEST_INVALID');
});

test('property: no accepted name can escape its key prefix', () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom('a', 'Z', '.', '/', '-', '_', '%', '0', '\\') }), (name) => {
      if (!isRepositoryName(name)) return;
      assert.ok(!name.split('/').some((part) => part === '..' || part === '.' || part === ''));
      assert.ok(!/[A-Z%\\]/.test(name));
    }),
    { numRuns: 2000 },
  );
});

test('property: names built from the grammar are accepted', () => {
  const component = fc
    .tuple(fc.stringMatching(/^[a-z0-9]{1,5}$/), fc.array(fc.tuple(fc.constantFrom('.', '_', '__', '-', '---'), fc.stringMatching(/^[a-z0-9]{1,5}$/)), { maxLength: 3 }))
    .map(([head, rest]) => head + rest.map(([sep, part]) => sep + part).join(''));
  fc.assert(fc.property(fc.array(component, { minLength: 1, maxLength: 4 }), (parts) => isRepositoryName(parts.join('/'))));
});
