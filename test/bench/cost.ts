/**
 * Cost per operation. Berth runs in this process on the embedded emulators, configured as it is
 * deployed (BERTH_AUTH=required, blob GETs answered with 307 to presigned S3 URLs), with counting
 * middleware on its own DynamoDB and S3 clients (ReturnConsumedCapacity=TOTAL on every DynamoDB
 * call). docker logs in, pushes a 5-layer image, pushes it again, pulls it into an empty cache and
 * pulls it again; for each phase we count:
 *
 * - Lambda invocations: HTTP requests that reach the handler (one `api` invocation each on AWS),
 *   and their handler time here (an estimate of billed duration: local emulators, not AWS);
 * - API Gateway HTTP API requests, metered in 512 KiB steps of the request (or response) size;
 * - DynamoDB read / write request units (as the emulator reports them; failed conditional writes
 *   count 1 WRU, as AWS bills them);
 * - S3 requests by price class (Berth's own calls, plus the client's GET of each presigned URL,
 *   i.e. each 307 answer).
 *
 * Then prices them with AWS list prices (PRICES below).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { hashPassword } from '../../functions/auth/passwords.js';
import { loadConfig } from '../../functions/config.js';
import { createRegistry } from '../../functions/core/registry.js';
import { createDynamoClient, DynamoMetadataStore } from '../../functions/storage/dynamodb.js';
import { createS3Client, S3BlobStore } from '../../functions/storage/s3.js';
import { SealedSecrets } from '../../functions/storage/secrets.js';
import { EMULATOR_CREDENTIALS, startEmulators } from '../../infra/local/emulators.js';
import { createRegistryServer } from '../../infra/local/server.js';
import { buildImage, type Cleanup, Docker, RUN_ID, sleep } from '../e2e/helpers.js';
import { forget } from './docker.js';
import { markdownTable, MiB, progress } from './report.js';

/** AWS list prices, us-east-1 (see RESULTS.md for the date and sources). */
export const PRICES = {
  region: 'us-east-1',
  asOf: '2026-11-29',
  lambdaPerRequest: 0.2 / 1e6,
  lambdaArmPerGbSecond: 0.0000133334,
  lambdaMemoryGb: 1, // 1024 MB, serverless.yml
  apiGatewayHttpPerRequest: 1.0 / 1e6, // first 300 M / month, metered per 512 KB
  dynamoPerRru: 0.125 / 1e6, // on-demand (after the November 2024 reduction)
  dynamoPerWru: 0.625 / 1e6,
  dynamoStoragePerGbMonth: 0.25, // first 25 GB free
  s3PutClassPer1000: 0.005, // PUT, COPY, POST, LIST (CreateMultipartUpload, UploadPart, Complete…)
  s3GetClassPer1000: 0.0004, // GET, HEAD (SELECT and others)
  s3StoragePerGbMonth: 0.023, // Standard, first 50 TB
  secretPerMonth: 0.4, // Secrets Manager, per secret
  secrets: 2, // the token signing key and the front door's upload key (README, "Keys: why Secrets Manager")
  secretPer10kCalls: 0.05,
  alarmPerMonth: 0.1, // CloudWatch standard-resolution alarm; 10 per account are always free
  alarms: 8, // infra/aws/operations.cjs: API 5xx, errors and throttles of 3 functions, the failure queue
  ecrStoragePerGbMonth: 0.1,
  transferOutPerGb: 0.09, // to the internet, first 10 TB / month (S3, ECR and EC2 alike); in-region: free
  t4gSmallPerHour: 0.0168,
  ebsGp3PerGbMonth: 0.08,
  publicIpv4PerHour: 0.005,
  hoursPerMonth: 730,
};

const PUT_CLASS = new Set(['PutObject', 'CopyObject', 'CreateMultipartUpload', 'UploadPart', 'UploadPartCopy', 'CompleteMultipartUpload', 'ListObjectsV2', 'ListObjects', 'ListParts', 'ListMultipartUploads']);
const GET_CLASS = new Set(['GetObject', 'HeadObject']);
const FREE_CLASS = new Set(['DeleteObject', 'DeleteObjects', 'AbortMultipartUpload']);

interface RequestLine {
  method: string;
  path: string;
  status: number;
  ms: number;
  bytesIn: number;
  bytesOut: number;
}

class Counters {
  requests: RequestLine[] = [];
  dynamo = new Map<string, { calls: number; units: number; failed: number }>();
  s3 = new Map<string, number>();

  reset(): void {
    this.requests = [];
    this.dynamo.clear();
    this.s3.clear();
  }

