// The front door: a CloudFront distribution before the HTTP API, so that a whole-blob upload PUT
// (up to S3's 5 GiB; API Gateway and Lambda take ~4.4 MiB) goes straight to S3, and blobs are
// served from S3 through the edge. Default on; --param="frontDoor=false" leaves the stack as it
// was before (clients on the API, or on an API Gateway custom domain, domain.cjs).
//
//   viewer ── CloudFront (HTTP/2 and 3, IPv6, the function on viewer request and response)
//               ├─ default behaviour → origin `api`: the HTTP API's default endpoint, no caching,
//               │    every viewer header but Host; the function sends signed whole-blob PUTs to
//               │    origin `blobs` instead (S3 key incoming/sha256-<hex>/<uuid>)
//               └─ /_berth/blobs/* → origin `blobs`: the bucket through Origin Access Control
//                    (signed blob URLs, rewritten to blobs/<uuid>; cached, blobs are immutable)
//   S3 incoming/ ── EventBridge (Object Created) ── verify function (an S3-notification-shaped event)
//
// The function's code is infra/aws/frontdoor/function.js, read here at package time; its HMAC key
// is generated at deploy and copied into the KeyValueStore by a custom resource
// (infra/aws/frontdoor/setup.cjs). See README "Deploy to AWS" for what each piece costs.
//
// Generated here (like domain.cjs) so that a stack without the front door carries none of it.
'use strict';

const { readFileSync } = require('node:fs');
const path = require('node:path');
const { deployment } = require('./params.cjs');
const { DEAD_LETTER_CONFIG } = require('./operations.cjs');

const ROOT = path.join(__dirname, '../..');
const FUNCTION_FILE = path.join(__dirname, 'frontdoor/function.js');
const SETUP_FILE = path.join(__dirname, 'frontdoor/setup.cjs');

/** CloudFront Functions' size quota, 10 KB, which AWS does not raise. */
const MAX_FUNCTION_BYTES = 10 * 1024;
/** AWS managed CloudFront policies. */
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
const ALL_VIEWER_EXCEPT_HOST_HEADER = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';
const ALL_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'POST', 'PATCH', 'DELETE'];
/**
 * Seconds CloudFront waits for the API. API Gateway answers within its 30 s integration timeout,
 * so anything above 30 lets its own 503/504 through; 60 is accepted by every account (AWS's
 * quota page lists 1–120 without a request today, but accounts still on the older 60 s quota
 * refuse more with InvalidOriginReadTimeout).
 */
const ORIGIN_READ_TIMEOUT = 60;
/** The key version the registry signs with (BERTH_UPLOAD_KEY_VERSION, default 1). */
const UPLOAD_KEY_VERSION = 1;
/** Blob URLs name immutable objects: a year at the edge. */
const YEAR = 31_536_000;
/**
 * The error codes CloudFront caches (10 s by default, for GET and HEAD, even with caching disabled,
 * and keyed without Authorization): a 404 before a push, or one user's 403, must not be served to
 * the next request.
 */
const CACHED_ERROR_CODES = [400, 403, 404, 405, 414, 500, 501, 502, 503, 504];

/** The CloudFront Function's code, checked against the size quota. */
function functionCode(file = FUNCTION_FILE) {
  const name = path.relative(ROOT, file);
  let code;
  try {
    code = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`${name}: cannot read the CloudFront Function's code (${error.message})`);
  }
  const size = Buffer.byteLength(code, 'utf8');
  if (size === 0) throw new Error(`${name} is empty`);
  if (size > MAX_FUNCTION_BYTES) {
    throw new Error(
      `${name} is ${size} bytes; a CloudFront Function may have at most ${MAX_FUNCTION_BYTES} bytes (10 KB, a quota AWS does not raise). ` +
        'Shorten or minify it (comments count), or move data into the KeyValueStore',
    );
  }
  return code;
}

/**
 * Text for the template as it is. The framework resolves `${…}` in every string the template
 * holds (JavaScript template literals included), so where the text has `${` it is given as an
 * Fn::Join of pieces none of which does; CloudFormation joins them back.
 */
function literal(text) {
  if (!text.includes('${')) return text;
  const [first, ...rest] = text.split('${');
  return { 'Fn::Join': ['', [first, ...rest.flatMap((piece) => ['$', `{${piece}`])]] };
}

