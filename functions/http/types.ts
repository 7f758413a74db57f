/**
 * The transport-free request and response that every handler speaks. The Lambda entry and the
 * local server translate their own request objects into these and back.
 */
import type { Readable } from 'node:stream';
import type { Caller, Realm } from '../auth/service.js';
import type { BodyStream } from '../core/body.js';
import type { AuditNote } from './audit.js';

/** A request as every handler sees it, whichever transport carried it. */
export interface HttpRequest {
  /** `http` or `https`, as the client reached the registry (for URLs the registry hands out). */
  scheme: string;
  method: string;
  /** Path as received (still percent-encoded), without the query string. */
  path: string;
  query: URLSearchParams;
  /** Header values by lower-case name. */
  headers: Record<string, string | undefined>;
  body: BodyStream;
  /**
   * The client's IP address as the transport saw it (node:http: the socket's peer; Lambda: the
   * HTTP API's `requestContext.http.sourceIp`); never a header a client can set. The router
   * replaces it with the viewer's address behind the front door (when the request carries the
   * distribution's proof). Login attempts are counted per account and this address.
   */
  sourceIp: string;
  /** The request's id, for the audit trail: API Gateway's `requestContext.requestId`, locally a UUID. */
  requestId: string;
}

/** A response; transports write it out (Lambda: base64 in the result, node:http: to the socket). */
export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  /** A buffered body, or a stream (local blob delivery only: Lambda responses are buffered). */
  body?: Buffer | Readable;
}

/** A request whose caller has been identified by the router. */
export interface AuthorizedRequest extends HttpRequest {
  caller: Caller;
  /** Where the token service is and whom tokens are for: the registry's host as the client named it (http/realm.ts). */
  realm: Realm;
  /** What only the handler knows for the audit trail (http/audit.ts). */
  audit: AuditNote;
}

/** Path parameters of a matched route, already validated against the spec's grammar. */
export interface RouteParams {
  name: string;
  [param: string]: string;
}

/** JSON body with its `Content-Type` and `Content-Length`. */
export function json(status: number, value: unknown, headers: Record<string, string> = {}): HttpResponse {
  const body = Buffer.from(JSON.stringify(value));
  return { status, headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length), ...headers }, body };
}

/** A response without a body. */
export function empty(status: number, headers: Record<string, string> = {}): HttpResponse {
  return { status, headers: { 'Content-Length': '0', ...headers } };
}
