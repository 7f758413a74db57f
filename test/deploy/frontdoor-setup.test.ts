/**
 * The front door's custom resource (infra/aws/frontdoor/setup.cjs), offline: its SigV4A signer
 * against the aws-c-auth SigV4A test suite (key derivation, canonical request, string to sign,
 * signatures that verify), the KeyValueStore calls it makes, what it answers CloudFormation, and
 * the package-time checks of infra/aws/frontdoor.cjs (the CloudFront Function's 10 KB quota, text
 * the framework must not read as variables).
 */
import assert from 'node:assert/strict';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { originProof } from '../../functions/core/signed-paths.js';

const require = createRequire(import.meta.url);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}
interface Signed {
  canonicalRequest: string;
  stringToSign: string;
  headers: Record<string, string>;
}
interface Request {
  method: string;
  host: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}
interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}
interface Deps {
  credentials: () => Credentials;
  request: (request: Request) => Promise<Response>;
  getSecret: (id: string) => Promise<string | undefined>;
  putSecret: (id: string, value: string) => Promise<unknown>;
}
const setup = require('../../infra/aws/frontdoor/setup.cjs') as {
  handler: unknown;
  internals: {
    sign: (input: Record<string, unknown>) => Signed;
    signingKey: (accessKeyId: string, secretAccessKey: string) => KeyObject;
    handle: (event: Record<string, any>, deps: Deps, send: (request: Request) => Promise<Response>) => Promise<{ Status: string; Reason?: string }>;
  };
};
const frontdoor = require('../../infra/aws/frontdoor.cjs') as {
  functionCode: (file?: string) => string;
  literal: (text: string) => unknown;
  MAX_FUNCTION_BYTES: number;
};

/** The aws-c-auth SigV4A test suite's credentials, time, and the public key they derive. */
const SUITE = {
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  now: new Date('2015-08-30T12:36:00Z'),
  publicKey: {
    x: 'b6618f6a65740a99e650b33b6b4b5bd0d43b176d721a3edfea7e7d2d56d936b1',
    y: '865ed22a7eadc9c5cb9d2cbaca1b3699139fedc5043dc6661864218330c8e518',
  },
};
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const signatureOf = (headers: Record<string, string>) => headers.authorization.match(/Signature=([0-9a-f]+)$/)![1];
const verifies = (key: KeyObject, stringToSign: string, signature: string) => verify('sha256', Buffer.from(stringToSign), createPublicKey(key), Buffer.from(signature, 'hex'));