/** A name unique in the account (CloudFront names are global): stack name and region. */
const unique = (suffix) => ({ 'Fn::Sub': `\${AWS::StackName}-\${AWS::Region}-${suffix}` });

function resources(d) {
  const functionAssociations = [
    { EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': ['FrontDoorFunction', 'FunctionARN'] } },
    { EventType: 'viewer-response', FunctionARN: { 'Fn::GetAtt': ['FrontDoorFunction', 'FunctionARN'] } },
  ];
  const distributionArn = { 'Fn::Sub': 'arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}' };
  const fromDistribution = { StringEquals: { 'AWS:SourceArn': distributionArn } };
  const setupName = `${d.service}-${d.stage}-frontdoor-setup`;

  return {
    // The HMAC key of signed upload and blob paths. Created empty: the custom resource below
    // generates the key (32 random bytes, base64; GenerateSecretString makes passwords) on the
    // first deploy and keeps it afterwards.
    UploadKey: {
      Type: 'AWS::SecretsManager::Secret',
      Properties: { Description: 'Berth front door: HMAC key of signed upload and blob paths (base64 of 32 bytes), copied into the CloudFront KeyValueStore' },
    },
    KeyValueStore: {
      Type: 'AWS::CloudFront::KeyValueStore',
      Properties: { Name: unique('frontdoor'), Comment: 'Berth front door: upload-key-<n>, s3-checksum' },
    },
    FrontDoorFunction: {
      Type: 'AWS::CloudFront::Function',
      Properties: {
        Name: unique('frontdoor'),
        AutoPublish: true,
        FunctionCode: literal(functionCode()),
        FunctionConfig: {
          Comment: 'Berth front door: signed whole-blob uploads and blob reads go to S3, the rest to the API',
          Runtime: 'cloudfront-js-2.0',
          KeyValueStoreAssociations: [{ KeyValueStoreARN: { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] } }],
        },
      },
    },
    BlobsOriginAccessControl: {
      Type: 'AWS::CloudFront::OriginAccessControl',
      Properties: {
        OriginAccessControlConfig: {
          Name: unique('blobs'),
          Description: 'Berth front door: CloudFront signs its requests to the bucket',
          OriginAccessControlOriginType: 's3',
          SigningBehavior: 'always',
          SigningProtocol: 'sigv4',
        },
      },
    },
    BlobCachePolicy: {
      Type: 'AWS::CloudFront::CachePolicy',
      Properties: {
        CachePolicyConfig: {
          Name: unique('blobs'),
          Comment: 'Berth blobs: immutable objects, keyed by path alone',
          MinTTL: 1,
          DefaultTTL: YEAR,
          MaxTTL: YEAR,
          ParametersInCacheKeyAndForwardedToOrigin: {
            EnableAcceptEncodingGzip: false,
            EnableAcceptEncodingBrotli: false,
            HeadersConfig: { HeaderBehavior: 'none' },
            CookiesConfig: { CookieBehavior: 'none' },
            QueryStringsConfig: { QueryStringBehavior: 'none' },
          },
        },
      },
    },
    Distribution: {
      Type: 'AWS::CloudFront::Distribution',
      Properties: {
        DistributionConfig: {
          Comment: `Berth registry ${d.service}-${d.stage}`,
          Enabled: true,
          HttpVersion: 'http2and3',
          IPV6Enabled: true,
          PriceClass: d.priceClass,
          ...(d.domain ? { Aliases: [d.domain] } : {}),
          ViewerCertificate: d.domain
            ? { AcmCertificateArn: d.certificateArn, SslSupportMethod: 'sni-only', MinimumProtocolVersion: 'TLSv1.2_2021' }
            : { CloudFrontDefaultCertificate: true },
          Origins: [
            {
              Id: 'api',
              DomainName: { 'Fn::Sub': '${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}' },
              CustomOriginConfig: { OriginProtocolPolicy: 'https-only', HTTPSPort: 443, OriginSSLProtocols: ['TLSv1.2'], OriginReadTimeout: ORIGIN_READ_TIMEOUT },
              // Proof for the API that a request came through here, so that it believes the viewer
              // address the function forwards (the login throttle counts per address).
              OriginCustomHeaders: [{ HeaderName: 'x-berth-origin', HeaderValue: { 'Fn::GetAtt': ['UploadKeyInStore', 'OriginProof'] } }],
            },
            {
              Id: 'blobs',
              DomainName: { 'Fn::GetAtt': ['Bucket', 'RegionalDomainName'] },
              OriginAccessControlId: { 'Fn::GetAtt': ['BlobsOriginAccessControl', 'Id'] },
              S3OriginConfig: { OriginAccessIdentity: '' },
            },
          ],
          DefaultCacheBehavior: {
            TargetOriginId: 'api',
            ViewerProtocolPolicy: 'https-only',
            AllowedMethods: ALL_METHODS,
            CachedMethods: ['GET', 'HEAD'],
            CachePolicyId: CACHING_DISABLED,
            OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST_HEADER,
            Compress: false,
            FunctionAssociations: functionAssociations,
          },
          CacheBehaviors: [
            {
              PathPattern: '/_berth/blobs/*',
              TargetOriginId: 'blobs',
              ViewerProtocolPolicy: 'https-only',
              AllowedMethods: ['GET', 'HEAD'],
              CachedMethods: ['GET', 'HEAD'],
              CachePolicyId: { Ref: 'BlobCachePolicy' },
              Compress: false,
              FunctionAssociations: functionAssociations,
            },
          ],
          CustomErrorResponses: CACHED_ERROR_CODES.map((code) => ({ ErrorCode: code, ErrorCachingMinTTL: 0 })),
        },
      },
    },
    // The distribution (and nothing else) may write uploads under incoming/ and read published
    // blobs under blobs/; scratch data under uploads/ stays private.
    BucketPolicy: {
      Type: 'AWS::S3::BucketPolicy',
      Properties: {
        Bucket: { Ref: 'Bucket' },
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'FrontDoorUploads',
              Effect: 'Allow',
              Principal: { Service: 'cloudfront.amazonaws.com' },
              Action: 's3:PutObject',
              Resource: { 'Fn::Sub': '${Bucket.Arn}/incoming/*' },
              Condition: fromDistribution,
            },
            {
              Sid: 'FrontDoorBlobs',
              Effect: 'Allow',
              Principal: { Service: 'cloudfront.amazonaws.com' },
              Action: 's3:GetObject',
              Resource: { 'Fn::Sub': '${Bucket.Arn}/blobs/*' },
              Condition: fromDistribution,
            },
          ],
        },
      },
    },

    // Upload PUTs landing under incoming/ start verification. The bucket sends its events to
    // EventBridge (storage.yml); this rule hands the verify function an S3-notification-shaped
    // event. (A notification on the bucket itself would need the function's permission first, and
    // the function refers to the bucket: the classic cycle. This way nothing refers back.)
    IncomingUploadRule: {
      Type: 'AWS::Events::Rule',
      Properties: {
        Description: `Berth ${d.stage}: whole-blob uploads under incoming/ → verify`,
        State: 'ENABLED',
        EventPattern: {
          source: ['aws.s3'],
          'detail-type': ['Object Created'],
          detail: { bucket: { name: [{ Ref: 'Bucket' }] }, object: { key: [{ prefix: 'incoming/' }] } },
        },
        Targets: [
          {
            Id: 'verify',
            Arn: { 'Fn::GetAtt': ['VerifyLambdaFunction', 'Arn'] },
            // Events EventBridge cannot deliver (after its 24 h of retries) go to the failure queue.
            DeadLetterConfig: DEAD_LETTER_CONFIG,
            InputTransformer: {
              InputPathsMap: { bucket: '$.detail.bucket.name', key: '$.detail.object.key', size: '$.detail.object.size', etag: '$.detail.object.etag' },
              InputTemplate:
                '{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":<bucket>},"object":{"key":<key>,"size":<size>,"eTag":<etag>}}}]}',
            },
          },
        ],
      },
    },
    IncomingUploadPermission: {
      Type: 'AWS::Lambda::Permission',
      Properties: {
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': ['VerifyLambdaFunction', 'Arn'] },
        Principal: 'events.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': ['IncomingUploadRule', 'Arn'] },
      },
    },

    // The custom resource that puts the upload key (and the s3-checksum switch) into the store.
    FrontDoorSetupLogGroup: {
      Type: 'AWS::Logs::LogGroup',
      Properties: { LogGroupName: `/aws/lambda/${setupName}`, RetentionInDays: 30 },
    },
    FrontDoorSetupRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        Policies: [
          {
            PolicyName: 'frontdoor-setup',
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': ['FrontDoorSetupLogGroup', 'Arn'] } },
                { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], Resource: { Ref: 'UploadKey' } },
                {
                  Effect: 'Allow',
                  Action: ['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:PutKey'],
                  Resource: { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] },
                },
              ],
            },
          },
        ],
      },
    },
    FrontDoorSetupFunction: {
      Type: 'AWS::Lambda::Function',
      DependsOn: ['FrontDoorSetupLogGroup'],
      Properties: {
        FunctionName: setupName,
        Description: 'Berth front door: generates the upload key and writes it into the CloudFront KeyValueStore (custom resource)',
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: 128,
        Timeout: 120,
        Role: { 'Fn::GetAtt': ['FrontDoorSetupRole', 'Arn'] },
        Code: { ZipFile: literal(readFileSync(SETUP_FILE, 'utf8')) },
      },
    },
    ...replayMarks(d),
    UploadKeyInStore: {
      Type: 'Custom::UploadKey',
      Properties: {
        ServiceToken: { 'Fn::GetAtt': ['FrontDoorSetupFunction', 'Arn'] },
        ServiceTimeout: 300,
        SecretId: { Ref: 'UploadKey' },
        KeyValueStoreArn: { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] },
        KeyVersion: String(UPLOAD_KEY_VERSION),
        S3Checksum: d.s3Checksum,
      },
    },
  };
}

