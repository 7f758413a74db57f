/**
 * The deployment, checked offline: `npx serverless package` (which bundles the functions first,
 * infra/aws/build-plugin.cjs) with and without the custom-domain parameters and with another
 * stage and region, with no AWS credentials at all, then the
 * packaged CloudFormation templates against the properties the deployment promises, and cfn-lint
 * (test/deploy/cfn-lint.sh) on each.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { HTTP_API_ROUTES, maxChunkBytes, AWS_LIMITS } from '../../infra/local/lambda-emulator.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOMAIN_PARAMS = [
  '--param=domain=registry.example.com',
  '--param=certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/abc',
  '--param=hostedZoneId=Z123',
];

/** The environment of a machine that has never seen AWS: no credentials, no profile, no config. */
function withoutAws(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('AWS_')) env[name] = value;
  return {
    ...env,
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    // No instance metadata lookups for credentials either.
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

interface Packaged {
  dir: string;
  template: Template;
  state: { service: { provider: { stage: string; region: string } } };
  output: string;
}

type Json = Record<string, any>;
interface Template {
  Resources: Record<string, { Type: string; Properties?: Json; Condition?: string; DependsOn?: string | string[] }>;
  Outputs: Record<string, { Value: unknown; Condition?: string; Description?: string }>;
  Conditions?: Record<string, unknown>;
}

async function serverlessPackage(dir: string, args: string[]): Promise<Packaged> {
  const { stdout, stderr } = await run('npx', ['serverless', 'package', '--package', dir, ...args], { cwd: ROOT, env: withoutAws(), maxBuffer: 16 << 20 });
  const template = JSON.parse(await readFile(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  const state = JSON.parse(await readFile(join(dir, 'serverless-state.json'), 'utf8'));
  return { dir, template, state, output: stdout + stderr };
}

let work: string;
let plain: Packaged;
let withDomain: Packaged;
let otherStage: Packaged;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-package-'));
  // One at a time: the framework keeps state in the service folder while it packages.
  plain = await serverlessPackage(join(work, 'default'), []);
  withDomain = await serverlessPackage(join(work, 'domain'), DOMAIN_PARAMS);
  otherStage = await serverlessPackage(join(work, 'qa'), ['--stage', 'qa', '--region', 'eu-west-1']);
});
after(() => rm(work, { recursive: true, force: true }));

const ofType = (t: Template, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);
const one = (t: Template, type: string) => {
  const found = ofType(t, type);
  assert.equal(found.length, 1, `exactly one ${type}`);
  return found[0][1];
};

describe('packaging without AWS credentials', () => {
  test('succeeds with and without the domain parameters, and for another stage and region', () => {
    for (const p of [plain, withDomain, otherStage]) assert.match(p.output, /Service packaged/);
    assert.deepEqual([plain.state.service.provider.stage, plain.state.service.provider.region], ['dev', 'us-east-1']);
    assert.deepEqual([otherStage.state.service.provider.stage, otherStage.state.service.provider.region], ['qa', 'eu-west-1']);
  });

  test('a domain without its certificate is refused with an explanation', async () => {
    await assert.rejects(
      serverlessPackage(join(work, 'bad'), ['--param=domain=registry.example.com']),
      (error: Error & { stdout?: string; stderr?: string }) => /needs --param="certificateArn=/.test(`${error.stdout}${error.stderr}`),
    );
  });
});

describe('the template', () => {
  test('an HTTP API (not REST) with the routes Berth serves, payload 2.0, 30 s integration timeout', () => {
    for (const t of [plain.template, withDomain.template]) {
      assert.equal(ofType(t, 'AWS::ApiGateway::RestApi').length, 0);
      assert.equal(one(t, 'AWS::ApiGatewayV2::Api').Properties!.ProtocolType, 'HTTP');
      const routes = ofType(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties!.RouteKey).sort();
      assert.deepEqual(routes, [...HTTP_API_ROUTES].sort(), 'the emulator (infra/local/lambda-emulator.ts) knows the same routes');
      const integration = one(t, 'AWS::ApiGatewayV2::Integration').Properties!;
      assert.equal(integration.IntegrationType, 'AWS_PROXY');
      assert.equal(integration.PayloadFormatVersion, '2.0');
      assert.equal(integration.TimeoutInMillis, AWS_LIMITS.integrationTimeoutMs);
      assert.deepEqual(integration.IntegrationUri, { 'Fn::GetAtt': ['ApiLambdaFunction', 'Arn'] });
      assert.equal(one(t, 'AWS::ApiGatewayV2::Stage').Properties!.StageName, '$default');
    }
  });

  test('functions on nodejs22.x and arm64, memory and timeouts within the limits', () => {
    const functions = ofType(plain.template, 'AWS::Lambda::Function');
    assert.ok(functions.length >= 1);
    for (const [name, f] of functions) {
      const p = f.Properties!;
      assert.equal(p.Runtime, 'nodejs22.x', name);
      assert.deepEqual(p.Architectures, ['arm64'], name);
      assert.ok(p.MemorySize >= 128 && p.MemorySize <= 10240, `${name} memory ${p.MemorySize}`);
      assert.ok(p.Timeout >= 1 && p.Timeout <= 900, `${name} timeout ${p.Timeout}`);
      assert.equal(p.Environment.Variables.NODE_OPTIONS, '--enable-source-maps', `${name} maps stack traces to the sources`);
    }
    const api = plain.template.Resources.ApiLambdaFunction.Properties!;
    assert.equal(api.MemorySize, 1024);
    assert.equal(api.Timeout, AWS_LIMITS.functionTimeoutMs / 1000);
    assert.ok(api.Timeout * 1000 < AWS_LIMITS.integrationTimeoutMs, 'the function gives up before API Gateway does');
    assert.equal(api.Environment.Variables.BERTH_MAX_CHUNK, String(maxChunkBytes()), 'advertised chunk limit matches the emulator');
    assert.equal(api.Environment.Variables.BERTH_AUTH, 'required');
    assert.equal(api.Environment.Variables.BERTH_BLOB_DELIVERY, 'redirect');
  });

  test('each function zip holds its minified bundle and source map, nothing else', async () => {
    const zips = (await readdir(plain.dir)).filter((f) => f.endsWith('.zip'));
    assert.ok(zips.includes('api.zip'), `zips: ${zips}`);
    for (const zip of zips) {
      const name = zip.replace(/\.zip$/, '');
      const entries = readZip(await readFile(join(plain.dir, zip)));
      assert.deepEqual([...entries.keys()].sort(), [`dist/${name}/index.mjs`, `dist/${name}/index.mjs.map`], zip);
      const code = entries.get(`dist/${name}/index.mjs`)!.toString('utf8');
      assert.ok(JSON.parse(entries.get(`dist/${name}/index.mjs.map`)!.toString('utf8')).mappings, `${zip}: a source map`);
      const lines = code.split('\n').length;
      assert.ok(code.length / lines > 2000, `${zip}: minified (${code.length} bytes in ${lines} lines)`);
      assert.match(code, /\/\/# sourceMappingURL=index\.mjs\.map\s*$/);
      assert.equal(plain.template.Resources[`${name[0].toUpperCase()}${name.slice(1)}LambdaFunction`].Properties!.Handler, `dist/${name}/index.handler`);
    }
  });

  test('bucket: public access blocked, encrypted, lifecycle rules for unfinished uploads', () => {
    for (const t of [plain.template, withDomain.template]) {
      const buckets = ofType(t, 'AWS::S3::Bucket');
      for (const [name, b] of buckets) {
        assert.deepEqual(
          b.Properties!.PublicAccessBlockConfiguration,
          { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
          `${name}: all public access blocked`,
        );
        assert.ok(b.Properties!.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, `${name}: encrypted`);
      }
      const bucket = t.Resources.Bucket;
      assert.equal(bucket.Type, 'AWS::S3::Bucket');
      assert.deepEqual(bucket.Properties!.OwnershipControls, { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
      const rules: Json[] = bucket.Properties!.LifecycleConfiguration.Rules;
      const abort = rules.find((r) => r.AbortIncompleteMultipartUpload);
      assert.ok(abort && abort.Status === 'Enabled' && abort.AbortIncompleteMultipartUpload.DaysAfterInitiation >= 1, 'aborts incomplete multipart uploads');
      const scratch = rules.find((r) => r.Prefix === 'uploads/' || r.Filter?.Prefix === 'uploads/');
      assert.ok(scratch && scratch.Status === 'Enabled' && scratch.ExpirationInDays >= 1, 'expires upload scratch data under uploads/');
    }
  });

  test('upload scratch data really lives under uploads/ (what the lifecycle rule expires)', async () => {
    const uploads = await readFile(join(ROOT, 'functions/core/uploads.ts'), 'utf8');
    assert.match(uploads, /`uploads\/\$\{/);
  });

  test('table: on demand, TTL on expiresAt, point-in-time recovery, named per stage', async () => {
    const table = plain.template.Resources.Table;
    assert.equal(table.Type, 'AWS::DynamoDB::Table');
    const p = table.Properties!;
    assert.equal(p.BillingMode, 'PAY_PER_REQUEST');
    assert.equal(p.ProvisionedThroughput, undefined);
    assert.deepEqual(p.TimeToLiveSpecification, { AttributeName: 'expiresAt', Enabled: true });
    assert.deepEqual(p.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    assert.equal(p.TableName, 'berth-dev');
    assert.equal(otherStage.template.Resources.Table.Properties!.TableName, 'berth-qa');
    const dynamo = await readFile(join(ROOT, 'functions/storage/dynamodb.ts'), 'utf8');
    assert.match(dynamo, /expiresAt/, 'the code writes the TTL attribute the table expires on');
  });

  test('the token signing key is generated by Secrets Manager at deploy time, never in the template', () => {
    const secret = plain.template.Resources.TokenKey;
    assert.equal(secret.Type, 'AWS::SecretsManager::Secret');
    assert.ok(secret.Properties!.GenerateSecretString.PasswordLength >= 32);
    assert.equal(secret.Properties!.SecretString, undefined);
    assert.deepEqual(plain.template.Resources.ApiLambdaFunction.Properties!.Environment.Variables.BERTH_TOKEN_KEY_SECRET, { Ref: 'TokenKey' });
    assert.equal(plain.template.Resources.ApiLambdaFunction.Properties!.Environment.Variables.BERTH_TOKEN_KEY, undefined);
  });

  test('IAM: only the actions the code calls, only on this stack\'s bucket, table, secret and functions, no *', async () => {
    const required = await actionsUsedByCode();
    for (const packaged of [plain, otherStage]) {
      const { template } = packaged;
      const { stage } = packaged.state.service.provider;
      const roles = ofType(template, 'AWS::IAM::Role');
      assert.equal(roles.length, 1);
      const role = roles[0][1].Properties!;
      assert.equal(role.ManagedPolicyArns, undefined, 'no managed policies');
      const statements: Json[] = role.Policies.flatMap((p: Json) => p.PolicyDocument.Statement);
      const berth = statements.filter((s) => !list(s.Action).every((a: string) => a.startsWith('logs:')));
      const logs = statements.filter((s) => !berth.includes(s));
      for (const s of statements) {
        assert.equal(s.Effect, 'Allow');
        for (const action of list(s.Action)) assert.ok(!action.includes('*'), `no wildcard action: ${action}`);
        for (const resource of list(s.Resource)) assert.notEqual(resource, '*', 'no * resource');
      }
      // The framework's statements: this service's and stage's log groups only.
      for (const s of logs) for (const r of list(s.Resource)) assert.match(JSON.stringify(r), new RegExp(`log-group:/aws/lambda/berth-${stage}`));

      const granted = new Set(berth.flatMap((s) => list(s.Action)));
      assert.deepEqual([...granted].sort(), [...required].sort(), 'granted actions = actions the code calls');
      for (const s of berth) {
        for (const action of list(s.Action)) {
          for (const resource of list(s.Resource)) {
            const r = JSON.stringify(resource);
            const service = action.split(':')[0];
            const allowed: Record<string, RegExp> = {
              // Object actions need an object ARN: every key of this stack's bucket, nothing else.
              s3: /^\{"Fn::Sub":"\$\{Bucket\.Arn\}\/\*"\}$/,
              dynamodb: /^\{"Fn::GetAtt":\["Table","Arn"\]\}$/,
              secretsmanager: /^\{"Ref":"TokenKey"\}$/,
              lambda: new RegExp(`^\\{"Fn::Sub":"arn:\\$\\{AWS::Partition\\}:lambda:\\$\\{AWS::Region\\}:\\$\\{AWS::AccountId\\}:function:berth-${stage}-[a-z]+"\\}$`),
            };
            assert.ok(allowed[service]?.test(r), `${action} on ${r}`);
          }
        }
      }
    }
  });

  test('stage and region are parameters', () => {
    const names = (p: Packaged) => ofType(p.template, 'AWS::Lambda::Function').map(([, f]) => f.Properties!.FunctionName).sort();
    assert.ok(names(plain).every((n: string) => n.startsWith('berth-dev-')));
    assert.ok(names(otherStage).every((n: string) => n.startsWith('berth-qa-')));
    // Nothing region-specific is written into the template: ARNs and URLs use AWS::Region.
    assert.doesNotMatch(JSON.stringify(otherStage.template), /us-east-1/);
    assert.doesNotMatch(JSON.stringify(plain.template), /eu-west-1/);
  });

  test('outputs: registry URL, bucket and table (and the domain target with a domain)', () => {
    const o = plain.template.Outputs;
    assert.deepEqual(o.RegistryUrl.Value, { 'Fn::Sub': 'https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}' });
    assert.deepEqual(o.BucketName.Value, { Ref: 'Bucket' });
    assert.deepEqual(o.TableName.Value, { Ref: 'Table' });
    assert.ok(o.HttpApiUrl, 'the framework also outputs the HTTP API URL');
    assert.equal(o.DomainTarget, undefined);
    const d = withDomain.template.Outputs;
    assert.equal(d.RegistryUrl.Value, 'https://registry.example.com');
    assert.deepEqual(d.DomainTarget.Value, { 'Fn::GetAtt': ['DomainName', 'RegionalDomainName'] });
  });

  test('custom domain resources exist only with the domain parameters, and their conditions hold', () => {
    const domainTypes = ['AWS::ApiGatewayV2::DomainName', 'AWS::ApiGatewayV2::ApiMapping', 'AWS::Route53::RecordSet'];
    for (const t of [plain.template, otherStage.template]) {
      for (const type of domainTypes) assert.equal(ofType(t, type).length, 0, `no ${type} without a domain`);
      for (const [name, r] of Object.entries(t.Resources)) if (r.Condition) assert.ok(holds(t, r.Condition), `${name}: condition ${r.Condition}`);
    }
    const t = withDomain.template;
    const active = (type: string) => {
      const r = one(t, type);
      if (r.Condition) assert.ok(holds(t, r.Condition), `${type}: condition ${r.Condition} resolves true`);
      return r.Properties!;
    };
    const domain = active('AWS::ApiGatewayV2::DomainName');
    assert.equal(domain.DomainName, 'registry.example.com');
    assert.deepEqual(domain.DomainNameConfigurations, [
      { CertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc', EndpointType: 'REGIONAL', SecurityPolicy: 'TLS_1_2' },
    ]);
    const mapping = active('AWS::ApiGatewayV2::ApiMapping');
    assert.deepEqual(mapping, { ApiId: { Ref: 'HttpApi' }, DomainName: { Ref: 'DomainName' }, Stage: '$default' });
    const record = active('AWS::Route53::RecordSet');
    assert.equal(record.HostedZoneId, 'Z123');
    assert.equal(record.Name, 'registry.example.com');
    assert.equal(record.Type, 'A');
    assert.deepEqual(record.AliasTarget, {
      DNSName: { 'Fn::GetAtt': ['DomainName', 'RegionalDomainName'] },
      HostedZoneId: { 'Fn::GetAtt': ['DomainName', 'RegionalHostedZoneId'] },
    });
  });

  test('cfn-lint accepts both templates', { timeout: 300_000 }, async () => {
    const templates = [plain, withDomain, otherStage].map((p) => join(p.dir, 'cloudformation-template-update-stack.json'));
    templates.push(join(plain.dir, 'cloudformation-template-create-stack.json'));
    const result = await run('bash', [join(ROOT, 'test/deploy/cfn-lint.sh'), ...templates], { cwd: ROOT, maxBuffer: 16 << 20 }).catch(
      (error: Error & { stdout?: string; stderr?: string; code?: number }) => error,
    );
    assert.ok(!(result instanceof Error), `cfn-lint failed:\n${result instanceof Error ? `${result.stdout}${result.stderr}` : ''}`);
  });
});

/** The files of a zip archive (stored or deflated entries, as the framework writes them). */
function readZip(zip: Buffer): Map<string, Buffer> {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, 'a zip archive');
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    assert.equal(zip.readUInt32LE(at), 0x02014b50, 'central directory entry');
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.subarray(at + 46, at + 46 + nameLength).toString('utf8');
    const dataAt = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(dataAt, dataAt + compressed);
    if (!name.endsWith('/')) files.set(name, method === 8 ? inflateRawSync(data) : Buffer.from(data));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return files;
}

function list<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** Evaluates a CloudFormation condition that uses literals only (what the packaged template holds). */
function holds(t: Template, name: string): boolean {
  const evaluate = (c: any): any => {
    if (typeof c !== 'object' || c === null) return c;
    if ('Condition' in c) return holds(t, c.Condition);
    if ('Fn::Not' in c) return !evaluate(c['Fn::Not'][0]);
    if ('Fn::And' in c) return c['Fn::And'].every(evaluate);
    if ('Fn::Or' in c) return c['Fn::Or'].some(evaluate);
    if ('Fn::Equals' in c) return evaluate(c['Fn::Equals'][0]) === evaluate(c['Fn::Equals'][1]);
    throw new Error(`cannot evaluate ${JSON.stringify(c)} offline`);
  };
  assert.ok(t.Conditions?.[name], `condition ${name} exists`);
  return evaluate(t.Conditions[name]) === true;
}

/**
 * The IAM actions the deployed code needs, from the AWS SDK commands it sends (functions/**).
 * A command missing here fails the test: add its IAM action(s) and grant them in serverless.yml.
 */
async function actionsUsedByCode(): Promise<Set<string>> {
  const IAM: Record<string, string[]> = {
    GetObjectCommand: ['s3:GetObject'],
    HeadObjectCommand: ['s3:GetObject'],
    PutObjectCommand: ['s3:PutObject'],
    CreateMultipartUploadCommand: ['s3:PutObject'],
    UploadPartCommand: ['s3:PutObject'],
    CompleteMultipartUploadCommand: ['s3:PutObject'],
    AbortMultipartUploadCommand: ['s3:AbortMultipartUpload'],
    DeleteObjectCommand: ['s3:DeleteObject'],
    DeleteObjectsCommand: ['s3:DeleteObject'],
    ListPartsCommand: ['s3:ListMultipartUploadParts'],
    GetCommand: ['dynamodb:GetItem'],
    PutCommand: ['dynamodb:PutItem'],
    UpdateCommand: ['dynamodb:UpdateItem'],
    DeleteCommand: ['dynamodb:DeleteItem'],
    QueryCommand: ['dynamodb:Query'],
    ScanCommand: ['dynamodb:Scan'],
    BatchGetCommand: ['dynamodb:BatchGetItem'],
    BatchWriteCommand: ['dynamodb:BatchWriteItem'],
    GetSecretValueCommand: ['secretsmanager:GetSecretValue'],
    InvokeCommand: ['lambda:InvokeFunction'],
  };
  const files = await sources(join(ROOT, 'functions'));
  const actions = new Set<string>();
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    for (const [, command] of text.matchAll(/new (\w+Command)\b/g)) {
      assert.ok(IAM[command], `${relative(ROOT, file)} sends ${command}: map it to its IAM action(s) here and grant them in serverless.yml`);
      for (const action of IAM[command]) actions.add(action);
    }
  }
  return actions;
}

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}
