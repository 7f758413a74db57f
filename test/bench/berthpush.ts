/**
 * `berth push` (Berth's own client, presigned S3 uploads around the gateway) against Berth, next
 * to `docker push` of the same image to the reference registry. Only when the command exists:
 * `npx berth push --help` must exit 0 and talk about push.
 */
import { type Cleanup, type Docker, run, RUN_ID } from '../e2e/helpers.js';
import { forget, RANDOM_64, timed } from './docker.js';
import { median, ordered, progress, type Row, type Target } from './report.js';

export async function berthPushAvailable(): Promise<boolean> {
  const result = await run('npx', ['berth', 'push', '--help'], { timeoutMs: 120_000 });
  return result.code === 0 && /\bpush\b/.test(result.output);
}

export async function berthPushRounds(
  docker: Docker,
  cleanup: Cleanup,
  targets: [Target, Target],
  berthDataDir: string,
  rounds: number,
): Promise<{ rows: Row[]; note: string }> {
  const row: Row = {
    operation: `berth push ${RANDOM_64.title} (reference: docker push)`,
    metric: 'wall time (s)',
    better: 'lower',
    berth: [],
    reference: [],
  };
  const startup: number[] = [];
  for (let round = 0; round < rounds; round++) {
    startup.push(await timed(() => run('npx', ['berth', 'push', '--help'], { timeoutMs: 120_000 })));
    const source = `berth-bench/berthpush:${RUN_ID}-r${round}`;
    await RANDOM_64.make(docker, cleanup, source);
    for (const target of ordered(targets, round)) {
      const ref = `${target.host}/bench/berthpush-${RUN_ID}-r${round}:latest`;
      cleanup.images(ref);
      await docker.ok(['tag', source, ref]);
      const seconds = await timed(async () => {
        if (target.label === 'reference') return docker.push(ref, 900_000);
        const result = await run('npx', ['berth', 'push', ref], { env: { ...docker.env, BERTH_DATA_DIR: berthDataDir }, timeoutMs: 900_000 });
        if (result.code !== 0) throw new Error(`npx berth push ${ref} failed:\n${result.output}`);
      });
      (target.label === 'Berth' ? row.berth : row.reference).push(seconds);
      progress(`${target.label === 'Berth' ? 'berth push' : 'docker push'} → ${target.label}: ${seconds.toFixed(2)} s (round ${round + 1}/${rounds})`);
    }
    await forget(docker, source);
  }
  const note = `\`berth push\` wall times include the CLI's start (\`npx\`, then Node loading the bundled CLI, dist/cli.mjs): \`npx berth push --help\` alone took ${median(startup).toFixed(2)} s (median of ${startup.length}).`;
  return { rows: [row], note };
}