/**
 * With refuseReplays (the default), verify marks used upload URLs (spent-<id>) in the store and gc
 * drops the expired marks. Every KeyValueStore write names the store's ETag, which
 * DescribeKeyValueStore gives.
 */
function replayMarks(d) {
  if (!d.refuseReplays) return {};
  const policy = (name, role, actions) => ({
    Type: 'AWS::IAM::Policy',
    Properties: {
      PolicyName: { 'Fn::Sub': `berth-\${AWS::StackName}-${name}` },
      Roles: [{ Ref: role }],
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: actions.map((a) => `cloudfront-keyvaluestore:${a}`), Resource: { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] } }],
      },
    },
  });
  return {
    KeyValueStoreMarks: policy('kvs-marks', 'IamRoleLambdaExecution', ['DescribeKeyValueStore', 'PutKey']),
    KeyValueStorePrune: policy('kvs-prune', 'GcRole', ['DescribeKeyValueStore', 'ListKeys', 'UpdateKeys']),
  };
}

module.exports = {
  /** The front door's resources and outputs (none without it). */
  async resources({ resolveVariable }) {
    // The domain and certificate are checked by domain.cjs.
    const d = await deployment({ resolveVariable }, { check: ['frontDoor'] });
    if (!d.frontDoor) return {};
    return {
      Resources: resources(d),
      Outputs: {
        DistributionId: { Description: 'the CloudFront distribution (the front door)', Value: { Ref: 'Distribution' } },
        UploadKeySecret: { Description: 'the Secrets Manager secret holding the front door key', Value: { Ref: 'UploadKey' } },
      },
    };
  },
  /** BERTH_BLOB_DELIVERY. */
  async blobDelivery({ resolveVariable }) {
    return (await deployment({ resolveVariable }, { check: ['delivery'] })).blobDelivery;
  },
  /** BERTH_UPLOAD_KEY_SECRET (null: unset, no front door). */
  async uploadKeySecret({ resolveVariable }) {
    return (await deployment({ resolveVariable })).frontDoor ? { Ref: 'UploadKey' } : null;
  },
  /** BERTH_KEY_VALUE_STORE of verify and gc (null: unset, without the front door or with refuseReplays=false). */
  async keyValueStore({ resolveVariable }) {
    return (await deployment({ resolveVariable })).refuseReplays ? { 'Fn::GetAtt': ['KeyValueStore', 'Arn'] } : null;
  },
  /** The secrets the functions read. */
  async secrets({ resolveVariable }) {
    return (await deployment({ resolveVariable })).frontDoor ? [{ Ref: 'TokenKey' }, { Ref: 'UploadKey' }] : [{ Ref: 'TokenKey' }];
  },
  /** The bucket's event destinations (null: none). */
  async bucketNotifications({ resolveVariable }) {
    return (await deployment({ resolveVariable })).frontDoor ? { EventBridgeConfiguration: { EventBridgeEnabled: true } } : null;
  },
  functionCode,
  literal,
  MAX_FUNCTION_BYTES,
};
