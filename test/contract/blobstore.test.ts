/** The BlobStore contract, run over sockets against the configured back end. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { BlobStore } from '../../functions/storage/ports.js';
import { createS3Client, S3BlobStore } from '../../functions/storage/s3.js';
import { startBackends, type Backends } from '../support/stack.js';

let backends: Backends;
let store: BlobStore;
before(async () => {
  backends = await startBackends();
  store = new S3BlobStore(createS3Client(backends.config.s3), backends.config.s3.bucket);
});
after(() => backends.stop());

const MiB = 1024 * 1024;

describe('BlobStore contract', () => {
  test('put, read, ranged open, delete', async () => {
    const bytes = randomBytes(1000);
    await store.put('c/one', bytes);
    assert.deepEqual(await store.read('c/one'), bytes);
    const range = Buffer.concat(await (await store.open('c/one', { start: 10, end: 19 })).toArray());
    assert.deepEqual(range, bytes.subarray(10, 20));
    await store.delete('c/one');
    await assert.rejects(store.read('c/one'));
    await store.delete('c/one');
  });

  test('presigned GET URLs serve the object, ranges included', async () => {
    const bytes = randomBytes(100);
    await store.put('c/signed', bytes);
    const url = await store.presignGet('c/signed', 60);
    assert.deepEqual(Buffer.from(await (await fetch(url)).arrayBuffer()), bytes);
    const partial = await fetch(url, { headers: { Range: 'bytes=5-9' } });
    assert.equal(partial.status, 206);
    assert.deepEqual(Buffer.from(await partial.arrayBuffer()), bytes.subarray(5, 10));
  });

  test('multipart: 5 MiB parts and a short last part make one object', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 3), randomBytes(17)];
    const id = await store.createMultipart('c/multi');
    const uploaded = [];
    for (const [i, body] of parts.entries()) uploaded.push({ number: i + 1, etag: await store.uploadPart('c/multi', id, i + 1, body), size: body.length });
    await store.completeMultipart('c/multi', id, uploaded);
    assert.deepEqual(await store.read('c/multi'), Buffer.concat(parts));
  });

  test('an aborted multipart upload leaves nothing; aborting twice is harmless', async () => {
    const id = await store.createMultipart('c/aborted');
    await store.uploadPart('c/aborted', id, 1, randomBytes(10));
    await store.abortMultipart('c/aborted', id);
    await store.abortMultipart('c/aborted', id);
    await assert.rejects(store.read('c/aborted'));
  });
});
