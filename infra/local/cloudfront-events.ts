/**
 * Between the viewer, the function and the origin: the viewer request as the event a CloudFront
 * Function sees, the checks CloudFront makes on what the function returns, and the headers of the
 * origin request. Used by the emulated distribution (cloudfront-emulator.ts).
 *
 * | behaviour | AWS | here |
 * |---|---|---|
 * | event given to the function [E] | `{version:'1.0', context:{distributionDomainName, distributionId, eventType, requestId}, viewer:{ip}, request:{method, uri, querystring, headers, cookies}}` (+ `response` on viewer response); lower-case header names, duplicates in `multiValue`, cookies apart; query names and values undecoded, as the viewer sent them [QS] | same; the viewer-response event's `request` is the request as the viewer-request function returned it [inf] |
 * | headers hidden from functions and refused from them (`Connection`, `Expect`, `Keep-Alive`, `Proxy-*`, `Trailer`, `Upgrade`, `X-Accel-*`, `X-Amz-Cf-*`, `X-Amzn-*` of the list, `X-Cache`, `X-Edge-*`, `X-Forwarded-Proto`, `X-Real-IP`) [R] | not in the event; a function adding one fails validation: `502` | same |
 * | read-only headers: `Content-Length`, `Host`, `Transfer-Encoding`, `Via` (viewer request); `Warning`, `Via` (viewer response) [R] | adding or changing one: `502` | same; removing one too [inf] |
 * | `request.method` [E] | read-only | changing it: `502` [inf] |
 * | returned `uri` / query string [E][R] | `uri` starts with `/`; URI + query under 8,192 characters; no spaces, control characters or `#` in the query | otherwise `502` [inf: the status] |
 * | function returns something that is not a valid request or response | `502` (validation error) [R][MET] | `502` (wording [inf]) |
 * | origin request policy `AllViewerExceptHostHeader` on `api` (and `blobs`, same behaviour) [P] | every viewer header, cookie and query parameter except `Host`; `Host` = the origin's domain; no `CloudFront-*` headers (that is the `AllViewerAndCloudFrontHeaders` policy) | same |
 * | headers CloudFront adds or drops on origin requests [RC][LE] | appends the viewer IP to `X-Forwarded-For`; adds `X-Amz-Cf-Id` and `Via: <http version> <id>.cloudfront.net (CloudFront)`; `Connection: Keep-Alive`; drops `Expect`, `Proxy-*`, `TE`, `Trailer`, `Upgrade`, `X-Forwarded-Proto`, `X-Real-IP`, `X-Edge-*` | same; header names are sent capitalised per word, as the event docs say [E] |
 * | query string the function did not change [R] | forwarded as the viewer sent it; a changed one is forwarded UTF-8 percent-encoded | same |
 *
 * Sources (AWS documentation unless said otherwise):
 * - [E] Event structure, request/response objects, `multiValue` rules —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
 * - [R] Restrictions on all edge functions (disallowed and read-only headers, query string and URI rules) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html
 * - [RC] Request and response behavior for custom origins (header table, X-Forwarded-For) —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html
 * - [P] Managed origin request policy AllViewerExceptHostHeader ("CloudFront adds a new Host header with the
 *   origin's domain name") — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-origin-request-policies.html
 * - [LE] Via value on origin requests, `2.0 <hex>.cloudfront.net (CloudFront)`, in the Lambda@Edge origin
 *   request example — https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-event-structure.html
 * - [QS] Query values reach a function undecoded: measured and reported by a CloudFront simulator,
 *   https://github.com/KensioSoftware/yulin/issues/1024, and https://github.com/itamarwe/fpv-drone-strikes-lebanon-dataset/pull/17
 * - [MET] FunctionValidationErrors ("the function runs successfully but returns invalid data") —
 *   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/viewing-cloudfront-metrics.html
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { FunctionFailure, type CfEntry, type CfRequest, type CfValues } from './cloudfront-functions.js';

/** Headers not exposed to edge functions, which they may not add ([R], "Disallowed headers"). */
const DISALLOWED = new Set([
  'connection',
  'expect',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'trailer',
  'upgrade',
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-limit-rate',
  'x-accel-redirect',
  'x-amzn-auth',
  'x-amzn-cf-billing',
  'x-amzn-cf-id',
  'x-amzn-cf-xff',
  'x-amzn-errortype',
  'x-amzn-fle-profile',
  'x-amzn-header-count',
  'x-amzn-header-order',
  'x-amzn-lambda-integration-tag',
  'x-amzn-requestid',
  'x-cache',
  'x-forwarded-proto',
  'x-real-ip',
]);

