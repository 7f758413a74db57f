/**
 * HTTPS for the local server: `BERTH_TLS_CERT` and `BERTH_TLS_KEY` name PEM files (the
 * certificate, optionally followed by its intermediates, and its unencrypted private key), read
 * and checked once at start so that a mistake ends `npm start` with one line, not a TLS error at
 * the first client.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/** What `https.createServer` needs: PEM bytes of the certificate (chain) and the key. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** When the certificate stops being valid. */
  validTo: Date;
}

/** A TLS setting a person can fix; the message is one line. */
export class TlsError extends Error {}

/**
 * Reads the certificate and key `env` names.
 * @returns undefined when neither is set (plain HTTP).
 * @throws TlsError when only one is set, a file cannot be read, holds no PEM certificate or
 *   private key, or the key is not the certificate's.
 */
export async function loadTls(env: Record<string, string | undefined> = process.env): Promise<TlsFiles | undefined> {
  const certPath = env.BERTH_TLS_CERT || undefined;
  const keyPath = env.BERTH_TLS_KEY || undefined;
  if (!certPath && !keyPath) return undefined;
  if (!certPath || !keyPath) throw new TlsError('invalid configuration: BERTH_TLS_CERT and BERTH_TLS_KEY go together: set both (PEM files) or neither');
  const [cert, key] = [await read('BERTH_TLS_CERT', certPath), await read('BERTH_TLS_KEY', keyPath)];
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new TlsError(`BERTH_TLS_CERT ${resolve(certPath)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsError(`BERTH_TLS_KEY ${resolve(keyPath)} holds no unencrypted PEM private key (an encrypted one: openssl pkey -in <file> -out <new file>)`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsError(`BERTH_TLS_KEY ${resolve(keyPath)} is not the private key of the certificate in BERTH_TLS_CERT ${resolve(certPath)}`);
  }
  return { cert, key, validTo: new Date(certificate.validTo) };
}

async function read(name: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const reasons: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'a folder, not a file' };
    const code = (error as NodeJS.ErrnoException).code ?? '';
    throw new TlsError(`cannot read ${name} ${resolve(path)}: ${reasons[code] ?? (error as Error).message}`);
  }
}