  dynamoCall(command: string, units: number | undefined, failed: boolean): void {
    const entry = this.dynamo.get(command) ?? { calls: 0, units: 0, failed: 0 };
    entry.calls += 1;
    // A failed conditional write is billed (1 WRU for items up to 1 KB); reads that fail are not.
    entry.units += units ?? (failed && isWrite(command) ? 1 : 0);
    if (failed) entry.failed += 1;
    this.dynamo.set(command, entry);
  }

  snapshot(): Phase['counts'] {
    let rru = 0;
    let wru = 0;
    const dynamoCalls: Record<string, number> = {};
    for (const [command, entry] of this.dynamo) {
      if (isWrite(command)) wru += entry.units;
      else rru += entry.units;
      dynamoCalls[command] = entry.calls;
    }
    let s3Put = 0;
    let s3Get = 0;
    let s3Free = 0;
    const s3Calls: Record<string, number> = {};
    for (const [command, calls] of this.s3) {
      s3Calls[command] = calls;
      if (PUT_CLASS.has(command)) s3Put += calls;
      else if (GET_CLASS.has(command)) s3Get += calls;
      else if (FREE_CLASS.has(command)) s3Free += calls;
      else s3Put += calls; // unknown: priced as the dearer class
    }
    const redirects = this.requests.filter((r) => r.status === 307).length;
    const apiGateway = this.requests.reduce((sum, r) => sum + Math.max(1, Math.ceil(Math.max(r.bytesIn, r.bytesOut) / (512 * 1024))), 0);
    return {
      invocations: this.requests.length,
      handlerMs: this.requests.reduce((sum, r) => sum + Math.ceil(r.ms), 0),
      apiGateway,
      rru,
      wru,
      s3Put,
      s3Get: s3Get + redirects,
      s3ClientGets: redirects,
      s3Free,
      bytesIn: this.requests.reduce((sum, r) => sum + r.bytesIn, 0),
      requestsByRoute: summariseRoutes(this.requests),
      dynamoCalls,
      s3Calls,
    };
  }
}

const isWrite = (command: string) => /^(Put|Update|Delete|BatchWrite|TransactWrite)/.test(command);