export function isDisallowed(name: string): boolean {
  return DISALLOWED.has(name) || name.startsWith('x-amz-cf-') || name.startsWith('x-edge-');
}

const READ_ONLY = {
  'viewer-request': ['content-length', 'host', 'transfer-encoding', 'via'],
  'viewer-response': ['warning', 'via'],
} as const;

/** Viewer request headers CloudFront never forwards to an origin ([RC] header table). */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'expect', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'upgrade', 'x-forwarded-proto', 'x-real-ip', 'host', 'cookie']);

export function addValue(values: CfValues, name: string, value: string): void {
  const entry = values[name];
  if (!entry) {
    values[name] = { value };
    return;
  }
  entry.multiValue ??= [{ value: entry.value }];
  entry.multiValue.push({ value });
}

/** The event's `request` for a viewer request as it arrived ([E], [QS]). */
export function toViewerRequest(method: string, rawPath: string, rawQuery: string, rawHeaders: string[]): CfRequest {
  const headers: CfValues = {};
  const cookies: CfValues = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (isDisallowed(name)) continue;
    if (name === 'cookie') addCookies(cookies, value);
    else addValue(headers, name, value);
  }
  return { method, uri: rawPath, querystring: parseQuery(rawQuery), headers, cookies };
}

function addCookies(cookies: CfValues, header: string): void {
  for (const part of header.split(';')) {
    const cookie = part.trim();
    if (!cookie) continue;
    const eq = cookie.indexOf('=');
    addValue(cookies, eq < 0 ? cookie : cookie.slice(0, eq), eq < 0 ? '' : cookie.slice(eq + 1));
  }
}

function parseQuery(raw: string): CfValues {
  const values: CfValues = {};
  for (const part of raw.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    addValue(values, eq < 0 ? part : part.slice(0, eq), eq < 0 ? '' : part.slice(eq + 1));
  }
  return values;
}

export interface ForwardedRequest {
  /** The request as the function returned it (the viewer-response event's `request`). */
  event: CfRequest;
  uri: string;
  query: string;
  headers: [string, string][];
  cookie?: string;
}

/** Validates what the viewer-request function returned ([E], [R]) and resolves the `multiValue` rules. */
export function toForwarded(result: CfRequest, original: CfRequest, rawQuery: string, maxUrl: number): ForwardedRequest {
  if (result.method !== original.method) throw new FunctionFailure(502, 'request.method is read-only');
  if (typeof result.uri !== 'string' || !result.uri.startsWith('/')) throw new FunctionFailure(502, 'request.uri must be a string that starts with /');
  if (/[\x00-\x20\x7f]/.test(result.uri)) throw new FunctionFailure(502, 'request.uri has spaces or control characters');
  const headers = result.headers ?? {};
  if (typeof headers !== 'object') throw new FunctionFailure(502, 'request.headers must be an object');
  checkHeaders(headers, original.headers, 'viewer-request');
  const query = forwardedQuery(result.querystring ?? {}, original.querystring as CfValues, rawQuery);
  const uri = encodeLoose(result.uri);
  if (uri.length + (query ? query.length + 1 : 0) >= maxUrl) throw new FunctionFailure(502, 'the URI with its query string must be shorter than 8,192 characters');
  const out: [string, string][] = [];
  for (const [name, entry] of Object.entries(headers)) {
    for (const value of resolveValues(entry, original.headers[name], `header ${name}`)) out.push([name, value]);
  }
  const cookieParts: string[] = [];
  for (const [name, entry] of Object.entries(result.cookies ?? {})) {
    for (const value of resolveValues(entry, original.cookies[name], `cookie ${name}`)) cookieParts.push(`${name}=${value}`);
  }
  return { event: result, uri, query, headers: out, cookie: cookieParts.length > 0 ? cookieParts.join('; ') : undefined };
}

