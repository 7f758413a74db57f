// The front door's custom resource (Custom::UploadKey), inlined into the template as the code of
// a small Lambda function (nodejs22.x, CommonJS) by infra/aws/frontdoor.cjs. On Create and Update
// it makes sure the upload key exists in Secrets Manager (base64 of 32 random bytes, generated
// here once, then kept: the secret is created empty because GenerateSecretString makes passwords,
// not keys) and writes it as `upload-key-<version>`, with the `s3-checksum` switch, into the
// CloudFront KeyValueStore that the edge function (infra/aws/frontdoor/function.js) reads.
// Delete leaves everything to CloudFormation (the store and the secret go with the stack).
//
// The KeyValueStore API accepts SigV4A signatures only. The AWS SDK signs those only once
// @aws-sdk/signature-v4a or the CRT (@aws-sdk/signature-v4-crt, native) has been loaded, and
// neither is part of what Lambda's runtime documents, so the two KeyValueStore calls are signed
// here with node:crypto: the key derivation and signature of the aws-c-auth SigV4A suite
// (test/deploy/frontdoor-setup.test.ts checks them against its vectors). Secrets Manager goes
// through the runtime's SDK.
'use strict';

const crypto = require('node:crypto');
const https = require('node:https');

const ALGORITHM = 'AWS4-ECDSA-P256-SHA256';
/** The order of the P-256 group minus 2: a derived scalar must not exceed it. */
const N_MINUS_2 = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254fn;
const KEY = /^[A-Za-z0-9+/]{43}=$/;

const keys = new Map();

