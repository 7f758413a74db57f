/**
 * Signed paths of the front door: short-lived URLs on the registry's own host that the CloudFront
 * Function (infra/aws/frontdoor/function.js) checks at the edge, without a database, before it
 * sends a request to S3 instead of API Gateway. This module mints them; the function checks them
 * with the same key, read from the distribution's KeyValueStore (`upload-key-<version>`).
 *
 *   upload: /v2/<name>/blobs/uploads/<uuid>.<exp>.<kv>.<sig>   message "upload\n<uuid>\n<exp>\n<kv>\n<name>"
 *   blob:   /_berth/blobs/<uuid>.<exp>.<kv>.<sig>              message "blob\n<uuid>\n<exp>\n<kv>"
 *
 * `exp` is epoch seconds, `kv` the key version, `sig` base64url (no padding) of HMAC-SHA256 over
 * the message. The token lives in the path because containerd, oras and containers/image rebuild
 * the query string when they add `digest=` (keys sorted, values re-escaped).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** An HMAC key and its version (the `<kv>` of a signed path). */
export interface PathKey {
  version: number;
  /** 32 random bytes. */
  secret: Buffer;
}

/** The parts of a signed path segment `<uuid>.<exp>.<kv>.<sig>`. */
export interface SignedSegment {
  id: string;
  expiresAt: number;
  version: number;
  signature: string;
}

const SEGMENT = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,12})\.(\d{1,4})\.([A-Za-z0-9_-]{43})$/;

/** The last path segment of an upload URL: `<uuid>.<exp>.<kv>.<sig>`, valid until `expiresAt` (epoch s). */
export function signUpload(key: PathKey, repository: string, id: string, expiresAt: number): string {
  return segment(key, id, expiresAt, ['upload', id, String(expiresAt), String(key.version), repository]);
}

/** The path of a blob object `blobs/<id>` through the front door, valid until `expiresAt` (epoch s). */
export function signBlob(key: PathKey, id: string, expiresAt: number): string {
  return `/_berth/blobs/${segment(key, id, expiresAt, ['blob', id, String(expiresAt), String(key.version)])}`;
}

/** Splits `<uuid>.<exp>.<kv>.<sig>`; undefined when it does not have that form. */
export function parseSegment(text: string): SignedSegment | undefined {
  const m = SEGMENT.exec(text);
  return m ? { id: m[1], expiresAt: Number(m[2]), version: Number(m[3]), signature: m[4] } : undefined;
}

/**
 * True when `segment` is a valid upload token for `repository` under `key`, not expired at `now`
 * (epoch s). The edge function performs the same check; this one serves tests and tools.
 */
export function checkUpload(key: PathKey, repository: string, text: string, now: number): boolean {
  const s = parseSegment(text);
  if (!s || s.version !== key.version || s.expiresAt <= now) return false;
  // Compared as signed, byte for byte: `007` and `7` are one expiry but not one path.
  return sameSignature(signUpload(key, repository, s.id, s.expiresAt), text);
}

/**
 * What the distribution sends API Gateway in the origin custom header `x-berth-origin` (set by
 * CloudFront, which overwrites a viewer's header of that name): proof that a request came through
 * the front door, so that the viewer address its function forwards may be believed. base64url of
 * HMAC-SHA256 over `origin\n<kv>`; the deploy's custom resource derives the same value.
 */
export function originProof(key: PathKey): string {
  return sign(key, ['origin', String(key.version)]);
}

/** base64url (no padding) of HMAC-SHA256 under `key` over the lines of `message` joined by `\n`. */
export function sign(key: PathKey, message: readonly string[]): string {
  return createHmac('sha256', key.secret).update(message.join('\n')).digest('base64url');
}

/** Compares a signature (or signed text) as given with the expected one, in constant time. */
export function sameSignature(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

function segment(key: PathKey, id: string, expiresAt: number, message: string[]): string {
  return `${id}.${expiresAt}.${key.version}.${sign(key, message)}`;
}