/** The origin's query string: the viewer's when the function left it alone ([R]), else re-encoded. */
function forwardedQuery(qs: CfValues | string, original: CfValues, rawQuery: string): string {
  let query: string;
  if (typeof qs === 'string') {
    query = qs.replace(/^\?/, '');
  } else if (safeJson(qs) === safeJson(original)) {
    query = rawQuery;
  } else {
    const parts: string[] = [];
    for (const [name, entry] of Object.entries(qs)) {
      for (const value of resolveValues(entry, original[name], `querystring ${name}`)) parts.push(`${encodeLoose(name)}=${encodeLoose(value)}`);
    }
    query = parts.join('&');
  }
  if (/[\x00-\x20\x7f#]/.test(query)) throw new FunctionFailure(502, 'the query string may not contain spaces, control characters or #');
  return query;
}

/**
 * The values of one query parameter, header or cookie after a function ran ([E], multiValue): a
 * changed `multiValue` wins; otherwise `value` replaces the first value and the others stay.
 */
function resolveValues(entry: CfEntry | undefined, before: CfEntry | undefined, what: string): string[] {
  if (entry === undefined || entry === null) return [];
  if (typeof entry !== 'object' || typeof entry.value !== 'string') throw new FunctionFailure(502, `${what}: expected { value: string }`);
  const list = entry.multiValue;
  if (list !== undefined) {
    if (!Array.isArray(list) || list.some((v) => typeof v?.value !== 'string')) throw new FunctionFailure(502, `${what}: multiValue must be [{ value: string }]`);
    if (safeJson(list) !== safeJson(before?.multiValue)) return list.map((v) => v.value);
    return [entry.value, ...list.slice(1).map((v) => v.value)];
  }
  return [entry.value];
}

/** Refuses disallowed, upper-case and changed read-only headers in what a function returned ([R], [E]). */
export function checkHeaders(after: CfValues, before: CfValues, event: keyof typeof READ_ONLY): void {
  if (typeof after !== 'object' || after === null) throw new FunctionFailure(502, 'headers must be an object');
  for (const [name, entry] of Object.entries(after)) {
    if (name !== name.toLowerCase()) throw new FunctionFailure(502, `header names must be lower case: ${name}`);
    if (isDisallowed(name)) throw new FunctionFailure(502, `header ${name} is disallowed in edge functions`);
    if (entry !== undefined && entry !== null && (typeof entry !== 'object' || typeof entry.value !== 'string')) {
      throw new FunctionFailure(502, `header ${name}: expected { value: string }`);
    }
  }
  for (const name of READ_ONLY[event]) {
    if (safeJson(after[name] ?? null) !== safeJson(before[name] ?? null)) throw new FunctionFailure(502, `header ${name} is read-only in ${event} functions`);
  }
}

/** Percent-encodes what may not appear raw in a request target, leaving existing escapes alone. */
function encodeLoose(text: string): string {
  return text.replace(/[^\x21-\x7e]+/g, (run) => encodeURIComponent(run));
}

/** "example-header-name" → "Example-Header-Name", as CloudFront writes function headers ([E]). */
export function capitalise(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase());
}

/** The headers of the origin request: the policy's viewer headers plus CloudFront's own ([P], [RC]). */
export function forwardedHeaders(forwarded: ForwardedRequest, viewerIp: string, requestId: string, edgeHost: string): OutgoingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  const add = (name: string, value: string) => {
    const key = capitalise(name);
    const existing = headers[key];
    headers[key] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  };
  let xff: string | undefined;
  let via: string | undefined;
  for (const [name, value] of forwarded.headers) {
    if (NOT_FORWARDED.has(name) || name.startsWith('x-edge-')) continue;
    if (name === 'x-forwarded-for') xff = xff === undefined ? value : `${xff},${value}`;
    else if (name === 'via') via = via === undefined ? value : `${via}, ${value}`;
    else add(name, value);
  }
  if (forwarded.cookie !== undefined) add('cookie', forwarded.cookie);
  add('x-forwarded-for', xff === undefined ? viewerIp : `${xff},${viewerIp}`);
  add('via', via === undefined ? `1.1 ${edgeHost}` : `${via}, 1.1 ${edgeHost}`);
  add('x-amz-cf-id', requestId);
  headers.Connection = 'keep-alive';
  return headers;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return String(value);
  }
}
