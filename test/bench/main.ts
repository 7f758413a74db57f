/**
 * `npm run bench [-- --quick] [--sections docker,http,chunked,berth-push,frontdoor,lambda,cost] [--out <file.md>]
 *   [--keep-logs <dir>] [--no-build]`
 *
 * Berth (`npm start`: embedded emulators) and the reference registry (Debian's docker-registry,
 * CNCF distribution, filesystem storage; installed from Debian if missing) side by side on this
 * machine: the same work against both, alternating, several rounds, medians, ratios Berth /
 * reference. Then pushes through the emulated front door (`BERTH_EMULATE_LAMBDA=1`: Docker 29 and
 * `berth push`) against docker 20.10 → the reference (test/bench/frontdoor.ts). Then the Lambda
 * bundle's size and cold start, and the cost per push and pull.
 * Progress goes to stderr; the Markdown report to stdout (and to --out).
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus, loadavg, totalmem } from 'node:os';
import { Cleanup, Docker, run } from '../e2e/helpers.js';
import { BerthProcess } from './berth.js';
import { berthPushAvailable, berthPushRounds } from './berthpush.js';
import { chunkedRounds } from './chunked.js';
import { costBench, PRICES, renderCost } from './cost.js';
import { DEBIAN, dockerRounds, RANDOM_64, TEN_LAYERS } from './docker.js';
import { frontdoorRounds } from './frontdoor.js';
import { httpRounds } from './http.js';
import { lambdaBench, type LambdaReport } from './lambda.js';
import { ensureReferenceInstalled, ReferenceRegistry } from './reference.js';
import { markdownTable, MiB, peakRssMiB, progress, renderTable, type Row, type Target } from './report.js';

const SECTIONS = ['docker', 'http', 'chunked', 'berth-push', 'frontdoor', 'lambda', 'cost'] as const;
type Section = (typeof SECTIONS)[number];

function parseArgs(argv: string[]): { quick: boolean; sections: Set<Section>; out?: string; build: boolean; keepLogs?: string } {
  let quick = false;
  let keepLogs: string | undefined;
  let build = true;
  let out: string | undefined;
  let sections = new Set<Section>(SECTIONS);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--no-build') build = false;
    else if (arg === '--out') out = argv[++i];
    else if (arg === '--keep-logs') keepLogs = argv[++i];
    else if (arg.startsWith('--out=')) out = arg.slice(6);
    else if (arg === '--sections' || arg.startsWith('--sections=')) {
      const list = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      sections = new Set(list.split(',').map((s) => s.trim()) as Section[]);
      for (const s of sections) if (!SECTIONS.includes(s)) throw new Error(`unknown section ${s}; known: ${SECTIONS.join(', ')}`);
    } else throw new Error(`unknown argument ${arg}\nusage: npm run bench -- [--quick] [--sections ${SECTIONS.join(',')}] [--out file.md] [--no-build] [--keep-logs dir]`);
  }
  return { quick, sections, out, build, keepLogs };
}

async function machine(): Promise<string[]> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const docker = await run('docker', ['version', '--format', '{{.Server.Version}} (client {{.Client.Version}})']);
  const driver = await run('docker', ['info', '--format', '{{.Driver}}']);
  const kernel = await run('uname', ['-r']);
  const commit = (await run('git', ['rev-parse', '--short', 'HEAD'])).stdout.trim();
  const dirty = (await run('git', ['status', '--porcelain', '--', 'functions', 'infra', 'cli'])).stdout.split('\n').filter(Boolean).map((l) => l.slice(3));
  return [
    `- Berth at commit ${commit || 'unknown'}${dirty.length > 0 ? ` with uncommitted changes in ${dirty.join(', ')}` : ''}`,
    `- CPU: ${model}, \`nproc\` = ${(await run('nproc', [])).stdout.trim()}`,
    `- memory: ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- kernel ${kernel.stdout.trim()}, Node ${process.version}, dockerd ${docker.stdout.trim()} with storage driver ${driver.stdout.trim()}`,
    `- load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`,
  ];
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const q = options.quick;
  const plan = {
    dockerRounds: q ? 2 : 5,
    debianRounds: q ? 1 : 3,
    httpRounds: q ? 1 : 3,
    httpSeconds: q ? 2 : 10,
    chunkedRounds: q ? 2 : 5,
    berthPushRounds: q ? 1 : 3,
    frontdoorRounds: q ? 1 : 3,
    frontdoorMiB: q ? 64 : 300,
    coldRuns: 10,
    variantRuns: q ? 0 : 10,
  };
  const started = Date.now();
  const cleanup = new Cleanup();
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      progress(`${signal}: cleaning up`);
      void cleanup.run().finally(() => process.exit(130));
    });
  }
  const report: string[] = [];
  const problems: string[] = [];
  const rows: Row[] = [];
  let lambda: LambdaReport | undefined;
  const section = async (name: Section, work: () => Promise<void>) => {
    if (!options.sections.has(name) || interrupted) return;
    const t = Date.now();
    try {
      await work();
    } catch (error) {
      problems.push(`${name}: ${(error as Error).stack ?? error}`);
      progress(`section ${name} FAILED: ${(error as Error).message}`);
    }
    progress(`section ${name} took ${((Date.now() - t) / 1000).toFixed(0)} s`);
  };

  try {
    const machineLines = await machine();
    const needsRegistries = ['docker', 'http', 'chunked', 'berth-push'].some((s) => options.sections.has(s as Section));
    let version = '';
    if (needsRegistries) {
      version = await ensureReferenceInstalled(progress);
      const berth = await BerthProcess.start(cleanup);
      const reference = await ReferenceRegistry.start(cleanup);
      progress(`Berth on ${berth.url} (pid ${berth.child.pid}), reference ${version} on ${reference.url} (pid ${reference.pid})`);
      const targets: [Target, Target] = [
        { label: 'Berth', host: berth.host, url: berth.url },
        { label: 'reference', host: reference.host, url: reference.url },
      ];
      const docker = await Docker.create(cleanup);
      await section('docker', async () => {
        for (const [kind, rounds] of [
          [RANDOM_64, plan.dockerRounds],
          [TEN_LAYERS, plan.dockerRounds],
          [DEBIAN, plan.debianRounds],
        ] as const) {
          rows.push(...(await dockerRounds(docker, cleanup, targets, kind, rounds)));
        }
      });
      await section('http', async () => void rows.push(...(await httpRounds(targets, plan.httpRounds, plan.httpSeconds, q ? 0.5 : 1))));
      await section('chunked', async () => void rows.push(...(await chunkedRounds(targets, plan.chunkedRounds))));
      await section('berth-push', async () => {
        if (!(await berthPushAvailable())) {
          progress('berth push: `npx berth push --help` does not offer push; row skipped');
          report.push('', '_`berth push` row skipped: `npx berth push --help` does not offer a push command in this checkout._');
          return;
        }
        const result = await berthPushRounds(docker, cleanup, targets, berth.dataDir, plan.berthPushRounds);
        rows.push(...result.rows);
        report.push('', result.note);
      });
      rows.push({
        operation: `peak memory of the registry process over the sections above (${[...options.sections].filter((s) => s !== 'frontdoor' && s !== 'lambda' && s !== 'cost').join(', ')})`,
        metric: 'peak RSS (MiB)',
        better: 'lower',
        berth: [await peakRssMiB(berth.child.pid!)],
        reference: [await peakRssMiB(reference.pid)],
        digits: 0,
      });
      await berth.stop();
      await reference.stop();
      if (options.keepLogs) {
        await mkdir(options.keepLogs, { recursive: true });
        await copyFile(berth.logFile, join(options.keepLogs, 'berth.log'));
        await copyFile(join(reference.dir, 'registry.log'), join(options.keepLogs, 'reference.log'));
        progress(`request logs kept in ${options.keepLogs}`);
      }
    }
    await section('frontdoor', async () => {
      const result = await frontdoorRounds(cleanup, plan.frontdoorRounds, plan.frontdoorMiB);
      version ||= result.version;
      rows.push(...result.rows);
      for (const note of result.notes) report.push('', note);
    });
    await section('lambda', async () => {
      lambda = await lambdaBench({ coldRuns: plan.coldRuns, variantRuns: plan.variantRuns, build: options.build });
    });
    let cost: string | undefined;
    await section('cost', async () => {
      const result = await costBench(cleanup, { layers: 5, layerBytes: 1 * MiB });
      cost = renderCost(result, lambda?.median.initMs);
    });

    const minutes = ((Date.now() - started) / 60000).toFixed(1);
    const out: string[] = [
      `# Berth benchmarks (${q ? 'quick' : 'full'} run, ${new Date().toISOString().slice(0, 10)}, ${minutes} min)`,
      '',
      'Machine:',
      '',
      ...machineLines,
      `- load average at end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`,
      '',
    ];
    if (rows.length > 0) {
      out.push(
        `## Berth vs the reference registry (${version ? `docker-registry ${version}` : 'reference'}), same machine`,
        '',
        `Medians over rounds, alternating which registry goes first. Rounds: docker ${plan.dockerRounds} (Debian ${plan.debianRounds}), HTTP ${plan.httpRounds} × ${plan.httpSeconds} s per registry and case, chunked upload ${plan.chunkedRounds}, front door ${plan.frontdoorRounds} × ${plan.frontdoorMiB} MiB (its rows: Docker 29 or \`berth push\` to \`BERTH_EMULATE_LAMBDA=1\` in the Berth column, docker 20.10 to the reference in the reference column). The last column is Berth / reference: below 1.00× is better for Berth where lower is better (times, latencies), above 1.00× where higher is better (rates).`,
        '',
        renderTable(rows),
        ...report,
        '',
      );
    }
    if (lambda) out.push(...renderLambda(lambda), '');
    if (cost) out.push(`## Cost per operation (AWS list prices, ${PRICES.region}, ${PRICES.asOf})`, '', cost, '');
    if (problems.length > 0) out.push('## Failures', '', ...problems.map((p) => `\`\`\`\n${p}\n\`\`\``), '');
    const text = out.join('\n');
    process.stdout.write(`${text}\n`);
    if (options.out) await writeFile(options.out, `${text}\n`);
  } finally {
    await cleanup.run();
  }
  if (problems.length > 0) process.exitCode = 1;
}

function renderLambda(l: LambdaReport): string[] {
  const kb = (b: number) => `${(b / 1000).toFixed(0)} kB`;
  const m = l.median;
  const ratio = m.initMs / m.nodeStartMs;
  const initOk = ratio <= 1 ? 'meets' : 'misses';
  const sizeOk = l.bundleBytes <= 800_000 ? 'meets' : 'misses';
  const lines = [
    '## Lambda bundle and cold start',
    '',
    `\`dist/api/\` (\`npm run build\`, minified ESM: \`index.mjs\` ${l.entryBytes.toLocaleString('en-US')} bytes and the chunks it loads on demand): **${l.bundleBytes.toLocaleString('en-US')} bytes** (${kb(l.bundleGzipBytes)} gzipped) — ${sizeOk} the goal of ≤ 800 kB.`,
    '',
    `Cold init in a fresh Node ${l.nodeVersion} process (Lambda runs nodejs22.x), median of ${l.runs.length}: **${m.initMs.toFixed(1)} ms** = import of the bundle ${m.importMs.toFixed(1)} ms + first request ${m.firstRequestMs.toFixed(1)} ms (HEAD manifest by tag, an API Gateway payload 2.0 event, against the local DynamoDB/S3 emulators; \`BERTH_AUTH=off\`, inline \`BERTH_TOKEN_KEY\`). Node's own start before the import: ${m.nodeStartMs.toFixed(1)} ms (not counted; on Lambda the runtime bootstrap is AWS's): **${ratio.toFixed(2)}×** Node's start — ${initOk} the goal of ≤ 1.00× (the ratio travels between machines).`,
    '',
    markdownTable(
      ['warm request (handler called directly)', 'p50 (ms)', 'p99 (ms)'],
      Object.entries(m.warm).map(([name, w]) => [name, w.p50.toFixed(3), w.p99.toFixed(3)]),
      ['---', '---:', '---:'],
    ),
    '',
    'What the bundle is made of (esbuild metafile, bytes in the minified output):',
    '',
    markdownTable(
      ['package / folder', 'bytes', 'share'],
      l.composition.byOwner.slice(0, 12).map((o) => [o.owner, o.bytes.toLocaleString('en-US'), `${((100 * o.bytes) / l.composition.bytes).toFixed(1)} %`]),
      ['---', '---:', '---:'],
    ),
    '',
    `zod's locale files: ${l.composition.zodLocales.toLocaleString('en-US')} bytes. Largest single inputs: ${l.composition.largestFiles
      .slice(0, 4)
      .map((f) => `\`${f.file}\` ${f.bytes.toLocaleString('en-US')}`)
      .join(', ')}.`,
    '',
    'Variants: infra/build.mjs run with one change each (test/bench/esbuild-hook.mjs), into a scratch folder; nothing applied:',
    '',
    markdownTable(
      ['variant', 'change', 'bytes', 'cold init (ms)', 'import (ms)'],
      l.variants.map((v) => [v.name, v.change, v.bytes.toLocaleString('en-US'), v.initMs?.toFixed(1) ?? '–', v.importMs?.toFixed(1) ?? '–']),
      ['---', '---', '---:', '---:', '---:'],
    ),
  ];
  return lines;
}

await main();