describe('SigV4A (aws-c-auth test suite, v4a)', () => {
  test('the key derived from the credentials is the suite\'s public key', () => {
    const key = setup.internals.signingKey(SUITE.credentials.accessKeyId, SUITE.credentials.secretAccessKey);
    const jwk = createPublicKey(key).export({ format: 'jwk' });
    assert.equal(Buffer.from(jwk.x!, 'base64url').toString('hex'), SUITE.publicKey.x);
    assert.equal(Buffer.from(jwk.y!, 'base64url').toString('hex'), SUITE.publicKey.y);
  });

  const cases = [
    {
      name: 'post-vanilla',
      input: { method: 'POST', headers: {} },
      credentials: SUITE.credentials,
      canonicalRequest: ['POST', '/', '', 'host:example.amazonaws.com', 'x-amz-date:20150830T123600Z', 'x-amz-region-set:us-east-1', '', 'host;x-amz-date;x-amz-region-set', EMPTY_SHA256],
      stringToSign: ['AWS4-ECDSA-P256-SHA256', '20150830T123600Z', '20150830/service/aws4_request', '806a9b01b76472cc6b66fff02630726d55f8b4ada6d2fd9b36eb0d710e215861'],
      signature:
        '3044022051fe398025aafbfc21d054bc78e5edfb96c9acb7fd272795565181d757815e4702202e7b8d2b92324290b1d95f8b0fc5e333bb8b5e333f6160bcab39d7258156d224',
    },
    {
      name: 'get-vanilla-with-session-token',
      input: { method: 'GET', headers: {} },
      credentials: { ...SUITE.credentials, sessionToken: '6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267' },
      canonicalRequest: [
        'GET',
        '/',
        '',
        'host:example.amazonaws.com',
        'x-amz-date:20150830T123600Z',
        'x-amz-region-set:us-east-1',
        'x-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267',
        '',
        'host;x-amz-date;x-amz-region-set;x-amz-security-token',
        EMPTY_SHA256,
      ],
      stringToSign: ['AWS4-ECDSA-P256-SHA256', '20150830T123600Z', '20150830/service/aws4_request', '79893373104239a0547df489af395ec3c1b8873a8601f07f11ffd3f1ac557e7d'],
      signature:
        '3044022035c6bc9a8cab8a434bd8bd1cc3b6f1401842f530f1537722ad10d72a1577f8c80220101352fe0720715efbab80f82edb133175f0b61cad85daf943ad615852f9ae10',
    },
    {
      name: 'post-header-key-sort',
      input: { method: 'POST', headers: { 'My-Header1': 'value1' } },
      credentials: SUITE.credentials,
      canonicalRequest: [
        'POST',
        '/',
        '',
        'host:example.amazonaws.com',
        'my-header1:value1',
        'x-amz-date:20150830T123600Z',
        'x-amz-region-set:us-east-1',
        '',
        'host;my-header1;x-amz-date;x-amz-region-set',
        EMPTY_SHA256,
      ],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const signed = setup.internals.sign({
        ...c.input,
        host: 'example.amazonaws.com',
        path: '/',
        service: 'service',
        regionSet: 'us-east-1',
        credentials: c.credentials,
        now: SUITE.now,
      });
      assert.equal(signed.canonicalRequest, c.canonicalRequest.join('\n'));
      const key = setup.internals.signingKey(SUITE.credentials.accessKeyId, SUITE.credentials.secretAccessKey);
      if (c.stringToSign) assert.equal(signed.stringToSign, c.stringToSign.join('\n'));
      if (c.signature) assert.ok(verifies(key, signed.stringToSign, c.signature), 'the suite\'s signature verifies with the derived key');
      // ECDSA signatures are randomised: ours must verify, not match.
      assert.ok(verifies(key, signed.stringToSign, signatureOf(signed.headers)), 'our signature verifies');
      assert.match(signed.headers.authorization, /^AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE\/20150830\/service\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=30[0-9a-f]+$/);
    });
  }

  test('the canonical URI encodes the KeyValueStore ARN twice, as the AWS SDK does for services other than S3', async () => {
    const arn = 'arn:aws:cloudfront::123456789012:key-value-store/8f2b0a1c-3d4e-4f50-9a6b-7c8d9e0f1a2b';
    const path = `/key-value-stores/${encodeURIComponent(arn)}/keys/upload-key-1`;
    const signed = setup.internals.sign({ method: 'PUT', host: 'h', path, service: 'cloudfront-keyvaluestore', regionSet: '*', credentials: SUITE.credentials, now: SUITE.now });
    const uri = signed.canonicalRequest.split('\n')[1];
    assert.equal(uri, '/key-value-stores/arn%253Aaws%253Acloudfront%253A%253A123456789012%253Akey-value-store%252F8f2b0a1c-3d4e-4f50-9a6b-7c8d9e0f1a2b/keys/upload-key-1');
    // The SDK's own signer (through @aws-sdk/client-s3) builds the same canonical URI.
    const { SignatureV4 } = (await import('@smithy/signature-v4')) as unknown as { SignatureV4: new (options: Record<string, unknown>) => { getCanonicalPath(request: { path: string }): string } };
    const sdk = new SignatureV4({ service: 'cloudfront-keyvaluestore', region: '*', credentials: SUITE.credentials, sha256: class {}, uriEscapePath: true });
    assert.equal(sdk.getCanonicalPath({ path }), uri);
  });
});