/** The ECDSA P-256 key SigV4A derives from an access key (NIST SP 800-108 KDF in counter mode). */
function signingKey(accessKeyId, secretAccessKey) {
  const cached = keys.get(accessKeyId);
  if (cached && cached.secret === secretAccessKey) return cached.key;
  const secret = Buffer.from(`AWS4A${secretAccessKey}`);
  for (let counter = 1; counter <= 254; counter++) {
    const input = Buffer.concat([
      Buffer.from([0, 0, 0, 1]),
      Buffer.from(ALGORITHM),
      Buffer.from([0]),
      Buffer.from(accessKeyId),
      Buffer.from([counter]),
      Buffer.from([0, 0, 1, 0]),
    ]);
    const k0 = BigInt(`0x${crypto.createHmac('sha256', secret).update(input).digest('hex')}`);
    if (k0 > N_MINUS_2) continue;
    const d = Buffer.from((k0 + 1n).toString(16).padStart(64, '0'), 'hex');
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.setPrivateKey(d);
    const point = ecdh.getPublicKey();
    const key = crypto.createPrivateKey({
      format: 'jwk',
      key: { kty: 'EC', crv: 'P-256', d: d.toString('base64url'), x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    });
    keys.set(accessKeyId, { secret: secretAccessKey, key });
    return key;
  }
  throw new Error('SigV4A key derivation found no scalar');
}

const escape = (text) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

/**
 * Signs a request with SigV4A (header form). `path` is the URL path as sent (already encoded);
 * like the AWS SDKs for services other than S3, the canonical URI encodes it once more.
 * @returns the headers to send: `headers`, `x-amz-date`, `x-amz-region-set`, the session token
 *   if any, and `authorization`.
 */
function sign({ method, host, path, headers = {}, body = '', service, regionSet, credentials, now = new Date() }) {
  const longDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const shortDate = longDate.slice(0, 8);
  const all = { ...headers, host, 'x-amz-date': longDate, 'x-amz-region-set': regionSet };
  if (credentials.sessionToken) all['x-amz-security-token'] = credentials.sessionToken;
  const canonical = Object.fromEntries(Object.entries(all).map(([name, value]) => [name.toLowerCase(), String(value).trim().replace(/\s+/g, ' ')]));
  const names = Object.keys(canonical).sort();
  const canonicalRequest = [
    method,
    path.split('/').map(escape).join('/'),
    '',
    ...names.map((name) => `${name}:${canonical[name]}`),
    '',
    names.join(';'),
    sha256(body),
  ].join('\n');
  const scope = `${shortDate}/${service}/aws4_request`;
  const stringToSign = [ALGORITHM, longDate, scope, sha256(canonicalRequest)].join('\n');
  const signature = crypto.sign('sha256', Buffer.from(stringToSign), signingKey(credentials.accessKeyId, credentials.secretAccessKey)).toString('hex');
  return {
    canonicalRequest,
    stringToSign,
    headers: { ...all, authorization: `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` },
  };
}

/** One HTTPS request: `{ status, headers, body }`. */
function request({ method, host, path, headers, body = '' }) {
  return new Promise((resolve, reject) => {
    const req = https.request({ method, host, path, headers: { ...headers, 'content-length': Buffer.byteLength(body) }, timeout: 20_000 }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} https://${host}${path.split('?')[0]}: no answer in 20 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A call of the CloudFront KeyValueStore API (the data plane, `<account>.cloudfront-kvs.global.api.aws`). */
async function kvs(deps, method, arn, key, { body, ifMatch } = {}) {
  const host = `${arn.split(':')[4]}.cloudfront-kvs.global.api.aws`;
  const path = `/key-value-stores/${escape(arn)}${key ? `/keys/${escape(key)}` : ''}`;
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (ifMatch) headers['if-match'] = ifMatch;
  const signed = sign({ method, host, path, headers, body: body ?? '', service: 'cloudfront-keyvaluestore', regionSet: '*', credentials: deps.credentials() });
  const res = await deps.request({ method, host, path, headers: signed.headers, body: body ?? '' });
  if (res.status < 200 || res.status > 299) {
    const error = new Error(`KeyValueStore ${method} ${key ?? ''}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    error.status = res.status;
    throw error;
  }
  return res.headers.etag ?? JSON.parse(res.body || '{}').ETag;
}

/** Writes `values` into the store, each with PutKey under the store's current ETag. */
async function putKeys(deps, arn, values) {
  for (let attempt = 1; ; attempt++) {
    try {
      let etag = await kvs(deps, 'GET', arn);
      for (const [key, value] of Object.entries(values)) etag = await kvs(deps, 'PUT', arn, key, { body: JSON.stringify({ Value: value }), ifMatch: etag });
      return;
    } catch (error) {
      // 409: the store changed between our reads and writes, or is still being provisioned.
      if (attempt >= 6 || (error.status !== 409 && error.status !== 404)) throw error;
      await new Promise((resolve) => setTimeout(resolve, attempt * 2000));
    }
  }
}

/** The upload key: the secret's value, or a new key stored in it when the secret is still empty. */
async function uploadKey(deps, secretId) {
  const current = await deps.getSecret(secretId);
  if (current !== undefined) {
    if (!KEY.test(current)) throw new Error(`secret ${secretId} does not hold a base64 key of 32 bytes`);
    return current;
  }
  const key = crypto.randomBytes(32).toString('base64');
  await deps.putSecret(secretId, key);
  return key;
}

async function apply(deps, props) {
  const version = Number(props.KeyVersion);
  if (!Number.isInteger(version) || version < 1 || version > 9999) throw new Error(`KeyVersion ${props.KeyVersion} is not 1..9999`);
  const key = await uploadKey(deps, props.SecretId);
  await putKeys(deps, props.KeyValueStoreArn, { [`upload-key-${version}`]: key, 's3-checksum': props.S3Checksum === 'on' ? 'on' : 'off' });
  // The API's origin proof, derived like functions/core/signed-paths.ts originProof; NoEcho keeps it
  // out of CloudFormation's console and API answers.
  const originProof = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`origin\n${version}`).digest('base64url');
  return { KeyName: `upload-key-${version}`, OriginProof: originProof };
}

function runtimeDeps() {
  // The AWS SDK for JavaScript v3 that the nodejs22.x runtime includes.
  const { SecretsManagerClient, GetSecretValueCommand, PutSecretValueCommand } = require('@aws-sdk/client-secrets-manager');
  const secrets = new SecretsManagerClient({});
  return {
    credentials: () => ({ accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY, sessionToken: process.env.AWS_SESSION_TOKEN }),
    request,
    async getSecret(id) {
      try {
        return (await secrets.send(new GetSecretValueCommand({ SecretId: id }))).SecretString;
      } catch (error) {
        // A secret without a value yet.
        if (error.name === 'ResourceNotFoundException') return undefined;
        throw error;
      }
    },
    putSecret: (id, value) => secrets.send(new PutSecretValueCommand({ SecretId: id, SecretString: value })),
  };
}

/** Answers CloudFormation at the presigned ResponseURL; every invocation answers, also on errors. */
async function handle(event, deps, send = request) {
  const physicalId = event.PhysicalResourceId || `${event.ResourceProperties.KeyValueStoreArn}/upload-key-${event.ResourceProperties.KeyVersion}`;
  let answer = { Status: 'SUCCESS', Data: {}, NoEcho: true };
  try {
    if (event.RequestType !== 'Delete') answer.Data = await apply(deps, event.ResourceProperties);
  } catch (error) {
    console.error(error);
    answer = { Status: 'FAILED', Reason: String(error && error.message ? error.message : error).slice(0, 1000) };
  }
  const body = JSON.stringify({
    ...answer,
    PhysicalResourceId: physicalId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
  });
  const url = new URL(event.ResponseURL);
  const res = await send({ method: 'PUT', host: url.host, path: `${url.pathname}${url.search}`, headers: { 'content-type': '' }, body });
  if (res.status !== 200) throw new Error(`CloudFormation response: HTTP ${res.status}`);
  return answer;
}

exports.handler = (event) => handle(event, runtimeDeps());
exports.internals = { sign, signingKey, kvs, putKeys, uploadKey, apply, handle };
