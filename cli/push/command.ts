/**
 * `berth push <image> [--from docker|oci-layout|docker-archive] [--path <dir|file>] [--insecure]
 * [--compression-level 1-9]`: the command line of the push (see push.ts). Exit codes: 0 pushed,
 * 1 failed, 2 usage error.
 */
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { closeAgents } from './http.js';
import { SourceError } from './image.js';
import { push, type SourceKind } from './push.js';
import { parseImageReference, PushUsageError } from './reference.js';
import { RegistryError } from './registry.js';

export const PUSH_USAGE = `usage: berth push <registry>/<repository>[:<tag>] [options]
  --from docker|oci-layout|docker-archive   where the image is (default: docker, the local Docker
                                            Engine; with --path: its kind)
  --path <dir|file>                         OCI layout folder (dir or dir:tag) or docker save archive
  --insecure                                plain HTTP to a registry that is not on this machine
  --compression-level <1-9>                 gzip level of layers compressed here (default 6)
credentials: those of docker login ($DOCKER_CONFIG/config.json, credential helpers)`;

const SOURCES: SourceKind[] = ['docker', 'oci-layout', 'docker-archive'];

/** Runs `berth push` with `args` (after `push`); returns the exit code. */
export async function pushCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        from: { type: 'string' },
        path: { type: 'string' },
        insecure: { type: 'boolean' },
        'compression-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) return void console.log(PUSH_USAGE), 0;
    if (positionals.length !== 1) throw new PushUsageError(`name one image to push\n${PUSH_USAGE}`);
    const reference = parseImageReference(positionals[0]);
    const from = (values.from ?? (values.path ? await kindOf(values.path) : 'docker')) as SourceKind;
    if (!SOURCES.includes(from)) throw new PushUsageError(`--from is one of ${SOURCES.join(', ')}`);
    if (from !== 'docker' && !values.path) throw new PushUsageError(`--from ${from} needs --path`);
    const level = values['compression-level'] === undefined ? undefined : Number(values['compression-level']);
    if (level !== undefined && !(Number.isInteger(level) && level >= 1 && level <= 9)) throw new PushUsageError('--compression-level is 1 to 9');
    await push({ reference, from, path: values.path, insecure: values.insecure, level });
    return 0;
  } catch (error) {
    const usage = error instanceof PushUsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    const known = usage || error instanceof SourceError || error instanceof RegistryError;
    console.error(`berth push: ${known ? (error as Error).message : ((error as Error).stack ?? String(error))}`);
    return usage ? 2 : 1;
  } finally {
    closeAgents();
  }
}

async function kindOf(path: string): Promise<SourceKind> {
  const info = await stat(path.replace(/:[^/:]*$/, '')).catch(() => stat(path)).catch(() => undefined);
  if (!info) throw new PushUsageError(`nothing at ${path}`);
  return info.isDirectory() ? 'oci-layout' : 'docker-archive';
}
