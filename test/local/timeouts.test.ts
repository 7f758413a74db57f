/**
 * The local server's body idle timeout: a request body that falls silent fails cleanly after
 * BERTH_BODY_IDLE_TIMEOUT seconds (shortened here to 1) instead of holding its connection
 * forever, and the upload session keeps what it had before.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, test } from 'node:test';
import { Cleanup, RegistryProcess } from '../e2e/helpers.js';

const cleanup = new Cleanup();
after(() => cleanup.run());

/** A PATCH that declares 1000 bytes, sends 10 and stalls: how it ended, and after how long. */
function stalledPatch(url: URL): Promise<{ outcome: string; ms: number; body: string }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const ended = (outcome: string, body = '') => resolve({ outcome, ms: Date.now() - started, body });
    const req = request(url, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': '1000' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (text: string) => (body += text));
      res.on('end', () => ended(`answered ${res.statusCode} connection: ${res.headers.connection}`, body)).on('error', () => ended('cut off'));
    });
    req.on('error', () => ended('cut off'));
    req.write(Buffer.alloc(10, 1));
    // Nothing more: neither the rest nor the end; the test gives up after 8 s.
    setTimeout(() => {
      ended('still open after 8 s');
      req.destroy();
    }, 8000);
  });
}

test('a PATCH body silent for BERTH_BODY_IDLE_TIMEOUT fails with 400 and a closed connection; the session is unchanged', async () => {
  const registry = await RegistryProcess.start(cleanup, { env: { BERTH_BODY_IDLE_TIMEOUT: '1' } });
  const started = await fetch(`${registry.url}/v2/idle/test/blobs/uploads/`, { method: 'POST' });
  assert.equal(started.status, 202);
  const first = await fetch(new URL(started.headers.get('location')!, registry.url), {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': '0-4' },
    body: Buffer.from('hello'),
  });
  assert.equal(first.status, 202, await first.text());
  const location = new URL(first.headers.get('location')!, registry.url);

  const stalled = await stalledPatch(location);
  assert.equal(stalled.outcome, 'answered 400 connection: close', stalled.body);
  assert.match(stalled.body, /BLOB_UPLOAD_INVALID.*no byte of the request body arrived for 1 s/);
  assert.ok(stalled.ms >= 900 && stalled.ms < 5000, `ended after ${stalled.ms} ms`);

  const status = await fetch(location);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), '0-4', 'the session has the 5 bytes of the first PATCH, nothing of the stalled one');
});
