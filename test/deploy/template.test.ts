/**
 * The deployment, checked offline: `npx serverless package` (which bundles the functions first,
 * infra/aws/build-plugin.cjs) with and without the custom-domain parameters, with another stage,
 * region and price class, and without the CloudFront front door (`frontDoor=false`, with and
 * without a domain), with no AWS credentials at all, then the packaged CloudFormation templates
 * against the properties the deployment promises, and cfn-lint (test/deploy/cfn-lint.sh) on each.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { isScratch, tailKeyOf } from '../../functions/core/sessions.js';
import { HTTP_API_ROUTES, maxChunkBytes, AWS_LIMITS } from '../../infra/local/lambda-emulator.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOMAIN_PARAMS = [
  '--param=domain=registry.example.com',
  '--param=certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/abc',
  '--param=hostedZoneId=Z123',
];
/** The operational parameters away from their defaults (given to the qa stage). */
const TUNED_PARAMS = [
  '--param=apiThrottleRate=20',
  '--param=apiThrottleBurst=40',
  '--param=apiReservedConcurrency=50',
  '--param=alarmEmail=ops@example.com',
  '--param=s3Versioning=on',
  '--param=s3NoncurrentDays=7',
];
const require = createRequire(import.meta.url);
const frontdoor = require('../../infra/aws/frontdoor.cjs') as { MAX_FUNCTION_BYTES: number };
/** AWS managed CloudFront policies (ids are the same in every account). */
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
const ALL_VIEWER_EXCEPT_HOST_HEADER = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';
/** Route 53's hosted zone of every CloudFront distribution. */
const CLOUDFRONT_ZONE = 'Z2FDTNDATAQYW2';
const DISTRIBUTION_ARN = { 'Fn::Sub': 'arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}' };

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
/** Without the front door: API Gateway directly, as before it. */
let direct: Packaged;
let directDomain: Packaged;
/** The front door without marks of used upload URLs (refuseReplays=false). */
let replays: Packaged;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-package-'));
  // One at a time: the framework keeps state in the service folder while it packages.
  plain = await serverlessPackage(join(work, 'default'), []);
  withDomain = await serverlessPackage(join(work, 'domain'), DOMAIN_PARAMS);
  otherStage = await serverlessPackage(join(work, 'qa'), [
    '--stage', 'qa', '--region', 'eu-west-1', '--param=priceClass=PriceClass_All', '--param=gcSchedule=cron(0 3 * * ? *)', '--param=gcGrace=48h',
    ...TUNED_PARAMS,
  ]);
  direct = await serverlessPackage(join(work, 'direct'), ['--param=frontDoor=false']);
  directDomain = await serverlessPackage(join(work, 'direct-domain'), ['--param=frontDoor=false', ...DOMAIN_PARAMS]);
  replays = await serverlessPackage(join(work, 'replays'), ['--param=refuseReplays=false']);
});
after(() => rm(work, { recursive: true, force: true }));

/** Packaging with `args` fails with an explanation matching `reason`. */
const refused = (args: string[], reason: RegExp) =>
  assert.rejects(serverlessPackage(join(work, 'bad'), args), (error: Error & { stdout?: string; stderr?: string }) => {
    assert.match(`${error.stdout}${error.stderr}`, reason);
    return true;
  });

const ofType = (t: Template, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);
const one = (t: Template, type: string) => {
  const found = ofType(t, type);
  assert.equal(found.length, 1, `exactly one ${type}`);
  return found[0][1];
};

