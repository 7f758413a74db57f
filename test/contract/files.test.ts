/**
 * What only the file store of `npm start` (functions/storage/files.ts) has to show: its presigned
 * URLs refuse expired and tampered signatures as S3 does (403 with S3's XML error), keys cannot
 * leave its folder, and a process killed with SIGKILL while it writes leaves no partial object.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FileBlobStore } from '../../functions/storage/files.js';
import { fileSubject } from '../support/files.js';

let files: FileBlobStore;
let dir: string;
let stop: () => Promise<void>;
before(async () => ({ files, dir, stop } = await fileSubject()));
after(() => stop());

async function s3Answer(url: string, init?: RequestInit): Promise<{ status: number; code?: string; message?: string }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, code: /<Code>([^<]+)<\/Code>/.exec(text)?.[1], message: /<Message>([^<]+)<\/Message>/.exec(text)?.[1] };
}

describe('presigned URLs of the file store', () => {
  test('an expired URL is refused: 403 AccessDenied, "Request has expired"', async () => {
    await files.put('p/expiring', Buffer.from('bytes'));
    const url = await files.presignGet('p/expiring', 1);
    assert.equal((await fetch(url)).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.deepEqual(await s3Answer(url), { status: 403, code: 'AccessDenied', message: 'Request has expired' });
  });

  test('a tampered URL is refused: 403 SignatureDoesNotMatch', async () => {
    await files.put('p/one', Buffer.from('one'));
    await files.put('p/two', Buffer.from('two'));
    const url = new URL(await files.presignGet('p/one', 60));
    const tampered = [
      url.href.replace('/p/one?', '/p/two?'),
      url.href.replace(/X-Berth-Expires=(\d+)/, (_, e) => `X-Berth-Expires=${Number(e) + 3600}`),
      url.href.replace(/X-Berth-Signature=(.)/, (_, c) => `X-Berth-Signature=${c === 'A' ? 'B' : 'A'}`),
      url.href.replace(/&?X-Berth-Signature=[^&]*/, ''),
    ];
    for (const href of tampered) assert.deepEqual((await s3Answer(href)).code, 'SignatureDoesNotMatch', href);
    assert.equal((await s3Answer(href(url), { method: 'PUT', body: 'x' })).status, 403, 'a GET URL does not PUT');
    const id = await files.createMultipart('p/parts');
    const part = await files.presignUploadPart('p/parts', id, 1, 60);
    assert.equal((await s3Answer(part.replace('partNumber=1', 'partNumber=2'), { method: 'PUT', body: 'x' })).status, 403, 'another part number');
    assert.equal((await s3Answer(part)).status, 403, 'a part URL does not GET');
    const put = await fetch(part, { method: 'PUT', body: 'part' });
    assert.equal(put.status, 200);
    assert.match(put.headers.get('etag') ?? '', /^".+"$/);
  });

  test('a missing object is 404 NoSuchKey, an unsatisfiable range 416 InvalidRange, as S3', async () => {
    assert.deepEqual(await s3Answer(await files.presignGet('p/missing', 60)), { status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' });
    await files.put('p/short', Buffer.from('short'));
    assert.equal((await s3Answer(await files.presignGet('p/short', 60), { headers: { Range: 'bytes=5-' } })).code, 'InvalidRange');
    const aborted = await files.createMultipart('p/aborted');
    const url = await files.presignUploadPart('p/aborted', aborted, 1, 60);
    await files.abortMultipart('p/aborted', aborted);
    assert.equal((await s3Answer(url, { method: 'PUT', body: 'x' })).code, 'NoSuchUpload');
  });

  test('a part whose Content-Length is over 5 GiB is refused before its body is read: 400 EntityTooLarge, nothing stored', async () => {
    const id = await files.createMultipart('p/huge');
    const url = new URL(await files.presignUploadPart('p/huge', id, 1, 60));
    // Headers only: a server that read the body first would wait for 5 GiB that never come.
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(url, { method: 'PUT', headers: { 'Content-Length': String(5 * 1024 ** 3 + 1) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s: the body was being read')));
      req.on('error', reject);
      req.write('x');
    });
    assert.equal(answer.status, 400);
    assert.match(answer.text, /<Code>EntityTooLarge<\/Code>/);
    assert.deepEqual(await readdir(join(dir, '.uploads', id)), ['key'], 'no part and no temporary file');
  });
});

test('completing a multipart upload joins the parts whose ETags it checked, even when a part is written over meanwhile', async () => {
  const key = 'p/replaced-part';
  const first = randomBytes(64 * 1024 * 1024);
  const id = await files.createMultipart(key);
  const parts = [
    { number: 1, etag: await files.uploadPart(key, id, 1, first), size: first.length },
    { number: 2, etag: await files.uploadPart(key, id, 2, Buffer.from('last')), size: 4 },
  ];
  // A late writer (one that lost its lease) writes part 2 again once the join has begun.
  async function* lateBody(): AsyncGenerator<Uint8Array> {
    while ((await readdir(join(dir, '.tmp')).catch(() => [])).length === 0) await new Promise((resolve) => setImmediate(resolve));
    yield Buffer.from('evil');
  }
  const [completed] = await Promise.allSettled([files.completeMultipart(key, id, parts), files.writePart(key, id, 2, lateBody())]);
  assert.equal(completed.status, 'fulfilled');
  assert.ok((await files.read(key)).equals(Buffer.concat([first, Buffer.from('last')])), 'the bytes of the ETags checked');
});

function href(url: URL): string {
  return url.href;
}

test('keys with `..`, `.` and odd characters stay inside the folder and read back; a key may also be a folder of others; foreign files are no objects', async () => {
  const keys = ['..', '../escape', 'k', 'k/../../up', 'k/./x', 'k//y', 'k/ü?#%&', '.tmp/x'];
  for (const key of keys) await files.put(key, Buffer.from(key));
  for (const key of keys) assert.equal((await files.read(key)).toString(), key);
  // Files the store did not write (no name it makes) are no objects.
  await writeFile(join(dir, 'not written by the store'), 'x');
  await writeFile(join(dir, 'bad%zz'), 'x');
  const paths = await readdir(dir, { recursive: true });
  assert.ok(paths.every((path) => !relative(dir, join(dir, path)).startsWith('..')));
  assert.deepEqual(
    (await files.list('', 100)).map((o) => o.key).filter((key) => !key.startsWith('p/')),
    [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
  );
});

test('sweep: unfinished multipart uploads go after a session lifetime (7 days), their stray temporary files after an hour, uploads/ scratch objects after 8 days', async () => {
  const DAY = 24 * 3600 * 1000;
  const now = Date.now();
  const at = (ms: number) => new Date(now - ms);
  const stale = await files.createMultipart('s/stale');
  await files.uploadPart('s/stale', stale, 1, Buffer.from('old part'));
  await utimes(join(dir, '.uploads', stale, 'key'), at(7 * DAY + 60_000), at(7 * DAY + 60_000));
  const live = await files.createMultipart('s/live');
  const etag = await files.uploadPart('s/live', live, 1, Buffer.from('live part'));
  await utimes(join(dir, '.uploads', live, 'key'), at(6 * DAY), at(6 * DAY));
  // What a request killed while writing a part leaves: a temporary file in the upload's folder.
  await writeFile(join(dir, '.uploads', live, '.killed-part'), 'half');
  await utimes(join(dir, '.uploads', live, '.killed-part'), at(2 * 3600_000), at(2 * 3600_000));
  await writeFile(join(dir, '.uploads', live, '.part-in-flight'), 'half');
  await files.put('uploads/gone-session/tail-0-a', Buffer.from('orphaned tail'));
  await files.put('uploads/live-session/tail-0-b', Buffer.from('recent tail'));
  const tail = join(dir, 'uploads=', 'gone-session=', 'tail-0-a');
  await utimes(tail, at(8 * DAY + 60_000), at(8 * DAY + 60_000));

  await files.sweep(3600_000, now);
  assert.deepEqual((await readdir(join(dir, '.uploads'))).filter((id) => id === stale || id === live), [live], 'the stale upload is gone, the live one kept');
  assert.deepEqual((await readdir(join(dir, '.uploads', live))).sort(), ['.part-in-flight', '1', 'key'], 'an old temporary file goes, a young one (a write in flight) stays');
  assert.deepEqual((await files.list('uploads/', 10)).map((o) => o.key), ['uploads/live-session/tail-0-b']);
  await files.completeMultipart('s/live', live, [{ number: 1, etag, size: 9 }]);
  assert.equal((await files.read('s/live')).toString(), 'live part', 'the kept upload still completes');
});

test('kill -9 while writing (put, multipart complete) leaves whole objects or none', async () => {
  const MiB = 1024 * 1024;
  const root = join(dir, '..', 'killed');
  let interrupted = 0;
  // Kills land at random moments: more rounds (up to 30) until one has hit a write in flight.
  for (let round = 0; round < 5 || (interrupted === 0 && round < 30); round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/contract/fixtures/file-writer.ts', root], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 700));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const store = new (files.constructor as typeof FileBlobStore)(root);
    for (const object of await store.list('', 1000)) {
      const n = Number(object.key.split('/')[1]);
      const bytes = await store.read(object.key);
      assert.equal(bytes.length, object.key.startsWith('w/') ? 4 * MiB : 8 * MiB, `${object.key} is whole`);
      assert.ok(bytes.every((b) => b === n % 251), `${object.key} holds its own bytes`);
    }
    if ((await readdir(join(root, '.tmp')).catch(() => [])).length > 0) interrupted++;
    await store.sweep(0);
    assert.deepEqual(await readdir(join(root, '.tmp')), [], 'sweep removes what the killed writer left');
  }
  assert.ok(interrupted > 0, 'at least one kill hit a write in flight');
});
