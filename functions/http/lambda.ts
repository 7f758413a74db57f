/**
 * Adapter between API Gateway HTTP API events (payload format 2.0) and {@link HttpRequest} /
 * {@link HttpResponse}. Binary bodies arrive and leave base64-encoded.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { Readable } from 'node:stream';
import { bodyOf } from '../core/body.js';
import type { HttpRequest, HttpResponse } from './types.js';

/** The request an HTTP API event carries. */
export function requestFromEvent(event: APIGatewayProxyEventV2): HttpRequest {
  const body = event.body === undefined ? Buffer.alloc(0) : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) if (value !== undefined) headers[name.toLowerCase()] = value;
  // Payload 2.0 takes the Cookie header apart into `cookies` (the web interface's session).
  if (event.cookies?.length) headers.cookie = event.cookies.join('; ');
  return {
    scheme: headers['x-forwarded-proto'] ?? 'https',
    method: event.requestContext.http.method.toUpperCase(),
    path: event.rawPath,
    query: new URLSearchParams(event.rawQueryString ?? ''),
    headers,
    body: bodyOf(body),
    sourceIp: event.requestContext.http.sourceIp ?? '',
    requestId: event.requestContext.requestId ?? '',
  };
}

/**
 * The HTTP API result for a response; a streamed body is read into memory (Lambda buffers
 * responses). `Set-Cookie` goes into payload 2.0's `cookies`, where API Gateway takes it from.
 */
export async function resultFromResponse(response: HttpResponse): Promise<APIGatewayProxyStructuredResultV2> {
  const body = response.body instanceof Readable ? Buffer.concat(await response.body.toArray()) : response.body;
  const { 'Set-Cookie': cookie, ...headers } = response.headers;
  return {
    statusCode: response.status,
    headers,
    ...(cookie ? { cookies: [cookie] } : {}),
    body: body && body.length > 0 ? body.toString('base64') : '',
    isBase64Encoded: body !== undefined && body.length > 0,
  };
}
