/**
 * What the emulated distribution sends the viewer: origin responses as the viewer-response
 * function sees them and as it left them, function-generated responses, CloudFront's error pages.
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | function returns an object with `statusCode` on viewer request [E] | CloudFront answers with it (function-generated response), the origin is not contacted; body `"text"` or `{encoding:'text'\|'base64', data}` | same ({@link sendGenerated}) |
 * | viewer-response function [E] | sees status and headers, not the body; may change status, headers, cookies, or set a body | same ({@link toCfResponseHeaders}, {@link checkStatus}, {@link generatedBody}) |
 * | response headers [RC][502] | drops `Trailer`, `Upgrade`; sets `Via`; adds `X-Cache` (`Miss from cloudfront`, `Error from cloudfront`), `X-Amz-Cf-Pop`, `X-Amz-Cf-Id` | same; `FunctionGeneratedResponse from cloudfront` for function-generated responses [inf: seen in the wild, not in the docs] |
 * | CloudFront's own errors [F503][502] | an HTML page, `Server: CloudFront`, the request id | same text and markup ({@link errorPage}) |
 *
 * Sources:
 * - [E] Event structure, response objects, `body` `{encoding, data}` —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
 * - [RC] Request and response behavior for custom origins (response headers removed or replaced) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html
 * - [502] HTTP 502, `X-Cache: Error from cloudfront` — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-502-bad-gateway.html;
 *   504 — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-504-gateway-timeout.html
 * - [F503] the 503 page's text, measured — https://github.com/cdklabs/construct-hub/pull/402; the HTML of
 *   CloudFront's error pages — https://github.com/reimagined/resolve/issues/2125
 */
import type { ServerResponse } from 'node:http';
import { addValue, capitalise, checkHeaders, isDisallowed } from './cloudfront-events.js';
import { FunctionFailure, type CfResponse, type CfValues } from './cloudfront-functions.js';

/** Origin response headers CloudFront removes or replaces ([RC]) plus hop-by-hop ones Node frames itself. */
const NOT_RETURNED = new Set(['connection', 'keep-alive', 'trailer', 'upgrade', 'transfer-encoding', 'via']);

export const MESSAGES = {
  functionFailed:
    "The CloudFront function associated with the CloudFront distribution is invalid or could not run. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  functionInvalid:
    "The CloudFront function returned an invalid value to CloudFront. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  badRequest:
    "Bad request. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  originUnreachable:
    "CloudFront wasn't able to connect to the origin. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
  originTimeout:
    "CloudFront attempted to establish a connection with the origin, but either the attempt failed or the origin closed the connection. We can't connect to the server for this app or website at this time. There might be too much traffic or a configuration error. Try again later, or contact the app or website owner.",
};

/** True when a function returned a response rather than a request ([E]). */
export function isResponse(value: unknown): value is CfResponse {
  return typeof value === 'object' && value !== null && 'statusCode' in value;
}

/** The status of a response a function returned, or a validation error. */
export function checkStatus(response: CfResponse): number {
  const status = response.statusCode;
  if (!Number.isInteger(status) || status < 100 || status > 599) throw new FunctionFailure(502, `response.statusCode must be an integer HTTP status, not ${JSON.stringify(status)}`);
  const description = response.statusDescription;
  if (description !== undefined && (typeof description !== 'string' || /[\r\n]/.test(description))) throw new FunctionFailure(502, 'response.statusDescription must be a one-line string');
  return status;
}

/** An origin response's headers and `Set-Cookie`s as the viewer-response event holds them ([E]). */
export function toCfResponseHeaders(rawHeaders: string[]): { headers: CfValues; cookies: CfValues } {
  const headers: CfValues = {};
  const cookies: CfValues = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (isDisallowed(name) || name === 'transfer-encoding') continue;
    if (name === 'set-cookie') addSetCookie(cookies, value);
    else addValue(headers, name, value);
  }
  return { headers, cookies };
}