describe('the custom resource', () => {
  const ARN = 'arn:aws:cloudfront::123456789012:key-value-store/8f2b0a1c-3d4e-4f50-9a6b-7c8d9e0f1a2b';
  const credentials = { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'c2VjcmV0LWZvci10ZXN0cw', sessionToken: 'token-1' };
  const event = (type: string, properties: Record<string, string> = {}) => ({
    RequestType: type,
    RequestId: 'req-1',
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/berth-dev/x',
    LogicalResourceId: 'UploadKeyInStore',
    ResponseURL: 'https://cloudformation-custom-resource-response.example/path?X-Amz-Signature=abc',
    ResourceType: 'Custom::UploadKey',
    ResourceProperties: { ServiceToken: 'x', SecretId: 'secret-1', KeyValueStoreArn: ARN, KeyVersion: '1', S3Checksum: 'off', ...properties },
  });

  /** Fake Secrets Manager and KeyValueStore; records every call. */
  function world(options: { secret?: string; failPut?: number; conflicts?: number } = {}) {
    let secret = options.secret;
    let etag = 0;
    let conflicts = options.conflicts ?? 0;
    const store = new Map<string, string>();
    const calls: Request[] = [];
    const responses: Record<string, any>[] = [];
    const deps: Deps = {
      credentials: () => credentials,
      async getSecret(id) {
        assert.equal(id, 'secret-1');
        return secret;
      },
      async putSecret(id, value) {
        assert.equal(id, 'secret-1');
        secret = value;
      },
      async request(r): Promise<Response> {
        calls.push(r);
        assert.equal(r.host, '123456789012.cloudfront-kvs.global.api.aws');
        const base = `/key-value-stores/${encodeURIComponent(ARN)}`;
        if (r.method === 'GET' && r.path === base) return { status: 200, headers: { etag: `e${etag}` }, body: JSON.stringify({ KvsARN: ARN, ETag: `e${etag}` }) };
        const key = r.method === 'PUT' && r.path.startsWith(`${base}/keys/`) ? decodeURIComponent(r.path.slice(base.length + 6)) : undefined;
        if (key !== undefined) {
          if (options.failPut) return { status: options.failPut, headers: {}, body: '{"message":"no"}' };
          if (conflicts > 0 || r.headers['if-match'] !== `e${etag}`) {
            conflicts--;
            etag++;
            return { status: 409, headers: {}, body: '{"message":"etag"}' };
          }
          store.set(key, JSON.parse(r.body).Value);
          etag++;
          return { status: 200, headers: { etag: `e${etag}` }, body: JSON.stringify({ ItemCount: store.size }) };
        }
        return { status: 404, headers: {}, body: 'unknown call' };
      },
    };
    const send = async (r: Request): Promise<Response> => {
      assert.equal(r.method, 'PUT');
      assert.equal(`https://${r.host}${r.path}`, 'https://cloudformation-custom-resource-response.example/path?X-Amz-Signature=abc');
      responses.push(JSON.parse(r.body));
      return { status: 200, headers: {}, body: '' };
    };
    return { deps, send, calls, responses, store, secret: () => secret };
  }

  test('Create: generates the key (32 random bytes) into the empty secret and writes it and s3-checksum into the store', async () => {
    const w = world();
    const answer = await setup.internals.handle(event('Create'), w.deps, w.send);
    assert.equal(answer.Status, 'SUCCESS', answer.Reason);
    const key = w.secret()!;
    assert.match(key, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(key, 'base64').length, 32);
    assert.deepEqual(Object.fromEntries(w.store), { 'upload-key-1': key, 's3-checksum': 'off' });
    assert.deepEqual(
      w.calls.map((c) => [c.method, c.path.replace(encodeURIComponent(ARN), '{arn}'), c.headers['if-match']]),
      [
        ['GET', '/key-value-stores/{arn}', undefined],
        ['PUT', '/key-value-stores/{arn}/keys/upload-key-1', 'e0'],
        ['PUT', '/key-value-stores/{arn}/keys/s3-checksum', 'e1'],
      ],
    );
    // Every call is SigV4A-signed for cloudfront-keyvaluestore, all regions, with the session token.
    const key4a = setup.internals.signingKey(credentials.accessKeyId, credentials.secretAccessKey);
    for (const c of w.calls) {
      assert.equal(c.headers['x-amz-region-set'], '*');
      assert.equal(c.headers['x-amz-security-token'], 'token-1');
      assert.match(c.headers.authorization, /^AWS4-ECDSA-P256-SHA256 Credential=ASIAEXAMPLE\/\d{8}\/cloudfront-keyvaluestore\/aws4_request, SignedHeaders=/);
      const again = setup.internals.sign({
        method: c.method,
        host: c.host,
        path: c.path,
        headers: Object.fromEntries(Object.entries(c.headers).filter(([name]) => ['content-type', 'if-match'].includes(name))),
        body: c.body,
        service: 'cloudfront-keyvaluestore',
        regionSet: '*',
        credentials,
        now: new Date(`${c.headers['x-amz-date'].replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')}`),
      });
      assert.ok(verifies(key4a, again.stringToSign, signatureOf(c.headers)), `${c.method} ${c.path}: the signature covers what was sent`);
      if (c.method === 'PUT') assert.match(c.headers.authorization, /SignedHeaders=content-type;host;if-match;x-amz-date;x-amz-region-set;x-amz-security-token,/);
    }
    assert.deepEqual(w.responses, [
      {
        Status: 'SUCCESS',
        // The API's origin proof: the value the registry derives from the same key.
        Data: { KeyName: 'upload-key-1', OriginProof: originProof({ version: 1, secret: Buffer.from(w.secret()!, 'base64') }) },
        NoEcho: true,
        PhysicalResourceId: `${ARN}/upload-key-1`,
        StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/berth-dev/x',
        RequestId: 'req-1',
        LogicalResourceId: 'UploadKeyInStore',
      },
    ]);
  });

  test('Update: keeps the key, writes it again with the new s3-checksum, retries on a changed ETag', async () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const w = world({ secret: key, conflicts: 1 });
    const answer = await setup.internals.handle({ ...event('Update', { S3Checksum: 'on' }), PhysicalResourceId: 'p-1' }, w.deps, w.send);
    assert.equal(answer.Status, 'SUCCESS', answer.Reason);
    assert.equal(w.secret(), key, 'the secret is not rotated');
    assert.deepEqual(Object.fromEntries(w.store), { 'upload-key-1': key, 's3-checksum': 'on' });
    assert.equal(w.responses[0].PhysicalResourceId, 'p-1');
  });

  test('Delete: nothing to undo (the store and the secret go with the stack)', async () => {
    const w = world({ secret: Buffer.alloc(32).toString('base64') });
    const answer = await setup.internals.handle({ ...event('Delete'), PhysicalResourceId: 'p-1' }, w.deps, w.send);
    assert.equal(answer.Status, 'SUCCESS');
    assert.equal(w.calls.length, 0);
    assert.equal(w.responses[0].Status, 'SUCCESS');
  });

  test('a failure is answered FAILED with its reason (CloudFormation does not wait an hour)', async (t) => {
    t.mock.method(console, 'error', () => {});
    const w = world({ failPut: 403 });
    const answer = await setup.internals.handle(event('Create'), w.deps, w.send);
    assert.equal(answer.Status, 'FAILED');
    assert.match(w.responses[0].Reason, /KeyValueStore PUT upload-key-1: HTTP 403/);
    const bad = world({ secret: 'not a key' });
    await setup.internals.handle(event('Create'), bad.deps, bad.send);
    assert.match(bad.responses[0].Reason, /does not hold a base64 key of 32 bytes/);
  });

  test('the inline code loads as the CommonJS index.js CloudFormation writes, without dependencies', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-setup-'));
    try {
      await writeFile(join(dir, 'index.js'), await readFile(join(ROOT, 'infra/aws/frontdoor/setup.cjs'), 'utf8'));
      const loaded = require(join(dir, 'index.js')) as { handler: unknown };
      assert.equal(typeof loaded.handler, 'function');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('package-time checks (infra/aws/frontdoor.cjs)', () => {
  test('the function code must fit CloudFront Functions\' 10 KB', async () => {
    assert.equal(frontdoor.MAX_FUNCTION_BYTES, 10_240);
    const code = frontdoor.functionCode();
    assert.match(code, /^import cf from 'cloudfront';/);
    const dir = await mkdtemp(join(tmpdir(), 'berth-function-'));
    try {
      const big = join(dir, 'function.js');
      await writeFile(big, `import cf from 'cloudfront';\n${'//'.padEnd(10_240, 'x')}\n`);
      assert.throws(() => frontdoor.functionCode(big), /is 10270 bytes; a CloudFront Function may have at most 10240 bytes \(10 KB, a quota AWS does not raise\)/);
      await writeFile(big, 'é'.repeat(5_121));
      assert.throws(() => frontdoor.functionCode(big), /10242 bytes/, 'bytes, not characters');
      assert.throws(() => frontdoor.functionCode(join(dir, 'missing.js')), /cannot read the CloudFront Function's code/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('text with ${ goes into the template as pieces the framework leaves alone, and joins back', () => {
    assert.equal(frontdoor.literal('plain text'), 'plain text');
    const text = 'const a = `${x}`; const b = "${AWS::Region}"; ${';
    const value = frontdoor.literal(text) as { 'Fn::Join': [string, string[]] };
    const [separator, pieces] = value['Fn::Join'];
    assert.equal(separator, '');
    assert.ok(pieces.every((piece) => !piece.includes('${')));
    assert.equal(pieces.join(''), text);
  });
});
