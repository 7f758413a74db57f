// One Lambda cold start, in a fresh Node process: import the bundled `api` handler (the module
// Lambda loads), answer one API Gateway payload 2.0 event (HEAD of a manifest by tag, which
// reaches DynamoDB), then warm requests. Prints one JSON line. Run by test/bench/lambda.ts with
// BENCH_BUNDLE (file path), BENCH_REPOSITORY, BENCH_LAYER and the Berth configuration variables.
import { pathToFileURL } from 'node:url';

const processStart = performance.now(); // ms since this process started (Node bootstrap)
const { handler } = await import(pathToFileURL(process.env.BENCH_BUNDLE).href);
const imported = performance.now();

const repository = process.env.BENCH_REPOSITORY;
const accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
function event(method, path) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { accept, host: 'registry.example.com', 'x-forwarded-proto': 'https' },
    isBase64Encoded: false,
    requestContext: { http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'bench' }, domainName: 'registry.example.com', stage: '$default' },
  };
}
const headManifest = event('HEAD', `/v2/${repository}/manifests/latest`);
const getManifest = event('GET', `/v2/${repository}/manifests/latest`);
const headBlob = event('HEAD', `/v2/${repository}/blobs/${process.env.BENCH_LAYER}`);

async function call(e, expected = 200) {
  const result = await handler(e, {});
  if (result.statusCode !== expected) throw new Error(`${e.requestContext.http.method} ${e.rawPath}: ${result.statusCode} ${result.body ?? ''}`);
}

const firstStart = performance.now();
await call(headManifest);
const firstDone = performance.now();

const warm = {};
for (const [name, e] of [['HEAD manifest', headManifest], ['GET manifest', getManifest], ['HEAD blob', headBlob]]) {
  const times = [];
  for (let i = 0; i < Number(process.env.BENCH_WARM ?? 100); i++) {
    const t = performance.now();
    await call(e);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  warm[name] = { p50: times[Math.floor(times.length / 2)], p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] };
}
console.log(JSON.stringify({ nodeStartMs: processStart, importMs: imported - processStart, firstRequestMs: firstDone - firstStart, warm }));