function addSetCookie(cookies: CfValues, header: string): void {
  const semi = header.indexOf(';');
  const pair = semi < 0 ? header : header.slice(0, semi);
  const attributes = semi < 0 ? '' : header.slice(semi + 1).trim();
  const eq = pair.indexOf('=');
  const name = (eq < 0 ? pair : pair.slice(0, eq)).trim();
  const value = eq < 0 ? '' : pair.slice(eq + 1);
  const entry = cookies[name];
  if (!entry) {
    cookies[name] = { value, attributes };
    return;
  }
  entry.multiValue ??= [{ value: entry.value, attributes: entry.attributes }];
  entry.multiValue.push({ value, attributes });
}

/** The headers (and `Set-Cookie`s) sent to the viewer for a response as a function left it. */
export function viewerHeaders(response: CfResponse): Record<string, string | string[]> {
  const headers = fromCfValues(response.headers ?? {}, NOT_RETURNED);
  const cookies = setCookies(response.cookies ?? {});
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  return headers;
}

function fromCfValues(values: CfValues, skip: Set<string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, entry] of Object.entries(values)) {
    if (!entry || skip.has(name)) continue;
    const list = entry.multiValue && entry.multiValue.length > 0 ? entry.multiValue.map((v) => v.value) : [entry.value];
    out[capitalise(name)] = list.length === 1 ? list[0] : list;
  }
  return out;
}

function setCookies(cookies: CfValues): string[] {
  const out: string[] = [];
  for (const [name, entry] of Object.entries(cookies)) {
    if (!entry) continue;
    const list = entry.multiValue && entry.multiValue.length > 0 ? entry.multiValue : [entry];
    for (const c of list) out.push(`${name}=${c.value}${c.attributes ? `; ${c.attributes}` : ''}`);
  }
  return out;
}

/** The body a function set, as bytes; undefined when it set none ([E]). */
export function generatedBody(body: CfResponse['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (typeof body !== 'object' || typeof body.data !== 'string') throw new FunctionFailure(502, 'response.body must be a string or { encoding, data }');
  const encoding = body.encoding ?? 'text';
  if (encoding === 'text') return Buffer.from(body.data, 'utf8');
  if (encoding === 'base64') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body.data) || body.data.length % 4 !== 0) throw new FunctionFailure(502, 'response.body.data is not valid base64');
    return Buffer.from(body.data, 'base64');
  }
  throw new FunctionFailure(502, `response.body.encoding must be text or base64, not ${encoding}`);
}

/** A viewer-request function's own response ([E]). Returns the body bytes sent. */
export function sendGenerated(res: ServerResponse, method: string, response: CfResponse, extra: Record<string, string>): number {
  const status = checkStatus(response);
  checkHeaders(response.headers ?? {}, {}, 'viewer-response');
  const body = generatedBody(response.body) ?? Buffer.alloc(0);
  const headers = viewerHeaders(response);
  delete headers['Content-Length'];
  Object.assign(headers, extra, { date: new Date().toUTCString(), 'content-length': String(body.length) });
  res.writeHead(status, response.statusDescription || undefined, headers);
  res.end(method === 'HEAD' ? undefined : body);
  return method === 'HEAD' ? 0 : body.length;
}

/** CloudFront's own error page ([F503], [502]). */
export function errorPage(res: ServerResponse, status: number, message: string, requestId: string, common: Record<string, string>, close: boolean, method: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">\n' +
      '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n' +
      '<TITLE>ERROR: The request could not be satisfied</TITLE>\n' +
      `</HEAD><BODY>\n<H1>${status} ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size="1px">\n${message}\n` +
      '<BR clear="all">\nIf you provide content to customers through CloudFront, you can find steps to troubleshoot and help prevent this error by reviewing the CloudFront documentation.\n' +
      `<BR clear="all">\n<HR noshade size="1px">\n<PRE>\nGenerated by cloudfront (CloudFront)\nRequest ID: ${requestId}\n</PRE>\n<ADDRESS>\n</ADDRESS>\n</BODY></HTML>`,
  );
  res.writeHead(status, {
    server: 'CloudFront',
    date: new Date().toUTCString(),
    'content-type': 'text/html',
    'content-length': String(body.length),
    'x-cache': 'Error from cloudfront',
    ...common,
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(method === 'HEAD' ? undefined : body);
}

