/**
 * The audit trail: one structured JSON line for every state-changing request (blob and manifest
 * pushes, tag moves, deletes, logins that succeed or fail, admin actions), whatever its outcome,
 * so that "who deleted this tag?" has an answer. Written by the router, through which every
 * request passes (http/router.ts); handlers only add what they alone know (a login's user name).
 * Credentials, tokens and request bodies are never part of it.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { isTag } from '../core/grammar.js';
import type { BodyStream } from '../core/body.js';
import type { HttpRequest, HttpResponse, RouteParams } from './types.js';

/** One line of the audit trail (README, "Audit trail"). Absent facts are left out (as Powertools' Logger leaves out empty values). */
export interface AuditRecord {
  /** RFC 3339 time the request arrived. */
  time: string;
  /** The request's id: API Gateway's `requestContext.requestId` on AWS, a UUID locally. */
  requestId: string;
  /** The account the request acted as (for a login, the name tried); absent: anonymous. */
  account?: string;
  /** The client's address: the transport's, or the viewer's behind the front door (see {@link HttpRequest.sourceIp}). */
  sourceIp: string;
  /** What was done, e.g. `manifest.push`, `tag.delete`, `login` (README lists them). */
  action: string;
  repository?: string;
  /** The tag or digest of a manifest request. */
  reference?: string;
  /** The blob or manifest digest concerned. */
  digest?: string;
  /** The HTTP status answered. */
  status: number;
  /** Request body bytes received. */
  bytes: number;
}

/** Where audit records go. */
export type AuditSink = (record: AuditRecord) => void;

/** What a handler can tell the trail that the router cannot see (a login's name, from the body). */
export interface AuditNote {
  action?: string;
  account?: string;
}

/** What the router learns about one request while it routes it. */
export interface Trail {
  time: Date;
  /** The route's action; undefined: the request changes nothing and is not audited. */
  action?: string;
  params?: RouteParams;
  /** The caller's account, once known. */
  account?: string;
  note: AuditNote;
  /** Body bytes read so far. */
  bytes: number;
}

/** A fresh trail for a request arriving now. */
export function startTrail(): Trail {
  return { time: new Date(), note: {}, bytes: 0 };
}

/** `body`, counting into `trail.bytes` what the handler reads of it. */
export function countedBody(body: BodyStream, trail: Trail): BodyStream {
  async function* counting() {
    for await (const chunk of body.chunks) {
      trail.bytes += chunk.length;
      yield chunk;
    }
  }
  return { length: body.length, chunks: counting() };
}

/** The record of a request, or undefined when it changed nothing (reads, anonymous tokens). */
export function auditRecord(request: HttpRequest, trail: Trail, response: HttpResponse): AuditRecord | undefined {
  const action = trail.note.action ?? trail.action;
  if (action === undefined) return undefined;
  const reference = trail.params?.reference || undefined;
  const digest = response.headers['Docker-Content-Digest'] ?? (trail.params?.digest || request.query.get('digest') || request.query.get('mount') || undefined);
  return {
    time: trail.time.toISOString(),
    requestId: request.requestId,
    // A name tried at a login is the client's text: clipped (account names have at most 70 characters).
    account: (trail.note.account ?? trail.account)?.slice(0, 100),
    sourceIp: request.sourceIp,
    action: refine(action, request, response, reference),
    repository: trail.params?.name || undefined,
    reference,
    digest,
    status: response.status,
    bytes: trail.bytes,
  };
}

/** Names what a request did where its route alone does not say (POST uploads, DELETE by tag). */
function refine(action: string, request: HttpRequest, response: HttpResponse, reference: string | undefined): string {
  if (action === 'blob.upload.start' && response.status === 201) return request.query.has('mount') ? 'blob.mount' : 'blob.push';
  if (action === 'manifest.delete' && reference !== undefined && isTag(reference)) return 'tag.delete';
  return action;
}

/**
 * The audit sink of deployments and `npm start`: Powertools for TypeScript's Logger, one JSON line
 * on stdout per record (on Lambda, CloudWatch Logs takes it from there), with Powertools' `level`,
 * `message` (`audit`), `timestamp` and `service` (`berth`) beside the record's fields.
 */
export function auditLogger(): AuditSink {
  const logger = new Logger({ serviceName: 'berth' });
  return (record) => logger.info('audit', { ...record });
}