function summariseRoutes(requests: RequestLine[]): Record<string, number> {
  const routes: Record<string, number> = {};
  for (const r of requests) {
    const shape = r.path
      .replace(/^\/v2\/.+?\/(manifests|blobs|tags)\//, '/v2/<name>/$1/')
      .replace(/sha256:[0-9a-f]{64}/, '<digest>')
      .replace(/uploads\/[^/]+$/, 'uploads/<id>')
      .replace(/manifests\/[^/<]+$/, 'manifests/<tag>');
    const key = `${r.method} ${shape} ${r.status}`;
    routes[key] = (routes[key] ?? 0) + 1;
  }
  return routes;
}

export interface Phase {
  name: string;
  counts: {
    invocations: number;
    handlerMs: number;
    apiGateway: number;
    rru: number;
    wru: number;
    s3Put: number;
    s3Get: number;
    s3ClientGets: number;
    s3Free: number;
    bytesIn: number;
    requestsByRoute: Record<string, number>;
    dynamoCalls: Record<string, number>;
    s3Calls: Record<string, number>;
  };
  /** Request cost of one operation in USD (no data transfer). */
  requestCost: number;
}

function requestCost(c: Phase['counts']): number {
  return (
    c.invocations * PRICES.lambdaPerRequest +
    (c.handlerMs / 1000) * PRICES.lambdaMemoryGb * PRICES.lambdaArmPerGbSecond +
    c.apiGateway * PRICES.apiGatewayHttpPerRequest +
    c.rru * PRICES.dynamoPerRru +
    c.wru * PRICES.dynamoPerWru +
    (c.s3Put / 1000) * PRICES.s3PutClassPer1000 +
    (c.s3Get / 1000) * PRICES.s3GetClassPer1000
  );
}

export interface CostReport {
  layers: number;
  layerBytes: number;
  imageBytes: number;
  phases: Phase[];
}

/** docker login, push, push again, pull (empty cache), pull again against an instrumented Berth. */
export async function costBench(cleanup: Cleanup, options: { layers: number; layerBytes: number }): Promise<CostReport> {
  const dir = await cleanup.tempDir('cost');
  const emulators = await startEmulators(dir);
  cleanup.add('stop the cost emulators', () => emulators.stop());
  const tokenKey = randomBytes(32).toString('base64');
  const config = loadConfig({ ...emulators.env, BERTH_AUTH: 'required', BERTH_TOKEN_KEY: tokenKey, BERTH_BLOB_DELIVERY: 'redirect' });
  const counters = new Counters();

  const db = createDynamoClient({ ...config.dynamo, credentials: EMULATOR_CREDENTIALS });
  db.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as Record<string, unknown>;
      input.ReturnConsumedCapacity = 'TOTAL';
      const command = String(context.commandName ?? 'unknown').replace(/Command$/, '');
      try {
        const result = await next(args);
        const consumed = (result.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity;
        counters.dynamoCall(command, consumed?.CapacityUnits, false);
        return result;
      } catch (error) {
        counters.dynamoCall(command, undefined, true);
        throw error;
      }
    },
    { step: 'initialize', name: 'benchCountCapacity', priority: 'high' },
  );
  const s3 = createS3Client({ ...config.s3, credentials: EMULATOR_CREDENTIALS });
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName ?? 'unknown').replace(/Command$/, '');
      counters.s3.set(command, (counters.s3.get(command) ?? 0) + 1);
      return next(args);
    },
    // The deserialize step wraps the HTTP call itself: presigned URLs (built by the same stack,
    // which the presigner cuts short before sending) are not counted, retries are.
    { step: 'deserialize', name: 'benchCountRequests', priority: 'low' },
  );
  const metadata = new DynamoMetadataStore(db, config.dynamo.table);
  const registry = createRegistry(metadata, new S3BlobStore(s3, config.s3.bucket), {
    delivery: config.delivery,
    uploads: { partSize: config.partSize },
    auth: config.auth,
    tokenKey: async () => Buffer.from(tokenKey, 'base64'),
    // No cache rules in the cost runs: a key of their own, never used.
    secrets: new SealedSecrets(randomBytes(32)),
  });
  const server = createRegistryServer(registry, {
    log: (line) => {
      const match = /^(\S+) (\S+) (\d+) ([\d.]+)ms in=(\d+) out=(\d+)/.exec(line);
      if (match) {
        counters.requests.push({ method: match[1], path: match[2], status: Number(match[3]), ms: Number(match[4]), bytesIn: Number(match[5]), bytesOut: Number(match[6]) });
      }
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add('stop the cost server', async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  const password = randomBytes(12).toString('hex');
  await metadata.putAccount({ name: 'bench', kind: 'user', role: 'writer', repositories: [], passwordHash: await hashPassword(password), credentialVersion: 1, createdAt: Date.now() });
  const docker = await Docker.create(cleanup);
  const source = `berth-bench/cost:${RUN_ID}`;
  progress(`cost: building a ${options.layers}-layer image (${options.layers} × ${options.layerBytes / MiB} MiB random)`);
  await buildImage(
    docker,
    cleanup,
    source,
    Array.from({ length: options.layers }, (_, i) => ({ [`data${i}.bin`]: options.layerBytes })),
  );
  const layers = await docker.layerCount(source);
  const ref = `${host}/bench/cost-${RUN_ID}:v1`;
  cleanup.images(ref);
  await docker.ok(['tag', source, ref]);

  const phases: Phase[] = [];
  const phase = async (name: string, work: () => Promise<unknown>) => {
    counters.reset();
    await work();
    await sleep(300); // the last log lines are written after the response ends
    const counts = counters.snapshot();
    phases.push({ name, counts, requestCost: requestCost(counts) });
    progress(`cost: ${name}: ${counts.invocations} invocations, ${counts.rru} RRU, ${counts.wru} WRU, ${counts.s3Put} S3 PUT-class, ${counts.s3Get} S3 GET-class`);
  };
  await phase('docker login', async () => {
    const result = await docker.login(host, 'bench', password);
    if (result.code !== 0) throw new Error(`docker login failed:\n${result.output}`);
  });
  await phase(`docker push (${layers} new layers)`, () => docker.push(ref));
  await phase('docker push again (nothing new)', () => docker.push(ref));
  await forget(docker, source);
  await phase(`docker pull (empty cache, ${layers} layers)`, () => docker.pull(ref, layers));
  await phase('docker pull again (up to date)', () => docker.ok(['pull', ref]));
  await forget(docker, ref);
  const imageBytes = phases[1].counts.bytesIn;
  return { layers, layerBytes: options.layerBytes, imageBytes, phases };
}

const usd = (value: number, digits = 4) => `$${value.toFixed(digits)}`;

/** The cost tables in Markdown. */
export function renderCost(report: CostReport, coldInitMs: number | undefined): string {
  const p = PRICES;
  const gb = report.imageBytes / 1e9;
  const out: string[] = [];
  out.push(
    `Image: ${report.layers} layers of ${report.layerBytes / MiB} MiB random data (about ${(report.imageBytes / MiB).toFixed(1)} MiB pushed), docker with stored credentials against Berth with \`BERTH_AUTH=required\` and \`BERTH_BLOB_DELIVERY=redirect\` (as deployed).`,
    '',
    markdownTable(
      ['operation', 'Lambda invocations', 'handler ms (local)', 'API Gateway requests (512 KB units)', 'DynamoDB RRU', 'DynamoDB WRU', 'S3 PUT-class', 'S3 GET-class (client GETs of presigned URLs)', 'request cost / op'],
      report.phases.map((ph) => [
        ph.name,
        ph.counts.invocations,
        ph.counts.handlerMs,
        ph.counts.apiGateway,
        ph.counts.rru,
        ph.counts.wru,
        ph.counts.s3Put,
        `${ph.counts.s3Get} (${ph.counts.s3ClientGets})`,
        usd(ph.requestCost, 7),
      ]),
      ['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:'],
    ),
    '',
    'What reached the handler, per phase:',
    '',
  );
  for (const ph of report.phases) {
    out.push(`- ${ph.name}: ${Object.entries(ph.counts.requestsByRoute).map(([k, v]) => `${v}× \`${k}\``).join(', ')}`);
    out.push(`  - DynamoDB calls: ${Object.entries(ph.counts.dynamoCalls).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; S3 calls by Berth: ${Object.entries(ph.counts.s3Calls).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
  }
  const push = report.phases.find((ph) => ph.name.startsWith('docker push ('))!;
  const pull = report.phases.find((ph) => ph.name.startsWith('docker pull ('))!;
  const pullAgain = report.phases.find((ph) => ph.name.startsWith('docker pull again'))!;
  const login = report.phases.find((ph) => ph.name === 'docker login')!;
  const egress = gb * p.transferOutPerGb;
  const storagePushes = gb * p.s3StoragePerGbMonth;
  out.push(
    '',
    `Per 1,000 operations (region ${p.region}, list prices as of ${p.asOf}; Lambda arm64 at 1024 MB; free tiers ignored; "egress" = the image leaving AWS to the internet at $${p.transferOutPerGb}/GB, free to compute in the same region for all three):`,
    '',
    markdownTable(
      ['per 1,000', 'Berth: requests', 'Berth: + egress', 'ECR: requests', 'ECR: + egress', 'VM (t4g.small + reference registry)'],
      [
        ['docker pull, empty cache', usd(pull.requestCost * 1000), usd(pull.requestCost * 1000 + egress * 1000, 2), '$0 (no request charge)', usd(egress * 1000, 2), `$0 marginal, ${usd(egress * 1000, 2)} egress`],
        ['docker pull, up to date', usd(pullAgain.requestCost * 1000), usd(pullAgain.requestCost * 1000, 4), '$0', '$0', '$0 marginal'],
        ['docker push, new layers', usd(push.requestCost * 1000), `${usd(push.requestCost * 1000)} (ingress free)`, '$0', '$0 (ingress free)', '$0 marginal'],
        ['docker login', usd(login.requestCost * 1000), usd(login.requestCost * 1000), '$0', '$0', '$0 marginal'],
      ],
      ['---', '---:', '---:', '---:', '---:', '---:'],
    ),
    '',
  );
  if (coldInitMs !== undefined) {
    out.push(
      `Cold starts: since 1 August 2025 Lambda bills the INIT phase; at the measured cold init of ${coldInitMs.toFixed(0)} ms a cold start adds ${usd((coldInitMs / 1000) * p.lambdaArmPerGbSecond * p.lambdaMemoryGb, 8)} (and one Secrets Manager call, ${usd(p.secretPer10kCalls / 10000, 6)}, when a token is first verified or issued).`,
      '',
    );
  }
  const vmMonth = (storedGb: number) => p.t4gSmallPerHour * p.hoursPerMonth + (storedGb + 8) * p.ebsGp3PerGbMonth + p.publicIpv4PerHour * p.hoursPerMonth;
  out.push(
    'Idle cost per month (nothing pushed or pulled; storage and fixed charges only):',
    '',
    markdownTable(
      [
        'stored (compressed layers)',
        `Berth (S3 + ${p.secrets} secrets; DynamoDB metadata is KBs, inside the free 25 GB; ${p.alarms} alarms inside CloudWatch's free 10)`,
        'ECR',
        `VM: t4g.small on demand (${usd(p.t4gSmallPerHour, 4)}/h) + gp3 disk (stored + 8 GB) + public IPv4`,
      ],
      [1, 10, 100].map((stored) => [
        `${stored} GB`,
        usd(stored * p.s3StoragePerGbMonth + p.secrets * p.secretPerMonth, 2),
        usd(stored * p.ecrStoragePerGbMonth, 2),
        usd(vmMonth(stored), 2),
      ]),
      ['---', '---:', '---:', '---:'],
    ),
    '',
    `The alarms cost ${usd(p.alarms * p.alarmPerMonth, 2)} a month more where the account's 10 free alarms are taken by others; without the front door there is one secret (${usd(p.secretPerMonth, 2)} less).`,
    '',
    `Each push of this image adds ${usd(storagePushes, 5)} per month of S3 storage on Berth (${usd(gb * p.ecrStoragePerGbMonth, 5)} on ECR) until garbage collection removes it.`,
  );
  return out.join('\n');
}
