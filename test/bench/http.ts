/**
 * Request rate and latency of the hottest read paths, with autocannon as the load generator (in
 * this process): HEAD and GET of a manifest by tag, HEAD of a blob, at 1 and 32 connections,
 * for a fixed duration, alternating between the registries. Latencies are taken from every
 * response with sub-millisecond precision (autocannon's own histogram keeps whole ms).
 */
import autocannon from 'autocannon';
import { createHash, randomBytes } from 'node:crypto';
import { RUN_ID } from '../e2e/helpers.js';
import { ordered, progress, type Row, type Target } from './report.js';

const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const ACCEPT = [MANIFEST_TYPE, 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json'].join(', ');

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** POST, then PUT `?digest=` with the whole blob (the monolithic two-step upload both support). */
export async function uploadBlob(base: string, name: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const started = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  await started.body?.cancel();
  if (started.status !== 202) throw new Error(`POST upload on ${base}: ${started.status}`);
  const location = new URL(started.headers.get('location')!, base);
  location.searchParams.set('digest', digest);
  const done = await fetch(location, { method: 'PUT', body: bytes as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } });
  await done.body?.cancel();
  if (done.status !== 201) throw new Error(`PUT upload on ${base}: ${done.status}`);
  return digest;
}

/** A small image (config + one 4 KiB layer) tagged `latest` in `name`; returns the layer digest. */
export async function seedImage(base: string, name: string): Promise<{ layer: string; manifest: string }> {
  const layerBytes = randomBytes(4096);
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layerBytes)] }, config: {} }));
  const layer = await uploadBlob(base, name, layerBytes);
  const config = await uploadBlob(base, name, configBytes);
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: configBytes.length, digest: config },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layerBytes.length, digest: layer }],
    }),
  );
  const put = await fetch(`${base}/v2/${name}/manifests/latest`, { method: 'PUT', body: manifestBytes, headers: { 'content-type': MANIFEST_TYPE } });
  await put.body?.cancel();
  if (put.status !== 201) throw new Error(`PUT manifest on ${base}: ${put.status} ${await put.text()}`);
  return { layer, manifest: sha256(manifestBytes) };
}

interface LoadResult {
  rate: number;
  p50: number;
  p99: number;
  failures: number;
}

/**
 * autocannon against `url` with `method`. http-parser-js (autocannon's parser) waits for a body
 * after a HEAD response that carries Content-Length; the parser is told to skip it.
 */
async function load(url: string, method: 'GET' | 'HEAD', connections: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        method,
        connections,
        duration: seconds,
        headers: { accept: ACCEPT },
        setupClient(client) {
          if (method !== 'HEAD') return;
          process.nextTick(() => {
            const parser = (client as unknown as { parser: Record<number, (info: unknown) => unknown> }).parser;
            const onHeadersComplete = parser[2]; // HTTPParser.kOnHeadersComplete
            parser[2] = (info: unknown) => {
              onHeadersComplete(info);
              return true; // skipBody
            };
          });
        },
      },
      (error, done) => (error ? reject(error) : resolve(done)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return { rate: result['2xx'] / result.duration, p50: at(0.5), p99: at(0.99), failures: result.non2xx + result.errors + result.timeouts };
}

/** The HTTP rows: for every path and concurrency, requests/s, p50 and p99. */
export async function httpRounds(targets: [Target, Target], rounds: number, seconds: number, warmup = 1): Promise<Row[]> {
  const name = `bench/http-${RUN_ID}`;
  const seeded = new Map<Target, { layer: string }>();
  for (const target of targets) seeded.set(target, await seedImage(target.url, name));
  const scenarios: Array<{ title: string; method: 'GET' | 'HEAD'; path: (t: Target) => string }> = [
    { title: 'HEAD manifest by tag', method: 'HEAD', path: () => `/v2/${name}/manifests/latest` },
    { title: 'GET manifest by tag', method: 'GET', path: () => `/v2/${name}/manifests/latest` },
    { title: 'HEAD blob', method: 'HEAD', path: (t) => `/v2/${name}/blobs/${seeded.get(t)!.layer}` },
  ];
  const rows: Row[] = [];
  for (const scenario of scenarios) {
    for (const connections of [1, 32]) {
      const label = `${scenario.title}, ${connections} connection${connections > 1 ? 's' : ''}`;
      const rate: Row = { operation: label, metric: 'requests/s', better: 'higher', berth: [], reference: [], digits: 0 };
      const p50: Row = { operation: label, metric: 'p50 latency (ms)', better: 'lower', berth: [], reference: [], digits: 3 };
      const p99: Row = { operation: label, metric: 'p99 latency (ms)', better: 'lower', berth: [], reference: [], digits: 3 };
      // Warm-up (JIT, connection pools, caches), not measured.
      for (const target of targets) await load(`${target.url}${scenario.path(target)}`, scenario.method, connections, warmup);
      for (let round = 0; round < rounds; round++) {
        for (const target of ordered(targets, round)) {
          const result = await load(`${target.url}${scenario.path(target)}`, scenario.method, connections, seconds);
          if (result.failures > 0) throw new Error(`${label} against ${target.label}: ${result.failures} failed requests`);
          const side = target.label === 'Berth' ? 'berth' : 'reference';
          rate[side].push(result.rate);
          p50[side].push(result.p50);
          p99[side].push(result.p99);
          progress(`${label} ${target.label}: ${result.rate.toFixed(0)} req/s, p50 ${result.p50.toFixed(3)} ms, p99 ${result.p99.toFixed(3)} ms`);
        }
      }
      rows.push(rate, p50, p99);
    }
  }
  return rows;
}
