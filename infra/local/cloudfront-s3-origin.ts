/**
 * The distribution's S3 origin (`blobs`), reached the way Origin Access Control reaches it, and
 * the event notification S3 sends when an object lands under `incoming/`.
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | `blobs` through Origin Access Control, signing "always" [OAC] | SigV4 (`s3`), the viewer's `Authorization` overwritten | SigV4 over `host` and every `x-amz-*` header, `x-amz-content-sha256: UNSIGNED-PAYLOAD` [inf: which headers OAC signs and its payload hash are not documented], body streamed; path-style `/<bucket><uri>` when `forcePathStyle` |
 * | S3 event notification on `ObjectCreated:*` for prefix `incoming/` [S3E] | asynchronous, record `{eventVersion, eventSource:'aws:s3', awsRegion, eventTime, eventName:'ObjectCreated:Put', userIdentity, requestParameters, responseElements, s3:{s3SchemaVersion, configurationId, bucket:{name, ownerIdentity, arn}, object:{key (URL-encoded), size, eTag, sequencer}}}` | {@link objectCreatedRecord}, sent by the distribution after S3 answers 2xx to a PUT under `incoming/`, eventVersion `2.1` (current docs show 2.5, a compatible superset); key encoded as form data (`+` for space, `/` kept) [inf: the exact escaping] |
 *
 * Sources:
 * - [OAC] Restricting access to an Amazon S3 origin (OAC, signing behaviour "always" overwrites the
 *   viewer's Authorization header) — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
 * - [S3E] S3 event message structure (key "URL encoded", size a number, sequencer for PUT and DELETE) —
 *   https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 */
import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { S3EventRecord } from 'aws-lambda';
import { Sha256 } from '../../functions/storage/aws-calls.js';

/** The S3 origin (`blobs`), reached the way Origin Access Control reaches it: SigV4-signed. */
export interface S3OriginOptions {
  /** e.g. `http://127.0.0.1:4569` (s3rver, MinIO) or `https://s3.eu-west-1.amazonaws.com`. */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** `/<bucket>/<key>` on the endpoint (true) or `<bucket>.<endpoint host>/<key>` (false). Default true. */
  forcePathStyle?: boolean;
}

/** Headers the signer sets itself; OAC "always" replaces whatever Authorization the viewer sent ([OAC]). */
const REPLACED = new Set(['authorization', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-security-token']);

export class S3Origin {
  private readonly endpoint: URL;
  private readonly signer: SignatureV4;
  private readonly agent: Agent;

  constructor(readonly settings: S3OriginOptions) {
    this.endpoint = new URL(settings.endpoint);
    this.signer = new SignatureV4({
      service: 's3',
      region: settings.region,
      credentials: settings.credentials,
      sha256: Sha256,
      // S3 signs the path as sent (no second escaping), and the payload hash is given in a header.
      uriEscapePath: false,
      applyChecksum: false,
    });
    this.agent = this.endpoint.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true });
  }

  /** The signed request for `uri` (the object key's path, as the function left it). */
  async prepare(method: string, uri: string, query: string, headers: OutgoingHttpHeaders): Promise<{ request: ClientRequest; key: string }> {
    const pathStyle = this.settings.forcePathStyle ?? true;
    const hostname = pathStyle ? this.endpoint.hostname : `${this.settings.bucket}.${this.endpoint.hostname}`;
    const path = pathStyle ? `/${this.settings.bucket}${uri}` : uri;
    const port = this.endpoint.port ? Number(this.endpoint.port) : undefined;
    const toSign = takeSigned(headers, this.endpoint.port ? `${hostname}:${this.endpoint.port}` : hostname);
    const signed = await this.signer.sign({ method, protocol: this.endpoint.protocol, hostname, port, path, query: decodedQuery(query), headers: toSign });
    const all: OutgoingHttpHeaders = { ...headers };
    for (const [name, value] of Object.entries(signed.headers)) all[name === 'host' ? 'Host' : name] = value;
    const send = this.endpoint.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send({
      protocol: this.endpoint.protocol,
      hostname: this.endpoint.hostname,
      port: this.endpoint.port || undefined,
      method,
      path: path + (query ? `?${query}` : ''),
      headers: all,
      agent: this.agent,
    });
    return { request, key: decodePath(uri.slice(1)) };
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Moves the headers to sign (`x-amz-*` but `x-amz-cf-*`) out of `headers`, drops those the signer sets. */
function takeSigned(headers: OutgoingHttpHeaders, host: string): Record<string, string> {
  const toSign: Record<string, string> = { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (REPLACED.has(lower)) {
      delete headers[name];
    } else if (lower.startsWith('x-amz-') && !lower.startsWith('x-amz-cf-')) {
      toSign[lower] = Array.isArray(value) ? value.join(',') : String(value);
      delete headers[name];
    }
  }
  return toSign;
}

function decodedQuery(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = decodePath(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decodePath(part.slice(eq + 1));
    const existing = out[name];
    out[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return out;
}

function decodePath(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** An object key as S3 writes it in event notifications: URL-encoded, `+` for space, `/` kept ([S3E]). */
export function s3EventKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

/** The `ObjectCreated:Put` record of an object S3 stored (`res`: S3's answer to the PUT) ([S3E]). */
export function objectCreatedRecord(settings: S3OriginOptions, key: string, size: number, res: IncomingMessage, sequence: bigint): S3EventRecord {
  const header = (name: string) => {
    const value = res.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: settings.region,
    eventTime: new Date().toISOString(),
    eventName: 'ObjectCreated:Put',
    // With OAC, the request is made by the CloudFront service principal.
    userIdentity: { principalId: 'AWS:CLOUDFRONT-EMULATOR' },
    requestParameters: { sourceIPAddress: '127.0.0.1' },
    responseElements: {
      'x-amz-request-id': header('x-amz-request-id') ?? randomBytes(8).toString('hex').toUpperCase(),
      'x-amz-id-2': header('x-amz-id-2') ?? randomBytes(48).toString('base64'),
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'incoming-objects',
      bucket: { name: settings.bucket, ownerIdentity: { principalId: 'EMULATED' }, arn: `arn:aws:s3:::${settings.bucket}` },
      object: { key: s3EventKey(key), size, eTag: (header('etag') ?? '').replace(/"/g, ''), sequencer: sequence.toString(16).toUpperCase().padStart(18, '0') },
    },
  };
}
