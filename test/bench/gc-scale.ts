/**
 * Garbage collection at scale, simulated: `npm run bench -- gc` is not needed, run it directly:
 *
 *   node --import tsx test/bench/gc-scale.ts [repositories=1000] [manifests per repository=10] [all-tagged]
 *
 * Seeds the embedded DynamoDB (dynalite) straight through the metadata store: per repository,
 * `manifests` image manifests (config + 3 layers, 2 of them shared by the repository's images),
 * every other one tagged, then runs one collection with grace 0 (the untagged half and their own
 * blobs go) and a second one (nothing to do: the steady state of a daily run), and prints
 * duration, requests and the read/write units DynamoDB reports (ReturnConsumedCapacity=TOTAL),
 * priced with the list prices of test/bench/cost.ts. With `all-tagged`, every manifest is tagged
 * and one run measures the steady state alone (a large registry seeds in half the time).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../functions/config.js';
import { GarbageCollector } from '../../functions/core/gc.js';
import { UploadSessions } from '../../functions/core/sessions.js';
import type { Digest } from '../../functions/core/grammar.js';
import { createDynamoClient, DynamoMetadataStore } from '../../functions/storage/dynamodb.js';
import { countRequests } from '../../functions/storage/requests.js';
import { createS3Client, S3BlobStore } from '../../functions/storage/s3.js';
import { EMULATOR_CREDENTIALS, startEmulators } from '../../infra/local/emulators.js';
import { PRICES } from './cost.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const repositories = Number(process.argv[2] ?? 1000);
const perRepository = Number(process.argv[3] ?? 10);
const allTagged = process.argv[4] === 'all-tagged';

const dir = await mkdtemp(join(tmpdir(), 'berth-gc-scale-'));
const emulators = await startEmulators(dir);
const config = loadConfig({ ...emulators.env, BERTH_AUTH: 'off' });
const db = createDynamoClient({ ...config.dynamo, credentials: EMULATOR_CREDENTIALS });
const units = { read: 0, write: 0 };
db.middlewareStack.add(
  (next, context) => async (args) => {
    (args.input as Record<string, unknown>).ReturnConsumedCapacity = 'TOTAL';
    const result = await next(args);
    const consumed = (result.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity?.CapacityUnits ?? 0;
    if (/^(Get|Query|Scan)/.test(String(context.commandName))) units.read += consumed;
    else units.write += consumed;
    return result;
  },
  { step: 'initialize', name: 'benchCapacity', priority: 'high' },
);
const dynamoRequests = countRequests(db);
const s3 = createS3Client({ ...config.s3, credentials: EMULATOR_CREDENTIALS });
const s3Requests = countRequests(s3);
const metadata = new DynamoMetadataStore(db, config.dynamo.table);
const blobs = new S3BlobStore(s3, config.s3.bucket);

const sha = (bytes: Buffer | string): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const seedStart = Date.now();
const old = Date.now() - 2 * 24 * 3600 * 1000;
for (let r = 0; r < repositories; r++) {
  const repository = `team${r % 100}/app${r}`;
  const base = [randomBytes(16), randomBytes(16)].map((b) => ({ digest: sha(b), size: 30_000_000 }));
  const writes: Promise<unknown>[] = [];
  for (const blob of base) writes.push(metadata.putBlobIfAbsent({ ...blob, key: `blobs/${blob.digest}` }).then(() => metadata.putBlobLink(repository, { ...blob, key: `blobs/${blob.digest}` })));
  for (let m = 0; m < perRepository; m++) {
    const own = { digest: sha(randomBytes(16)), size: 5_000_000 };
    const config = { digest: sha(randomBytes(16)), size: 1500 };
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [...base, own].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
    }));
    const digest = sha(manifest);
    for (const blob of [own, config]) writes.push(metadata.putBlobIfAbsent({ ...blob, key: `blobs/${blob.digest}` }).then(() => metadata.putBlobLink(repository, { ...blob, key: `blobs/${blob.digest}` })));
    writes.push(metadata.putManifest({ repository, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: manifest.length, bytes: manifest, createdAt: old }));
    if (allTagged || m % 2 === 0) writes.push(metadata.putTag({ repository, tag: `v${m}`, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: manifest.length, bytes: manifest, updatedAt: old }));
  }
  writes.push(metadata.touchRepository(repository, old));
  await Promise.all(writes);
  if (r % 100 === 99) process.stderr.write(`seeded ${r + 1} repositories (${Math.round((Date.now() - seedStart) / 1000)} s)\n`);
}

const collector = new GarbageCollector(metadata, blobs, new UploadSessions(metadata, blobs), () => ({ dynamodb: dynamoRequests(), s3: s3Requests() }));
const runs = allTagged ? ['steady state (every manifest tagged)'] : ['first run (half the manifests untagged)', 'second run (steady state)'];
for (const label of runs) {
  const before = { ...units };
  const started = Date.now();
  const report = await collector.run({ graceMs: 0, inFlightMs: 0 });
  const seconds = (Date.now() - started) / 1000;
  const rru = units.read - before.read;
  const wru = units.write - before.write;
  const dollars = rru * PRICES.dynamoPerRru + wru * PRICES.dynamoPerWru + ((report.requests?.s3 ?? 0) / 1000) * PRICES.s3PutClassPer1000;
  console.log(JSON.stringify({
    run: label,
    repositories,
    manifests: repositories * perRepository,
    seconds,
    scanned: report.scanned,
    deleted: report.deleted,
    requests: report.requests,
    readUnits: Math.round(rru),
    writeUnits: Math.round(wru),
    dollarsDynamoAndS3Requests: Number(dollars.toFixed(5)),
  }));
}
await emulators.stop();
await rm(dir, { recursive: true, force: true });
