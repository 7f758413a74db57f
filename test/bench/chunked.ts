/**
 * The chunked upload path: a 64 MiB blob as PATCH requests with `Content-Range` of 5 MiB each,
 * then the closing PUT `?digest=`, via fetch, timed from the POST to the 201. A fresh random
 * blob and repository for every upload.
 */
import { createHash, randomBytes } from 'node:crypto';
import { RUN_ID } from '../e2e/helpers.js';
import { MiB, ordered, progress, type Row, type Target } from './report.js';

/** Uploads `bytes` in `chunk`-sized PATCHes; returns the elapsed milliseconds. */
export async function chunkedUpload(base: string, name: string, bytes: Buffer, chunk: number): Promise<number> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const started = performance.now();
  const post = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  await post.body?.cancel();
  if (post.status !== 202) throw new Error(`POST on ${base}: ${post.status}`);
  let location = new URL(post.headers.get('location')!, base);
  for (let offset = 0; offset < bytes.length; offset += chunk) {
    const body = bytes.subarray(offset, Math.min(bytes.length, offset + chunk));
    const patch = await fetch(location, {
      method: 'PATCH',
      body: body as unknown as BodyInit,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + body.length - 1}` },
    });
    const text = await patch.text();
    if (patch.status !== 202) throw new Error(`PATCH ${offset} on ${base}: ${patch.status} ${text}`);
    location = new URL(patch.headers.get('location')!, base);
  }
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT' });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`PUT on ${base}: ${put.status} ${text}`);
  return performance.now() - started;
}

export async function chunkedRounds(targets: [Target, Target], rounds: number, size = 64 * MiB, chunk = 5 * MiB): Promise<Row[]> {
  const row: Row = {
    operation: `chunked upload ${size / MiB} MiB blob (PATCH ${chunk / MiB} MiB Content-Range chunks + PUT)`,
    metric: 'MiB/s',
    better: 'higher',
    berth: [],
    reference: [],
    digits: 1,
  };
  for (let round = 0; round < rounds; round++) {
    for (const target of ordered(targets, round)) {
      const bytes = randomBytes(size);
      const ms = await chunkedUpload(target.url, `bench/chunked-${RUN_ID}-r${round}`, bytes, chunk);
      const rate = size / MiB / (ms / 1000);
      (target.label === 'Berth' ? row.berth : row.reference).push(rate);
      progress(`chunked upload → ${target.label}: ${rate.toFixed(1)} MiB/s (${ms.toFixed(0)} ms, round ${round + 1}/${rounds})`);
    }
  }
  return [row];
}
