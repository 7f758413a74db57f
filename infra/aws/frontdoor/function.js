import cf from 'cloudfront';
// Berth's front door (CloudFront Functions, runtime cloudfront-js-2.0), on viewer request and
// viewer response of every behaviour. Whole-blob upload PUTs and blob GETs whose path carries a
// valid signature (functions/core/signed-paths.ts mints them) go to the S3 origin `blobs`;
// everything else goes to API Gateway (origin `api`) unchanged but for x-forwarded-host, since
// API Gateway must receive its own Host. No byte becomes visible here: uploads land under
// incoming/, and the registry verifies their digest before anything links them.
const crypto = require('crypto');

const kvs = cf.kvs();
const UUID = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
const TOKEN = UUID + '\\.(\\d{1,12})\\.(\\d{1,4})\\.([A-Za-z0-9_-]{43})';
const UPLOAD = new RegExp('^/v2/(.+)/blobs/uploads/' + TOKEN + '$');
const BLOB = new RegExp('^/_berth/blobs/' + TOKEN + '$');
const INCOMING = /^\/incoming\/sha256-([0-9a-f]{64})\/[0-9a-f-]{36}$/;
const SHA256 = /^sha256:([0-9a-f]{64})$/;
// S3's largest single PUT: 5 GiB.
const MAX_PUT = 5368709120;

async function handler(event) {
  if (event.context.eventType === 'viewer-response') return viewerResponse(event);
  const request = event.request;
  const upload = UPLOAD.exec(request.uri);
  if (upload && request.method === 'PUT' && hasBody(request)) return uploadToS3(request, upload, event.viewer);
  const blob = BLOB.exec(request.uri);
  if (blob && (request.method === 'GET' || request.method === 'HEAD')) return blobFromS3(request, blob);
  return forward(request, event.viewer);
}

async function uploadToS3(request, m, viewer) {
  const name = m[1];
  const digestParam = request.querystring.digest;
  const digest = digestParam ? decoded(digestParam.value) : '';
  // Other algorithms (sha512) go to the API, which verifies them itself.
  if (digest.indexOf('sha256:') !== 0 && digest.indexOf(':') > 0) return forward(request, viewer);
  const hex = SHA256.exec(digest);
  if (!hex) return ociError(400, 'DIGEST_INVALID', 'the digest query parameter must be sha256:<64 hex digits>');
  const size = Number(request.headers['content-length'].value);
  if (!(size <= MAX_PUT)) {
    return ociError(413, 'SIZE_INVALID', 'a blob sent in one PUT can be at most 5 GiB (S3\'s limit); use npx berth push');
  }
  const token = await check(m[2], m[3], m[4], m[5], ['upload', m[2], m[3], m[4], name]);
  if (token !== 'ok') return ociError(404, 'BLOB_UPLOAD_UNKNOWN', 'upload URL ' + token + '; start a new upload');
  // The registry marks a URL whose PUT reached S3 (seconds later at every edge).
  if (await spent(m[2])) return ociError(404, 'BLOB_UPLOAD_UNKNOWN', 'upload URL already used; start a new upload');
  request.uri = '/incoming/sha256-' + hex[1] + '/' + m[2];
  toS3(request);
  request.headers['x-amz-meta-berth-repository'] = { value: name };
  if ((await optional('s3-checksum')) === 'on') {
    request.headers['x-amz-checksum-sha256'] = { value: Buffer.from(hex[1], 'hex').toString('base64') };
  }
  cf.selectRequestOriginById('blobs');
  return request;
}

async function blobFromS3(request, m) {
  const token = await check(m[1], m[2], m[3], m[4], ['blob', m[1], m[2], m[3]]);
  if (token === 'expired') return ociError(403, 'DENIED', 'blob URL expired; request the blob again');
  if (token !== 'ok') return ociError(404, 'BLOB_UNKNOWN', 'blob URL ' + token);
  request.uri = '/blobs/' + m[1];
  toS3(request);
  cf.selectRequestOriginById('blobs');
  return request;
}

// S3 must see no query and none of the viewer's own headers: OAC signs the request, and S3 would
// store Content-Type, Content-Encoding, Cache-Control or x-amz-* options with the object and
// serve them back to everyone who pulls it. Only the framing CloudFront owns, and a read's Range, stay.
const KEPT = { 'content-length': true, host: true, 'transfer-encoding': true, via: true, range: true };

function toS3(request) {
  request.querystring = {};
  for (const name in request.headers) if (!KEPT[name]) delete request.headers[name];
  request.headers['content-type'] = { value: 'application/octet-stream' };
}

// API Gateway sees CloudFront's address, not the viewer's: the login throttle counts failures per
// address, so the function passes the viewer's on (overwriting whatever a viewer sent). The API
// believes it only with the distribution's x-berth-origin header, which CloudFront adds itself.
function forward(request, viewer) {
  request.headers['x-forwarded-host'] = { value: request.headers.host ? request.headers.host.value : '' };
  request.headers['x-berth-viewer-address'] = { value: viewer.ip };
  return request;
}

// 'ok', or why not: 'invalid', 'expired' (only said of a genuine path).
async function check(id, expires, version, signature, message) {
  let key;
  try {
    key = await kvs.get('upload-key-' + Number(version));
  } catch (e) {
    return 'invalid';
  }
  const expected = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(message.join('\n')).digest('base64');
  if (!same(base64url(expected), signature)) return 'invalid';
  return Number(expires) <= Math.floor(Date.now() / 1000) ? 'expired' : 'ok';
}

function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch (e) {
    return '';
  }
}

async function spent(id) {
  try {
    return await kvs.exists('spent-' + id);
  } catch (e) {
    return false;
  }
}

async function optional(key) {
  try {
    return await kvs.get(key);
  } catch (e) {
    return undefined;
  }
}

function viewerResponse(event) {
  const request = event.request;
  const response = event.response;
  if (request.method !== 'PUT' || response.statusCode !== 200) return response;
  const upload = UPLOAD.exec(request.uri);
  const incoming = INCOMING.exec(request.uri);
  let name;
  let hex;
  if (upload) {
    const digest = request.querystring.digest ? decoded(request.querystring.digest.value) : '';
    const m = SHA256.exec(digest);
    name = upload[1];
    hex = m && m[1];
  } else if (incoming && request.headers['x-amz-meta-berth-repository']) {
    name = request.headers['x-amz-meta-berth-repository'].value;
    hex = incoming[1];
  }
  if (!name || !hex) return response;
  // S3 answers 200; the distribution spec (and oras) want 201, containerd up to 2.1 the digest.
  response.statusCode = 201;
  response.statusDescription = 'Created';
  response.headers['docker-content-digest'] = { value: 'sha256:' + hex };
  response.headers.location = { value: '/v2/' + name + '/blobs/sha256:' + hex };
  response.headers['docker-distribution-api-version'] = { value: 'registry/2.0' };
  return response;
}

function hasBody(request) {
  const length = request.headers['content-length'];
  return length !== undefined && length.value !== '0';
}

function base64url(text) {
  return text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function same(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function ociError(status, code, message) {
  return {
    statusCode: status,
    statusDescription: status === 404 ? 'Not Found' : status === 403 ? 'Forbidden' : status === 413 ? 'Payload Too Large' : 'Bad Request',
    headers: {
      'content-type': { value: 'application/json' },
      'docker-distribution-api-version': { value: 'registry/2.0' },
    },
    body: { encoding: 'text', data: JSON.stringify({ errors: [{ code: code, message: message, detail: null }] }) },
  };
}
