/**
 * HTTPS for `npm start` (BERTH_TLS_CERT, BERTH_TLS_KEY): a certificate from a CA made here with
 * `openssl`, trusted by each client the way a team would trust it (node fetch with
 * NODE_EXTRA_CA_CERTS, crane with SSL_CERT_FILE, skopeo with a cert dir), never
 * `insecure-registries` or `--tls-verify=false`; logins required, so the token realm must be https
 * too. Mistakes in the files end `npm start` with one line.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bin } from '../clients/helpers.js';
import { berth, start } from '../support/cli.js';
import { Cleanup, RegistryProcess, runOk, Skopeo, run, writeRandomFile } from './helpers.js';

const cleanup = new Cleanup();
let dir: string;
let registry: RegistryProcess;
const PASSWORD = 'tls-test-password-4471';

/** A CA, a server certificate it signed for localhost and 127.0.0.1, and an unrelated key. */
async function makeCertificates(): Promise<void> {
  const openssl = (...args: string[]) => runOk('openssl', args, { cwd: dir });
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Berth test CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  await writeFile(join(dir, 'san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.cnf');
  await openssl('genpkey', '-algorithm', 'RSA', '-out', 'other.key');
  // skopeo reads CA certificates from a folder (containers-certs.d: *.crt).
  await mkdir(join(dir, 'certs.d'));
  await copyFile(join(dir, 'ca.crt'), join(dir, 'certs.d', 'ca.crt'));
}

before(async () => {
  dir = await cleanup.tempDir('tls');
  await makeCertificates();
});
after(() => cleanup.run());

test('a missing, half, unreadable, mismatched or non-PEM setting ends npm start with one line, exit 2', async () => {
  const at = (name: string) => join(dir, name);
  const cases: Array<[Record<string, string>, string]> = [
    [{ BERTH_TLS_CERT: at('server.crt') }, 'berth: invalid configuration: BERTH_TLS_CERT and BERTH_TLS_KEY go together: set both (PEM files) or neither'],
    [{ BERTH_TLS_CERT: at('missing.crt'), BERTH_TLS_KEY: at('server.key') }, `berth: cannot read BERTH_TLS_CERT ${at('missing.crt')}: no such file`],
    [{ BERTH_TLS_CERT: at('server.crt'), BERTH_TLS_KEY: dir }, `berth: cannot read BERTH_TLS_KEY ${dir}: a folder, not a file`],
    [{ BERTH_TLS_CERT: at('server.key'), BERTH_TLS_KEY: at('server.key') }, `berth: BERTH_TLS_CERT ${at('server.key')} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`],
    [{ BERTH_TLS_CERT: at('server.crt'), BERTH_TLS_KEY: at('server.crt') }, `berth: BERTH_TLS_KEY ${at('server.crt')} holds no unencrypted PEM private key (an encrypted one: openssl pkey -in <file> -out <new file>)`],
    [{ BERTH_TLS_CERT: at('server.crt'), BERTH_TLS_KEY: at('other.key') }, `berth: BERTH_TLS_KEY ${at('other.key')} is not the private key of the certificate in BERTH_TLS_CERT ${at('server.crt')}`],
  ];
  for (const [env, line] of cases) {
    const result = await start([], { ...env, PORT: '0', BERTH_DATA_DIR: join(dir, 'refused') });
    assert.equal(result.code, 2, result.output);
    assert.equal(result.stderr, `${line}\n`);
  }
});

test('HTTPS with logins: the banner and the realm say https; node fetch, crane and skopeo trust the CA and push and pull', async () => {
  const ca = join(dir, 'ca.crt');
  registry = await RegistryProcess.start(cleanup, {
    env: { BERTH_AUTH: 'required', BERTH_TLS_CERT: join(dir, 'server.crt'), BERTH_TLS_KEY: join(dir, 'server.key') },
    ca: await readFile(ca, 'utf8'),
  });
  assert.ok(registry.lines.some((line) => line.startsWith(`berth: registry listening on https://0.0.0.0:${registry.port} (every interface); logins required`)), registry.tail());
  const added = await berth(['user', 'add', 'alice', '--password-stdin', '--role', 'writer'], { dataDir: registry.dataDir, input: `${PASSWORD}\n` });
  assert.equal(added.code, 0, added.output);

  // Node's fetch, trusting the CA as a Node client would (NODE_EXTRA_CA_CERTS); plain HTTP gets no answer.
  const probe = `const base = process.argv[1];
    const challenge = await fetch(base + '/v2/');
    const plain = await fetch(base.replace('https:', 'http:') + '/v2/').then((r) => r.status, (e) => 'failed');
    console.log(JSON.stringify({ status: challenge.status, challenge: challenge.headers.get('www-authenticate'), plain }));`;
  const fetched = await runOk(process.execPath, ['--input-type=module', '-e', probe, registry.url], { env: { NODE_EXTRA_CA_CERTS: ca } });
  const answer = JSON.parse(fetched.stdout) as { status: number; challenge: string; plain: unknown };
  assert.equal(answer.status, 401);
  assert.equal(answer.challenge, `Bearer realm="https://${registry.host}/token",service="${registry.host}"`);
  assert.equal(answer.plain, 'failed');
  // Without the CA the certificate is refused: trust comes from the CA, not from leniency.
  const untrusted = await run(process.execPath, ['--input-type=module', '-e', probe, registry.url]);
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /self.signed certificate|unable to get local issuer certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN/i);

  // crane (go-containerregistry), with the CA as Go's SSL_CERT_FILE: log in, push, pull.
  const home = await cleanup.tempDir('crane-home');
  const craneEnv = { HOME: home, DOCKER_CONFIG: join(home, '.docker'), SSL_CERT_FILE: ca };
  const crane = async (...args: string[]) => (await runOk(bin('crane'), args, { env: craneEnv, cwd: home })).stdout.trim();
  await crane('auth', 'login', registry.host, '-u', 'alice', '-p', PASSWORD);
  const layer = join(home, 'layer.bin');
  await writeRandomFile(layer, 256 * 1024);
  await runOk('tar', ['-cf', join(home, 'layer.tar'), '-C', home, 'layer.bin']);
  const ref = `${registry.host}/team/app:1`;
  const pushed = await crane('append', '-f', join(home, 'layer.tar'), '-t', ref);
  const digest = await crane('digest', ref);
  assert.equal(pushed, `${registry.host}/team/app@${digest}`);
  await crane('pull', '--format', 'oci', ref, join(home, 'pulled'));

  // skopeo, with the CA in a cert dir: pull that image and push it to another repository.
  const skopeo = await Skopeo.create(cleanup);
  const certs = join(dir, 'certs.d');
  const creds = `alice:${PASSWORD}`;
  await skopeo.ok(['copy', '--src-cert-dir', certs, '--dest-cert-dir', certs, '--src-creds', creds, '--dest-creds', creds, `docker://${ref}`, `docker://${registry.host}/team/copy:1`]);
  const inspected = JSON.parse((await skopeo.ok(['inspect', '--cert-dir', certs, '--creds', creds, `docker://${registry.host}/team/copy:1`])).stdout) as { Digest: string };
  assert.equal(inspected.Digest, digest, 'the same manifest, pulled and pushed over HTTPS');
  await skopeo.ok(['copy', '--src-cert-dir', certs, '--src-creds', creds, `docker://${registry.host}/team/copy:1`, `oci:${join(home, 'layout')}:1`]);
  assert.equal(await crane('digest', `${registry.host}/team/copy:1`), digest);
});
