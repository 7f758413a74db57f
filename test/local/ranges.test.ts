/**
 * Blob GETs with `Range` answered as S3 answers them, on every delivery mode of `npm start`: Berth
 * streaming (the default) from the file store, redirects to the file store's presigned URLs, redirects to the embedded S3 (`BERTH_EMULATE_LAMBDA=1
 * BERTH_FRONT_DOOR=0`), and the emulated CloudFront reading it (`BERTH_EMULATE_LAMBDA=1`).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import { Cleanup, RegistryProcess } from '../e2e/helpers.js';

const cleanup = new Cleanup();
after(() => cleanup.run());

const SIZE = 2560;
const blob = Buffer.from(Array.from({ length: SIZE }, (_, i) => i % 251));
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

/** Range header → the bytes S3 answers with 206, or 416. */
const CASES: Array<[string, [number, number] | 416]> = [
  ['bytes=0-0', [0, 0]],
  ['bytes=10-20', [10, 20]],
  ['bytes=-5', [SIZE - 5, SIZE - 1]],
  ['bytes=-9999', [0, SIZE - 1]],
  ['bytes=100-', [100, SIZE - 1]],
  ['bytes=2550-9999', [2550, SIZE - 1]],
  ['bytes=2559-2559', [SIZE - 1, SIZE - 1]],
  ['bytes=2560-', 416],
  ['bytes=5000-6000', 416],
];

const MODES: Array<[string, Record<string, string>]> = [
  ['streamed by Berth (npm start)', {}],
  ['redirected to the file store\'s presigned URLs on the same port (BERTH_BLOB_DELIVERY=redirect npm start)', { BERTH_BLOB_DELIVERY: 'redirect' }],
  ['redirected to the embedded S3 (BERTH_EMULATE_LAMBDA=1 BERTH_FRONT_DOOR=0)', { BERTH_EMULATE_LAMBDA: '1', BERTH_FRONT_DOOR: '0' }],
  ['through the emulated CloudFront (BERTH_EMULATE_LAMBDA=1)', { BERTH_EMULATE_LAMBDA: '1' }],
];

for (const [mode, env] of MODES) {
  test(`blob ranges ${mode}: single byte, suffix, open-ended, unsatisfiable`, async () => {
    const registry = await RegistryProcess.start(cleanup, { env });
    const pushed = await fetch(`${registry.url}/v2/ranges/blob/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob,
    });
    assert.equal(pushed.status, 201, await pushed.text());
    const url = `${registry.url}/v2/ranges/blob/blobs/${digest}`;
    if (env.BERTH_BLOB_DELIVERY === 'redirect') {
      // The registry's answer is a 307 to the file store's presigned URL on the same port; the ranges below follow it.
      const redirect = await fetch(url, { redirect: 'manual' });
      assert.equal(redirect.status, 307, await redirect.text());
      const location = new URL(redirect.headers.get('location') ?? '', url);
      assert.equal(location.origin, new URL(registry.url).origin);
      assert.match(location.pathname, /^\/_berth\/objects\//);
    }
    for (const [range, expected] of CASES) {
      const response = await fetch(url, { headers: { range } });
      const body = Buffer.from(await response.arrayBuffer());
      if (expected === 416) {
        assert.equal(response.status, 416, `${range}: ${body.toString().slice(0, 200)}`);
        continue;
      }
      const [start, end] = expected;
      assert.equal(response.status, 206, `${range}: ${body.toString().slice(0, 200)}`);
      assert.equal(response.headers.get('content-range'), `bytes ${start}-${end}/${SIZE}`, range);
      assert.ok(body.equals(blob.subarray(start, end + 1)), `${range}: ${body.length} bytes, not bytes ${start}-${end}`);
    }
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(blob));
  });
}