describe('packaging without AWS credentials', () => {
  test('succeeds with and without the domain parameters, for another stage and region, and without the front door', () => {
    for (const p of [plain, withDomain, otherStage, direct, directDomain]) assert.match(p.output, /Service packaged/);
    assert.deepEqual([plain.state.service.provider.stage, plain.state.service.provider.region], ['dev', 'us-east-1']);
    assert.deepEqual([otherStage.state.service.provider.stage, otherStage.state.service.provider.region], ['qa', 'eu-west-1']);
  });


  test('a domain without its certificate is refused with an explanation', async () => {
    await refused(['--param=domain=registry.example.com'], /needs --param="certificateArn=.*us-east-1/);
  });

  test('the front door takes a certificate from us-east-1 only, whatever the stack\'s region', async () => {
    const elsewhere = ['--param=domain=registry.example.com', '--param=certificateArn=arn:aws:acm:eu-west-1:123456789012:certificate/abc'];
    await refused(elsewhere, /certificate is in eu-west-1: .*CloudFront uses ACM certificates from us-east-1 only/);
    await refused(['--region', 'eu-west-1', ...elsewhere], /CloudFront uses ACM certificates from us-east-1 only \(whatever the stack's region, eu-west-1\)/);
    // Without the front door the domain is a regional API Gateway domain: the stack's region.
    await refused(['--param=frontDoor=false', '--region', 'eu-west-1', ...DOMAIN_PARAMS], /certificate is in us-east-1, the stack in eu-west-1/);
  });

  test('settings that contradict each other are refused', async () => {
    await refused(['--param=frontDoor=false', '--param=blobDelivery=frontdoor'], /blobDelivery=frontdoor" needs the front door/);
    await refused(['--param=priceClass=PriceClass_1'], /must be one of PriceClass_100, PriceClass_200, PriceClass_All/);
    await refused(['--param=frontDoor=maybe'], /frontDoor=maybe" must be true or false/);
  });
});

describe('the template', () => {
  test('an HTTP API (not REST) with the routes Berth serves, payload 2.0, 30 s integration timeout', () => {
    for (const t of [plain.template, withDomain.template, direct.template]) {
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
      // The bundled functions; the front door's inline custom resource code has no source map.
      if (String(p.Handler).startsWith('dist/')) assert.equal(p.Environment.Variables.NODE_OPTIONS, '--enable-source-maps', `${name} maps stack traces to the sources`);
    }
    const api = plain.template.Resources.ApiLambdaFunction.Properties!;
    assert.equal(api.MemorySize, 1024);
    assert.equal(api.Timeout, AWS_LIMITS.functionTimeoutMs / 1000);
    assert.ok(api.Timeout * 1000 < AWS_LIMITS.integrationTimeoutMs, 'the function gives up before API Gateway does');
    assert.equal(api.Environment.Variables.BERTH_MAX_CHUNK, String(maxChunkBytes()), 'advertised chunk limit matches the emulator');
    assert.equal(api.Environment.Variables.BERTH_AUTH, 'required');
    // Tokens only for the stack's own addresses (a token's audience is the host a request names).
    const hosts = (p: Packaged) => p.template.Resources.ApiLambdaFunction.Properties!.Environment.Variables.BERTH_HOSTS;
    const endpoint = '${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}';
    assert.deepEqual(hosts(plain), { 'Fn::Sub': `\${Distribution.DomainName},${endpoint}` });
    assert.deepEqual(hosts(withDomain), { 'Fn::Sub': `registry.example.com,\${Distribution.DomainName},${endpoint}` });
    assert.deepEqual(hosts(direct), { 'Fn::Sub': endpoint });
    assert.deepEqual(hosts(directDomain), { 'Fn::Sub': `registry.example.com,${endpoint}` });
    // Blob GETs answer 307 to a signed path the front door serves from S3; without it, to S3.
    for (const f of ['ApiLambdaFunction', 'VerifyLambdaFunction']) {
      const env = plain.template.Resources[f].Properties!.Environment.Variables;
      assert.equal(env.BERTH_BLOB_DELIVERY, 'frontdoor', f);
      assert.deepEqual(env.BERTH_UPLOAD_KEY_SECRET, { Ref: 'UploadKey' }, `${f}: the front door's key`);
      assert.equal(env.BERTH_UPLOAD_KEY, undefined);
      const without = direct.template.Resources[f].Properties!.Environment.Variables;
      assert.equal(without.BERTH_BLOB_DELIVERY, 'redirect', f);
      assert.ok(!('BERTH_UPLOAD_KEY_SECRET' in without), `${f}: no key without the front door`);
    }
  });

  test('each function zip holds its minified bundle, the chunks it loads and their source maps, nothing else', async () => {
    const zips = (await readdir(plain.dir)).filter((f) => f.endsWith('.zip'));
    assert.ok(zips.includes('api.zip'), `zips: ${zips}`);
    for (const zip of zips) {
      const name = zip.replace(/\.zip$/, '');
      const entries = readZip(await readFile(join(plain.dir, zip)));
      const chunks = (await readdir(join(ROOT, 'dist', name, 'chunks'))).map((f) => `dist/${name}/chunks/${f}`);
      assert.deepEqual([...entries.keys()].sort(), [`dist/${name}/index.mjs`, `dist/${name}/index.mjs.map`, ...chunks].sort(), zip);
      // Every chunk a module imports (statically or by import()) is in the zip: the code splitting of infra/build.mjs.
      for (const [file, bytes] of entries) {
        if (!file.endsWith('.mjs')) continue;
        for (const [, target] of bytes.toString('utf8').matchAll(/["'](\.\.?\/[\w./-]+\.mjs)["']/g)) {
          assert.ok(entries.has(join(dirname(file), target)), `${zip}: ${file} imports ${target}, which is packaged`);
        }
      }
      const code = entries.get(`dist/${name}/index.mjs`)!.toString('utf8');
      assert.ok(JSON.parse(entries.get(`dist/${name}/index.mjs.map`)!.toString('utf8')).mappings, `${zip}: a source map`);
      const lines = code.split('\n').length;
      assert.ok(code.length / lines > 2000, `${zip}: minified (${code.length} bytes in ${lines} lines)`);
      assert.match(code, /\/\/# sourceMappingURL=index\.mjs\.map\s*$/);
      assert.equal(plain.template.Resources[`${name[0].toUpperCase()}${name.slice(1)}LambdaFunction`].Properties!.Handler, `dist/${name}/index.handler`);
    }
  });

  test('bucket: public access blocked, encrypted, lifecycle rules for unfinished uploads', () => {
    for (const t of [plain.template, withDomain.template, direct.template]) {
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
      const incoming = rules.find((r) => r.Prefix === 'incoming/' || r.Filter?.Prefix === 'incoming/');
      assert.ok(incoming && incoming.Status === 'Enabled' && incoming.ExpirationInDays === 2, 'expires unverified whole-blob uploads under incoming/ after 2 days');
    }
  });

  test('upload scratch data really lives under uploads/ (what the lifecycle rule expires)', async () => {
    // The lifecycle rule's prefix, and where the upload path writes a session's scratch tails.
    const key = tailKeyOf('0f6e2c1a-session', 5 * 1024 * 1024, 'owner');
    assert.ok(key.startsWith('uploads/'), key);
    assert.ok(isScratch(key), 'the session itself may delete it');
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
      // The functions' role (the front door's custom resource has its own, checked below).
      const roles = ofType(template, 'AWS::IAM::Role').filter(([name]) => name !== 'FrontDoorSetupRole' && name !== 'GcRole');
      assert.equal(roles.length, 1);
      const role = roles[0][1].Properties!;
      assert.equal(role.ManagedPolicyArns, undefined, 'no managed policies');
      // Its inline policies, and the front door's policy for marking used upload URLs, attached to it.
      const attached = ofType(template, 'AWS::IAM::Policy')
        .filter(([, policy]) => JSON.stringify(policy.Properties!.Roles) === JSON.stringify([{ Ref: 'IamRoleLambdaExecution' }]))
        .map(([, policy]) => policy.Properties!);
      const statements: Json[] = [...role.Policies, ...attached].flatMap((p: Json) => p.PolicyDocument.Statement);
      // The framework's grant for verify's on-failure destination: the failure queue alone.
      const destination = statements.filter((s) => list(s.Action).includes('sqs:SendMessage'));
      assert.deepEqual(destination.map((s) => [s.Action, s.Resource]), [['sqs:SendMessage', { 'Fn::GetAtt': ['FailureQueue', 'Arn'] }]]);
      const berth = statements.filter((s) => !list(s.Action).every((a: string) => a.startsWith('logs:')) && !destination.includes(s));
      const logs = statements.filter((s) => !berth.includes(s) && !destination.includes(s));
      for (const s of statements) {
        assert.equal(s.Effect, 'Allow');
        for (const action of list(s.Action)) assert.ok(!action.includes('*'), `no wildcard action: ${action}`);
        for (const resource of list(s.Resource)) assert.notEqual(resource, '*', 'no * resource');
      }
      // The framework's statements: this service's and stage's log groups only.
      for (const s of logs) for (const r of list(s.Resource)) assert.match(JSON.stringify(r), new RegExp(`log-group:/aws/lambda/berth-${stage}`));

      const granted = new Set(berth.flatMap((s) => list(s.Action)));
      // Dropping expired marks (ListKeys, UpdateKeys) is the gc function's, under its own role.
      const pruning = ['cloudfront-keyvaluestore:ListKeys', 'cloudfront-keyvaluestore:UpdateKeys'];
      assert.deepEqual([...granted].sort(), [...required].filter((a) => !pruning.includes(a)).sort(), 'granted actions = actions the code calls');
      for (const s of berth) {
        for (const action of list(s.Action)) {
          for (const resource of list(s.Resource)) {
            const r = JSON.stringify(resource);
            const service = action.split(':')[0];
            const allowed: Record<string, RegExp> = {
              // Object actions need an object ARN: every key of this stack's bucket, nothing else;
              // listing, the bucket ARN (under a prefix condition, below).
              s3: action === 's3:ListBucket' ? /^\{"Fn::GetAtt":\["Bucket","Arn"\]\}$/ : /^\{"Fn::Sub":"\$\{Bucket\.Arn\}\/\*"\}$/,
              dynamodb: /^\{"Fn::GetAtt":\["Table","Arn"\]\}$/,
              'cloudfront-keyvaluestore': /^\{"Fn::GetAtt":\["KeyValueStore","Arn"\]\}$/,
              // The stack's keys, and the upstream credentials of this stage's cache rules only.
              secretsmanager: new RegExp(`^\\{"Ref":"(TokenKey|UploadKey)"\\}$|^${escape(JSON.stringify(cacheSecrets(stage)))}$`),
              lambda: new RegExp(`^\\{"Fn::Sub":"arn:\\$\\{AWS::Partition\\}:lambda:\\$\\{AWS::Region\\}:\\$\\{AWS::AccountId\\}:function:berth-${stage}-[a-z]+"\\}$`),
            };
            assert.ok(allowed[service]?.test(r), `${action} on ${r}`);
          }
          // The registry lists incoming/sha256-<hex>/ (whole-blob uploads awaiting verification), and
          // blobs/ and manifests/ when it collects garbage, nothing else.
          if (action === 's3:ListBucket') assert.deepEqual(s.Condition, { StringLike: { 's3:prefix': ['incoming/*', 'blobs/*', 'manifests/*'] } });
        }
      }
      const secrets = berth.filter((s) => list(s.Action).includes('secretsmanager:GetSecretValue')).flatMap((s) => list(s.Resource));
      assert.deepEqual(secrets, [{ Ref: 'TokenKey' }, { Ref: 'UploadKey' }, cacheSecrets(stage)], 'the token key, the front door key, the cache rules\' credentials');
    }
    const directSecrets = direct.template.Resources.IamRoleLambdaExecution.Properties!.Policies.flatMap((p: Json) => p.PolicyDocument.Statement)
      .filter((s: Json) => list(s.Action).includes('secretsmanager:GetSecretValue'))
      .flatMap((s: Json) => list(s.Resource));
    assert.deepEqual(directSecrets, [{ Ref: 'TokenKey' }, cacheSecrets(direct.state.service.provider.stage)], 'no front door key without the front door');
  });

  test('verify marks used upload URLs in the KeyValueStore and gc drops the expired marks; without the front door neither knows one', () => {
    const arn = { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] };
    for (const fn of ['VerifyLambdaFunction', 'GcLambdaFunction']) {
      assert.deepEqual(plain.template.Resources[fn].Properties!.Environment.Variables.BERTH_KEY_VALUE_STORE, arn, fn);
      assert.equal(direct.template.Resources[fn].Properties!.Environment.Variables.BERTH_KEY_VALUE_STORE, undefined, fn);
    }
    assert.equal(plain.template.Resources.ApiLambdaFunction.Properties!.Environment.Variables.BERTH_KEY_VALUE_STORE, undefined, 'the api marks nothing');
    assert.equal(ofType(direct.template, 'AWS::IAM::Policy').length, 0);
    // refuseReplays=false: the front door without marks (no KeyValueStore API calls per upload).
    for (const fn of ['VerifyLambdaFunction', 'GcLambdaFunction']) assert.equal(replays.template.Resources[fn].Properties!.Environment.Variables.BERTH_KEY_VALUE_STORE, undefined, fn);
    assert.equal(ofType(replays.template, 'AWS::IAM::Policy').length, 0);
    assert.ok(replays.template.Resources.Distribution, 'still a front door');
  });

  test('refuseReplays=true without the front door is refused with a reason', async () => {
    await refused(['--param=frontDoor=false', '--param=refuseReplays=true'], /refuseReplays=true" is a setting of the front door/);
  });

  test('gc: its own least-privilege role, an EventBridge schedule (daily by default) and the grace period as parameters', () => {
    for (const [packaged, schedule, grace] of [[plain, 'rate(1 day)', '24h'], [otherStage, 'cron(0 3 * * ? *)', '48h']] as const) {
      const { template } = packaged;
      const { stage } = packaged.state.service.provider;
      const gc = template.Resources.GcLambdaFunction.Properties!;
      assert.deepEqual(gc.Role, { 'Fn::GetAtt': ['GcRole', 'Arn'] }, 'its own role');
      assert.equal(gc.Timeout, 900);
      assert.equal(gc.Environment.Variables.BERTH_GC_GRACE, grace);
      const [[, rule]] = ofType(template, 'AWS::Events::Rule').filter(([, r]) => r.Properties!.ScheduleExpression !== undefined);
      assert.equal(rule.Properties!.ScheduleExpression, schedule);
      assert.deepEqual(rule.Properties!.Targets.map((t: Json) => t.Arn), [{ 'Fn::GetAtt': ['GcLambdaFunction', 'Arn'] }]);
      const role = template.Resources.GcRole.Properties!;
      assert.equal(role.ManagedPolicyArns, undefined);
      // Its inline policies, and the front door's policy for dropping expired marks of used upload URLs.
      const attached = ofType(template, 'AWS::IAM::Policy')
        .filter(([, policy]) => JSON.stringify(policy.Properties!.Roles) === JSON.stringify([{ Ref: 'GcRole' }]))
        .map(([, policy]) => policy.Properties!);
      const statements: Json[] = [...role.Policies, ...attached].flatMap((p: Json) => p.PolicyDocument.Statement);
      const grants = statements.flatMap((st) => list(st.Action).flatMap((action: string) => list(st.Resource).map((r: unknown) => `${action} ${JSON.stringify(r)}`)));
      const sub = (text: string) => JSON.stringify({ 'Fn::Sub': text });
      assert.deepEqual(grants.sort(), [
        ...['logs:CreateLogStream', 'logs:PutLogEvents'].map((a) => `${a} ${sub(`arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/berth-${stage}-gc:*`)}`),
        ...['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:DeleteItem'].map((a) => `${a} ${JSON.stringify({ 'Fn::GetAtt': ['Table', 'Arn'] })}`),
        ...['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'].map((a) => `${a} ${sub('${Bucket.Arn}/*')}`),
        `s3:PutObject ${sub('${Bucket.Arn}/gc/state.json')}`,
        `s3:ListBucket ${JSON.stringify({ 'Fn::GetAtt': ['Bucket', 'Arn'] })}`,
        ...['DescribeKeyValueStore', 'ListKeys', 'UpdateKeys'].map((a) => `cloudfront-keyvaluestore:${a} ${JSON.stringify({ 'Fn::GetAtt': ['KeyValueStore', 'Arn'] })}`),
        `lambda:InvokeFunction ${sub(`arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:berth-${stage}-gc`)}`,
        `sqs:SendMessage ${JSON.stringify({ 'Fn::GetAtt': ['FailureQueue', 'Arn'] })}`,
      ].sort(), 'reads and deletes, its state object, listings, itself, its failure destination');
      assert.deepEqual(statements.find((st) => list(st.Action).includes('s3:ListBucket'))!.Condition, { StringLike: { 's3:prefix': ['incoming/*', 'blobs/*', 'manifests/*'] } });
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
    assert.deepEqual(o.RegistryUrl.Value, { 'Fn::Sub': 'https://${Distribution.DomainName}' }, 'the front door');
    assert.deepEqual(o.BucketName.Value, { Ref: 'Bucket' });
    assert.deepEqual(o.TableName.Value, { Ref: 'Table' });
    assert.deepEqual(o.DistributionId.Value, { Ref: 'Distribution' });
    assert.ok(o.HttpApiUrl, 'the framework also outputs the HTTP API URL');
    assert.equal(o.DomainTarget, undefined);
    const d = withDomain.template.Outputs;
    assert.equal(d.RegistryUrl.Value, 'https://registry.example.com');
    assert.deepEqual(d.DomainTarget.Value, { 'Fn::GetAtt': ['Distribution', 'DomainName'] });
    // Without the front door: the API's own endpoint, or its custom domain.
    assert.deepEqual(direct.template.Outputs.RegistryUrl.Value, { 'Fn::Sub': 'https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}' });
    assert.equal(direct.template.Outputs.DistributionId, undefined);
    assert.equal(directDomain.template.Outputs.RegistryUrl.Value, 'https://registry.example.com');
    assert.deepEqual(directDomain.template.Outputs.DomainTarget.Value, { 'Fn::GetAtt': ['DomainName', 'RegionalDomainName'] });
  });

  test('with the front door the domain is an alias of the distribution, with A and AAAA alias records', () => {
    const t = withDomain.template;
    for (const type of ['AWS::ApiGatewayV2::DomainName', 'AWS::ApiGatewayV2::ApiMapping']) assert.equal(ofType(t, type).length, 0, `no ${type}: API Gateway stays the origin on its default endpoint`);
    const config = one(t, 'AWS::CloudFront::Distribution').Properties!.DistributionConfig;
    assert.deepEqual(config.Aliases, ['registry.example.com']);
    assert.deepEqual(config.ViewerCertificate, {
      AcmCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
      SslSupportMethod: 'sni-only',
      MinimumProtocolVersion: 'TLSv1.2_2021',
    });
    const records = ofType(t, 'AWS::Route53::RecordSet').map(([, r]) => r.Properties!);
    assert.deepEqual(records.map((r) => r.Type).sort(), ['A', 'AAAA'], 'IPv6 is on: both');
    for (const r of records) {
      assert.equal(r.HostedZoneId, 'Z123');
      assert.equal(r.Name, 'registry.example.com');
      assert.deepEqual(r.AliasTarget, { DNSName: { 'Fn::GetAtt': ['Distribution', 'DomainName'] }, HostedZoneId: CLOUDFRONT_ZONE });
    }
    for (const p of [plain, otherStage]) {
      const c = one(p.template, 'AWS::CloudFront::Distribution').Properties!.DistributionConfig;
      assert.equal(c.Aliases, undefined);
      assert.deepEqual(c.ViewerCertificate, { CloudFrontDefaultCertificate: true });
      assert.equal(ofType(p.template, 'AWS::Route53::RecordSet').length, 0);
    }
  });

  test('without the front door: custom domain resources exist only with the domain parameters, and their conditions hold', () => {
    const domainTypes = ['AWS::ApiGatewayV2::DomainName', 'AWS::ApiGatewayV2::ApiMapping', 'AWS::Route53::RecordSet'];
    for (const t of [plain.template, otherStage.template, direct.template]) {
      for (const type of domainTypes) assert.equal(ofType(t, type).length, 0, `no ${type} without a domain`);
      for (const [name, r] of Object.entries(t.Resources)) if (r.Condition) assert.ok(holds(t, r.Condition), `${name}: condition ${r.Condition}`);
    }
    const t = directDomain.template;
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

  test('cfn-lint accepts every template', { timeout: 300_000 }, async () => {
    const templates = [plain, withDomain, otherStage, direct, directDomain].map((p) => join(p.dir, 'cloudformation-template-update-stack.json'));
    templates.push(join(plain.dir, 'cloudformation-template-create-stack.json'));
    const result = await run('bash', [join(ROOT, 'test/deploy/cfn-lint.sh'), ...templates], { cwd: ROOT, maxBuffer: 16 << 20 }).catch(
      (error: Error & { stdout?: string; stderr?: string; code?: number }) => error,
    );
    assert.ok(!(result instanceof Error), `cfn-lint failed:\n${result instanceof Error ? `${result.stdout}${result.stderr}` : ''}`);
  });
});

describe('operations: throttling, concurrency, failures, alarms, access logs, versioning', () => {
  const all = () => [plain, withDomain, otherStage, direct, directDomain];
  /** The registry's own functions (the front door's custom resource is not one). */
  const registryFunctions = (t: Template) => ofType(t, 'AWS::Lambda::Function').filter(([, f]) => String(f.Properties!.Handler).startsWith('dist/')).map(([name]) => name);
  const FAILURE_QUEUE_ARN = { 'Fn::GetAtt': ['FailureQueue', 'Arn'] };

  test('the HTTP API stage is throttled: rate and burst are parameters (100 and 200 by default)', () => {
    for (const p of all()) {
      const settings = one(p.template, 'AWS::ApiGatewayV2::Stage').Properties!.DefaultRouteSettings;
      const expected = p === otherStage ? [20, 40] : [100, 200];
      assert.deepEqual([settings.ThrottlingRateLimit, settings.ThrottlingBurstLimit], expected);
      assert.equal(settings.DetailedMetricsEnabled, false, 'per-route metrics cost extra; the alarms use the API-wide ones');
    }
  });

  test('the api function reserves concurrency only when asked; the others never', () => {
    for (const p of all()) {
      for (const name of registryFunctions(p.template)) {
        const reserved = p.template.Resources[name].Properties!.ReservedConcurrentExecutions;
        assert.equal(reserved, p === otherStage && name === 'ApiLambdaFunction' ? 50 : undefined, `${name}`);
      }
    }
  });

  test('verify and gc send failed asynchronous invocations to the failure queue (SQS, 14 days, encrypted); api has no destination', () => {
    for (const p of all()) {
      const t = p.template;
      const configs = ofType(t, 'AWS::Lambda::EventInvokeConfig').map(([, r]) => r.Properties!);
      assert.deepEqual(configs.map((c) => c.FunctionName.Ref).sort(), ['GcLambdaFunction', 'VerifyLambdaFunction']);
      for (const c of configs) {
        assert.deepEqual(c.DestinationConfig, { OnFailure: { Destination: FAILURE_QUEUE_ARN } });
        assert.equal(c.Qualifier, '$LATEST');
      }
      const queue = one(t, 'AWS::SQS::Queue').Properties!;
      assert.equal(queue.MessageRetentionPeriod, 14 * 24 * 3600, 'SQS\'s longest retention');
      assert.equal(queue.SqsManagedSseEnabled, true);
      assert.equal(queue.QueueName, `berth-${p.state.service.provider.stage}-failures`);
      assert.deepEqual(t.Outputs.FailureQueueUrl.Value, { Ref: 'FailureQueue' });
    }
  });

  test('every EventBridge target (gc\'s schedule, front-door uploads) has the failure queue as its dead-letter queue, which only those rules may use', () => {
    for (const p of all()) {
      const t = p.template;
      const rules = ofType(t, 'AWS::Events::Rule');
      assert.deepEqual(rules.map(([name]) => name).sort(), p === direct || p === directDomain ? ['GcSchedule'] : ['GcSchedule', 'IncomingUploadRule']);
      for (const [name, rule] of rules) {
        for (const target of rule.Properties!.Targets) assert.deepEqual(target.DeadLetterConfig, { Arn: FAILURE_QUEUE_ARN }, name);
      }
      const policy = one(t, 'AWS::SQS::QueuePolicy').Properties!;
      assert.deepEqual(policy.Queues, [{ Ref: 'FailureQueue' }]);
      assert.deepEqual(policy.PolicyDocument.Statement, [
        {
          Sid: 'EventBridgeDeadLetters',
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: FAILURE_QUEUE_ARN,
          Condition: { ArnEquals: { 'aws:SourceArn': rules.map(([name]) => ({ 'Fn::GetAtt': [name, 'Arn'] })) } },
        },
      ]);
      const schedule = t.Resources.GcSchedule.Properties!;
      assert.deepEqual(schedule.Targets.map((x: Json) => [x.Arn, x.Input]), [[{ 'Fn::GetAtt': ['GcLambdaFunction', 'Arn'] }, '{}']]);
      const permission = ofType(t, 'AWS::Lambda::Permission').find(([, r]) => JSON.stringify(r.Properties!.SourceArn) === JSON.stringify({ 'Fn::GetAtt': ['GcSchedule', 'Arn'] }));
      assert.ok(permission, 'EventBridge may invoke gc');
      assert.deepEqual(permission[1].Properties!.FunctionName, { 'Fn::GetAtt': ['GcLambdaFunction', 'Arn'] });
      assert.equal(permission[1].Properties!.Principal, 'events.amazonaws.com');
    }
  });

  test('alarms on API 5xx, each function\'s errors and throttles, and the failure queue, to an SNS topic; e-mail only when given', () => {
    for (const p of all()) {
      const t = p.template;
      const { stage } = p.state.service.provider;
      const alarms = ofType(t, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties!);
      const watched = alarms.map((a) => `${a.Namespace} ${a.MetricName} ${JSON.stringify(a.Dimensions)}`).sort();
      const expected = [
        `AWS/ApiGateway 5xx ${JSON.stringify([{ Name: 'ApiId', Value: { Ref: 'HttpApi' } }])}`,
        `AWS/SQS ApproximateNumberOfMessagesVisible ${JSON.stringify([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['FailureQueue', 'QueueName'] } }])}`,
        ...registryFunctions(t).flatMap((name) =>
          ['Errors', 'Throttles'].map((metric) => `AWS/Lambda ${metric} ${JSON.stringify([{ Name: 'FunctionName', Value: { Ref: name } }])}`),
        ),
      ].sort();
      assert.deepEqual(watched, expected);
      assert.equal(registryFunctions(t).length, 3, 'api, verify and gc');
      for (const a of alarms) {
        assert.match(a.AlarmName, new RegExp(`^berth-${stage}-`), 'named per stage');
        assert.equal(a.Threshold, 1);
        assert.equal(a.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
        assert.equal(a.Period, 300);
        assert.equal(a.TreatMissingData, 'notBreaching', 'an idle registry is OK');
        assert.deepEqual(a.AlarmActions, [{ Ref: 'AlarmTopic' }]);
        assert.deepEqual(a.OKActions, [{ Ref: 'AlarmTopic' }]);
      }
      assert.equal(one(t, 'AWS::SNS::Topic').Properties!.TopicName, `berth-${stage}-alarms`);
      assert.deepEqual(t.Outputs.AlarmTopicArn.Value, { Ref: 'AlarmTopic' });
      const subscriptions = ofType(t, 'AWS::SNS::Subscription').map(([, r]) => r.Properties);
      assert.deepEqual(subscriptions, p === otherStage ? [{ TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: 'ops@example.com' }] : []);
    }
  });

  test('HTTP API access logs: one JSON line per request without headers, in a log group kept 30 days', () => {
    for (const p of all()) {
      const t = p.template;
      const settings = one(t, 'AWS::ApiGatewayV2::Stage').Properties!.AccessLogSettings;
      assert.deepEqual(settings.DestinationArn, { 'Fn::GetAtt': ['HttpApiLogGroup', 'Arn'] });
      const group = t.Resources.HttpApiLogGroup.Properties!;
      assert.equal(group.RetentionInDays, 30);
      assert.equal(group.LogGroupName, `/aws/http-api/berth-${p.state.service.provider.stage}`);
      const fields = JSON.parse(settings.Format) as Record<string, string>;
      for (const name of ['requestId', 'time', 'ip', 'method', 'path', 'status', 'bytes', 'integrationError']) assert.ok(fields[name], name);
      for (const value of Object.values(fields)) {
        assert.match(value, /^\$context\.[A-Za-z.]+$/, 'each field one $context variable');
        assert.doesNotMatch(value, /header|authorizer/i, 'no credentials');
      }
    }
  });

  test('S3 versioning is a parameter (off: Suspended); old versions expire after s3NoncurrentDays, so gc still frees the bytes', () => {
    for (const p of all()) {
      const b = p.template.Resources.Bucket.Properties!;
      assert.deepEqual(b.VersioningConfiguration, { Status: p === otherStage ? 'Enabled' : 'Suspended' });
      const rule = b.LifecycleConfiguration.Rules.find((r: Json) => r.NoncurrentVersionExpiration);
      assert.deepEqual(rule, {
        Id: 'expire-noncurrent-versions',
        Status: 'Enabled',
        NoncurrentVersionExpiration: { NoncurrentDays: p === otherStage ? 7 : 30 },
        ExpiredObjectDeleteMarker: true,
      });
    }
  });

  test('operational parameters out of range are refused with an explanation', async () => {
    await refused(['--param=apiThrottleRate=0'], /apiThrottleRate=0" must be a whole number from 1 to 10000/);
    await refused(['--param=apiThrottleBurst=lots'], /apiThrottleBurst=lots" must be a whole number from 1 to 5000/);
    await refused(['--param=apiReservedConcurrency=-1'], /apiReservedConcurrency=-1" must be a whole number/);
    await refused(['--param=alarmEmail=ops'], /alarmEmail=ops" is not an e-mail address/);
    await refused(['--param=s3Versioning=sometimes'], /s3Versioning=sometimes" must be true or false/);
  });
});

describe('the front door (CloudFront)', () => {
  const distribution = (t: Template) => one(t, 'AWS::CloudFront::Distribution').Properties!.DistributionConfig;
  const FRONT_DOOR_TYPES = [
    'AWS::CloudFront::Distribution',
    'AWS::CloudFront::Function',
    'AWS::CloudFront::KeyValueStore',
    'AWS::CloudFront::OriginAccessControl',
    'AWS::CloudFront::CachePolicy',
    'AWS::Events::Rule',
    'Custom::UploadKey',
  ];

  /** Resources of the front door: the gc schedule's EventBridge rule is not one. */
  const frontDoorOf = (t: Template, type: string) => ofType(t, type).filter(([name]) => !name.startsWith('Gc'));

  test('exists by default and not at all with frontDoor=false', () => {
    for (const p of [plain, withDomain, otherStage]) for (const type of FRONT_DOOR_TYPES) assert.ok(frontDoorOf(p.template, type).length >= 1, `${type}`);
    for (const p of [direct, directDomain]) {
      for (const type of FRONT_DOOR_TYPES) assert.equal(frontDoorOf(p.template, type).length, 0, `no ${type} without the front door`);
      assert.equal(p.template.Resources.UploadKey, undefined);
      assert.equal(p.template.Resources.BucketPolicy, undefined, 'no bucket policy (the framework\'s deployment bucket has its own)');
      assert.equal(p.template.Resources.Bucket.Properties!.NotificationConfiguration, undefined, 'no bucket events');
      assert.deepEqual(ofType(p.template, 'AWS::Lambda::Function').map(([name]) => name).sort(), ['ApiLambdaFunction', 'GcLambdaFunction', 'VerifyLambdaFunction']);
    }
  });

  test('distribution: HTTP/2 and 3, IPv6, price class, HTTPS only, two origins with the ids the function selects', () => {
    const c = distribution(plain.template);
    assert.equal(c.Enabled, true);
    assert.equal(c.HttpVersion, 'http2and3');
    assert.equal(c.IPV6Enabled, true);
    assert.equal(c.PriceClass, 'PriceClass_100', 'default: North America and Europe');
    assert.equal(distribution(otherStage.template).PriceClass, 'PriceClass_All', '--param="priceClass=…"');
    assert.deepEqual(c.Origins.map((o: Json) => o.Id), ['api', 'blobs']);
    const [api, blobs] = c.Origins;
    // API Gateway on its default endpoint: HTTPS, and a read timeout above its own 30 s so that
    // its 503/504 reach the client, within what every account accepts without a quota increase.
    assert.deepEqual(api.DomainName, { 'Fn::Sub': '${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}' });
    assert.equal(api.CustomOriginConfig.OriginProtocolPolicy, 'https-only');
    assert.deepEqual(api.CustomOriginConfig.OriginSSLProtocols, ['TLSv1.2']);
    assert.ok(api.CustomOriginConfig.OriginReadTimeout > AWS_LIMITS.integrationTimeoutMs / 1000 && api.CustomOriginConfig.OriginReadTimeout <= 60);
    // The API believes the forwarded viewer address only with this proof, from the custom resource.
    assert.deepEqual(api.OriginCustomHeaders, [{ HeaderName: 'x-berth-origin', HeaderValue: { 'Fn::GetAtt': ['UploadKeyInStore', 'OriginProof'] } }]);
    assert.equal(api.OriginAccessControlId, undefined);
    // The bucket through Origin Access Control (an S3 origin with an empty OAI).
    assert.deepEqual(blobs.DomainName, { 'Fn::GetAtt': ['Bucket', 'RegionalDomainName'] });
    assert.deepEqual(blobs.OriginAccessControlId, { 'Fn::GetAtt': ['BlobsOriginAccessControl', 'Id'] });
    assert.deepEqual(blobs.S3OriginConfig, { OriginAccessIdentity: '' });
    const oac = one(plain.template, 'AWS::CloudFront::OriginAccessControl').Properties!.OriginAccessControlConfig;
    assert.deepEqual([oac.OriginAccessControlOriginType, oac.SigningBehavior, oac.SigningProtocol], ['s3', 'always', 'sigv4']);
  });

  test('default behaviour: the API, every method, no caching, every viewer header but Host; errors never cached', () => {
    const c = distribution(plain.template);
    const b = c.DefaultCacheBehavior;
    assert.equal(b.TargetOriginId, 'api');
    assert.equal(b.ViewerProtocolPolicy, 'https-only');
    assert.deepEqual([...b.AllowedMethods].sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);
    assert.equal(b.CachePolicyId, CACHING_DISABLED);
    assert.equal(b.OriginRequestPolicyId, ALL_VIEWER_EXCEPT_HOST_HEADER);
    assert.equal(b.ForwardedValues, undefined, 'policies, not legacy settings');
    // CloudFront caches these for GET and HEAD (10 s by default) even when caching is disabled,
    // keyed without Authorization.
    const errors = new Map(c.CustomErrorResponses.map((e: Json) => [e.ErrorCode, e]));
    for (const code of [400, 403, 404, 405, 414, 500, 501, 502, 503, 504]) {
      assert.deepEqual(errors.get(code), { ErrorCode: code, ErrorCachingMinTTL: 0 }, `${code} is not cached, and not replaced`);
    }
  });

  test('/_berth/blobs/*: the bucket, GET and HEAD, cached for long (blobs are immutable)', () => {
    const c = distribution(plain.template);
    assert.equal(c.CacheBehaviors.length, 1);
    const b = c.CacheBehaviors[0];
    assert.equal(b.PathPattern, '/_berth/blobs/*');
    assert.equal(b.TargetOriginId, 'blobs');
    assert.equal(b.ViewerProtocolPolicy, 'https-only');
    assert.deepEqual(b.AllowedMethods, ['GET', 'HEAD']);
    assert.deepEqual(b.CachePolicyId, { Ref: 'BlobCachePolicy' });
    assert.equal(b.OriginRequestPolicyId, undefined, 'nothing of the viewer request is forwarded to S3');
    const policy = plain.template.Resources.BlobCachePolicy.Properties!.CachePolicyConfig;
    assert.ok(policy.DefaultTTL >= 86_400 * 30 && policy.MaxTTL >= policy.DefaultTTL, `TTL ${policy.DefaultTTL}`);
    const key = policy.ParametersInCacheKeyAndForwardedToOrigin;
    assert.deepEqual([key.HeadersConfig.HeaderBehavior, key.CookiesConfig.CookieBehavior, key.QueryStringsConfig.QueryStringBehavior], ['none', 'none', 'none']);
  });

  test('the function: cloudfront-js-2.0, published, the code of function.js within 10 KB, on viewer request and response of both behaviours', async () => {
    const f = one(plain.template, 'AWS::CloudFront::Function').Properties!;
    assert.equal(f.AutoPublish, true);
    assert.equal(f.FunctionConfig.Runtime, 'cloudfront-js-2.0');
    const code = await readFile(join(ROOT, 'infra/aws/frontdoor/function.js'), 'utf8');
    assert.equal(joined(f.FunctionCode), code, 'infra/aws/frontdoor/function.js, unchanged');
    assert.ok(Buffer.byteLength(joined(f.FunctionCode)) <= frontdoor.MAX_FUNCTION_BYTES);
    const c = distribution(plain.template);
    for (const b of [c.DefaultCacheBehavior, ...c.CacheBehaviors]) {
      assert.deepEqual(
        [...b.FunctionAssociations].sort((x: Json, y: Json) => x.EventType.localeCompare(y.EventType)),
        [
          { EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': ['FrontDoorFunction', 'FunctionARN'] } },
          { EventType: 'viewer-response', FunctionARN: { 'Fn::GetAtt': ['FrontDoorFunction', 'FunctionARN'] } },
        ],
        b.PathPattern ?? 'default behaviour',
      );
      assert.equal(b.LambdaFunctionAssociations, undefined);
    }
  });

  test('the KeyValueStore: associated with the function, filled by the custom resource from the generated key', () => {
    const t = plain.template;
    const f = one(t, 'AWS::CloudFront::Function').Properties!;
    assert.deepEqual(f.FunctionConfig.KeyValueStoreAssociations, [{ KeyValueStoreARN: { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] } }]);
    // The key: a secret created empty, filled once by the custom resource (never in the template).
    assert.equal(t.Resources.UploadKey.Type, 'AWS::SecretsManager::Secret');
    assert.equal(t.Resources.UploadKey.Properties!.SecretString, undefined);
    assert.equal(t.Resources.UploadKey.Properties!.GenerateSecretString, undefined, 'a key, not a password: generated by the custom resource');
    const custom = one(t, 'Custom::UploadKey').Properties!;
    assert.deepEqual(custom.ServiceToken, { 'Fn::GetAtt': ['FrontDoorSetupFunction', 'Arn'] });
    assert.deepEqual(custom.SecretId, { Ref: 'UploadKey' });
    assert.deepEqual(custom.KeyValueStoreArn, { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] });
    assert.equal(custom.KeyVersion, '1');
    assert.equal(custom.S3Checksum, 'off', 'default: S3 does not check uploads itself');
    const setup = t.Resources.FrontDoorSetupFunction.Properties!;
    assert.equal(setup.Runtime, 'nodejs22.x');
    assert.equal(setup.Handler, 'index.handler');
    assert.deepEqual(setup.Role, { 'Fn::GetAtt': ['FrontDoorSetupRole', 'Arn'] });
    assert.match(setup.FunctionName, /^berth-dev-/);
  });

  test('the custom resource\'s role: its log group, the key\'s secret and the store, nothing else', () => {
    const role = plain.template.Resources.FrontDoorSetupRole.Properties!;
    assert.deepEqual(role.AssumeRolePolicyDocument.Statement, [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }]);
    assert.equal(role.ManagedPolicyArns, undefined);
    const statements = role.Policies.flatMap((p: Json) => p.PolicyDocument.Statement);
    assert.deepEqual(statements, [
      { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': ['FrontDoorSetupLogGroup', 'Arn'] } },
      { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], Resource: { Ref: 'UploadKey' } },
      {
        Effect: 'Allow',
        Action: ['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:PutKey'],
        Resource: { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] },
      },
    ]);
    const log = plain.template.Resources.FrontDoorSetupLogGroup.Properties!;
    assert.equal(log.LogGroupName, `/aws/lambda/${plain.template.Resources.FrontDoorSetupFunction.Properties!.FunctionName}`);
    assert.equal(log.RetentionInDays, 30);
  });

  test('bucket policy: the distribution alone may PUT under incoming/ and GET under blobs/', () => {
    const policy = plain.template.Resources.BucketPolicy;
    assert.equal(policy.Type, 'AWS::S3::BucketPolicy');
    assert.deepEqual(policy.Properties!.Bucket, { Ref: 'Bucket' });
    const statements: Json[] = policy.Properties!.PolicyDocument.Statement;
    const grants = statements.map((s) => [s.Effect, JSON.stringify(s.Principal), list(s.Action).join(), JSON.stringify(s.Resource), JSON.stringify(s.Condition)]);
    const condition = JSON.stringify({ StringEquals: { 'AWS:SourceArn': DISTRIBUTION_ARN } });
    const principal = JSON.stringify({ Service: 'cloudfront.amazonaws.com' });
    assert.deepEqual(grants, [
      ['Allow', principal, 's3:PutObject', JSON.stringify({ 'Fn::Sub': '${Bucket.Arn}/incoming/*' }), condition],
      ['Allow', principal, 's3:GetObject', JSON.stringify({ 'Fn::Sub': '${Bucket.Arn}/blobs/*' }), condition],
    ]);
    // The bucket stays closed to everyone else.
    assert.equal(plain.template.Resources.Bucket.Properties!.PublicAccessBlockConfiguration.RestrictPublicBuckets, true);
  });

  test('uploads under incoming/ invoke verify with an S3-notification-shaped event (through EventBridge: no cycle)', () => {
    const t = plain.template;
    assert.deepEqual(t.Resources.Bucket.Properties!.NotificationConfiguration, { EventBridgeConfiguration: { EventBridgeEnabled: true } });
    const rules = frontDoorOf(t, 'AWS::Events::Rule');
    assert.equal(rules.length, 1, 'one rule besides the gc schedule');
    const rule = rules[0][1].Properties!;
    assert.equal(rule.State, 'ENABLED');
    assert.deepEqual(rule.EventPattern, {
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: { bucket: { name: [{ Ref: 'Bucket' }] }, object: { key: [{ prefix: 'incoming/' }] } },
    });
    assert.equal(rule.Targets.length, 1);
    const target = rule.Targets[0];
    assert.deepEqual(target.Arn, { 'Fn::GetAtt': ['VerifyLambdaFunction', 'Arn'] });
    // What EventBridge makes of an S3 "Object Created" event: each <name> becomes the JSON value at its path.
    const s3Event = { detail: { bucket: { name: 'berth-dev-bucket-x' }, object: { key: 'incoming/sha256-ab/0f6c', size: 5368709120, etag: 'e-1' } } };
    const at = (path: string) => path.slice(2).split('.').reduce((o: any, k) => o[k], s3Event);
    const input = target.InputTransformer.InputTemplate.replace(/<(\w+)>/g, (_: string, name: string) => JSON.stringify(at(target.InputTransformer.InputPathsMap[name])));
    assert.deepEqual(JSON.parse(input), {
      Records: [
        {
          eventSource: 'aws:s3',
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: 'berth-dev-bucket-x' }, object: { key: 'incoming/sha256-ab/0f6c', size: 5368709120, eTag: 'e-1' } },
        },
      ],
    });
    const permission = frontDoorOf(t, 'AWS::Lambda::Permission').find(([, r]) => r.Properties!.Principal === 'events.amazonaws.com')![1].Properties!;
    assert.deepEqual(permission.FunctionName, { 'Fn::GetAtt': ['VerifyLambdaFunction', 'Arn'] });
    assert.deepEqual(permission.SourceArn, { 'Fn::GetAtt': ['IncomingUploadRule', 'Arn'] });
    assert.equal(permission.Action, 'lambda:InvokeFunction');
  });

  test('names of account-wide CloudFront resources include stack and region', () => {
    const t = plain.template;
    for (const [name, path] of [
      ['FrontDoorFunction', ['Name']],
      ['KeyValueStore', ['Name']],
      ['BlobsOriginAccessControl', ['OriginAccessControlConfig', 'Name']],
      ['BlobCachePolicy', ['CachePolicyConfig', 'Name']],
    ] as const) {
      const value = path.reduce((o: any, k) => o[k], t.Resources[name].Properties);
      assert.match(JSON.stringify(value), /^\{"Fn::Sub":"\$\{AWS::StackName\}-\$\{AWS::Region\}-[a-z]+"\}$/, name);
    }
  });
});

/** A string the template holds, either as it is or as an Fn::Join of pieces (infra/aws/frontdoor.cjs literal()). */
function joined(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join': [string, string[]] })['Fn::Join'];
  assert.ok(join && join[1].every((piece) => typeof piece === 'string'), `a string or an Fn::Join of strings: ${JSON.stringify(value).slice(0, 200)}`);
  return join[1].join(join[0]);
}

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
 * The IAM actions the deployed code needs, from the AWS SDK commands it sends (functions/**) and
 * the calls it signs itself (functions/storage/aws-calls.ts).
 * A command missing here fails the test: add its IAM action(s) and grant them in serverless.yml.
 */
async function actionsUsedByCode(): Promise<Set<string>> {
  const IAM: Record<string, string[]> = {
    GetObjectCommand: ['s3:GetObject'],
    CopyObjectCommand: ['s3:GetObject', 's3:PutObject'],
    ListObjectsV2Command: ['s3:ListBucket'],
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
    DescribeKeyValueStoreCommand: ['cloudfront-keyvaluestore:DescribeKeyValueStore'],
    PutKeyCommand: ['cloudfront-keyvaluestore:PutKey'],
    ListKeysCommand: ['cloudfront-keyvaluestore:ListKeys'],
    UpdateKeysCommand: ['cloudfront-keyvaluestore:UpdateKeys'],
  };
  const SIGNED: Record<string, string[]> = { invokeAsync: ['lambda:InvokeFunction'], getSecretString: ['secretsmanager:GetSecretValue'] };
  const files = await sources(join(ROOT, 'functions'));
  const actions = new Set<string>();
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    for (const [, command] of text.matchAll(/new (\w+Command)\b/g)) {
      assert.ok(IAM[command], `${relative(ROOT, file)} sends ${command}: map it to its IAM action(s) here and grant them in serverless.yml`);
      for (const action of IAM[command]) actions.add(action);
    }
    if (file.endsWith('aws-calls.ts')) continue;
    for (const [call, granted] of Object.entries(SIGNED)) if (new RegExp(`\\b${call}\\(`).test(text)) for (const action of granted) actions.add(action);
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

/** The Secrets Manager ARNs of a stage's cache rule credentials (`npx berth cache add --stage`). */
function cacheSecrets(stage: string): Json {
  return { 'Fn::Sub': `arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:berth-${stage}/cache/*` };
}

/** `text` as a literal inside a RegExp. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
