/**
 * The credentials `docker login` stored: `$DOCKER_CONFIG/config.json` (default
 * `~/.docker/config.json`). Looked up as the docker CLI does: `credHelpers[<host>]`, else
 * `credsStore` (both run `docker-credential-<helper> get` with the server name on stdin and read
 * `{"ServerURL","Username","Secret"}`), else `auths[<host>]` with `auth` = base64 `user:password`
 * or an `identitytoken`. Keys of `auths` are compared as host names (`https://r:5000/v1/` = `r:5000`).
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** A user name and password, or an identity (refresh) token for the OAuth2 token endpoint. */
export type Credentials = { username: string; password: string } | { identityToken: string; username?: string };

/** The parts of config.json that matter here. */
export interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** What a credential helper answered for `get`, or undefined when it has nothing for the server. */
export type HelperRunner = (helper: string, server: string) => Promise<{ Username?: string; Secret?: string } | undefined>;

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/** Reads the docker config; a missing file is an empty config. @throws Error for a file that is not JSON. */
export async function readDockerConfig(path = dockerConfigPath()): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}

/** `https://host:port/v1/` → `host:port` (how docker matches `auths` keys). */
export function hostOf(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').split('/')[0].toLowerCase();
}

/** The stored credentials for `registry` (`host[:port]`), or undefined (anonymous). */
export async function lookupCredentials(config: DockerConfig, registry: string, runHelper: HelperRunner = runCredentialHelper): Promise<Credentials | undefined> {
  const host = hostOf(registry);
  const helper = Object.entries(config.credHelpers ?? {}).find(([key]) => hostOf(key) === host)?.[1] ?? config.credsStore;
  if (helper) {
    const found = await runHelper(helper, registry);
    if (found?.Secret) {
      if (!found.Username || found.Username === '<token>') return { identityToken: found.Secret };
      return { username: found.Username, password: found.Secret };
    }
  }
  const entry = Object.entries(config.auths ?? {}).find(([key]) => hostOf(key) === host)?.[1];
  if (!entry) return undefined;
  if (entry.identitytoken) return { identityToken: entry.identitytoken, username: entry.username };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  return undefined;
}

/**
 * Runs `docker-credential-<helper> get` with `server` on stdin. "credentials not found" (exit
 * 1) is undefined. @throws Error when the helper is missing or fails otherwise.
 */
export function runCredentialHelper(helper: string, server: string): Promise<{ Username?: string; Secret?: string } | undefined> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.once('error', (error) => reject(new Error(`cannot run ${program} (credsStore/credHelpers in the docker config): ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0) {
        try {
          resolve(JSON.parse(out));
        } catch {
          reject(new Error(`${program} get printed something that is not JSON`));
        }
      } else if (/not found|no credentials/i.test(out)) resolve(undefined);
      else reject(new Error(`${program} get failed: ${out.trim().slice(0, 200)}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(server);
  });
}
