/**
 * Creates a fresh DynamoDB table and S3 bucket on the back ends named by the environment
 * (BERTH_TEST_S3_ENDPOINT, BERTH_TEST_DYNAMODB_ENDPOINT, BERTH_TEST_S3_ACCESS_KEY,
 * BERTH_TEST_S3_SECRET_KEY, as test/backends/start.sh writes them) and gives the variables that
 * point `npm start` at them.
 *
 * As a command (`node --import tsx test/backends/provision.ts [prefix]`) it prints them, one
 * `NAME=value` a line, for a shell to evaluate.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { createS3Client } from '../../functions/storage/s3.js';
import { createTable } from '../../infra/local/emulators.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** True when the environment names external test back ends. */
export function externalBackends(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.BERTH_TEST_S3_ENDPOINT && env.BERTH_TEST_DYNAMODB_ENDPOINT);
}

/** Creates a table and a bucket named `<prefix>-<random>`; returns the server's environment. */
export async function provision(prefix = 'berth', env: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const { BERTH_TEST_S3_ENDPOINT: s3, BERTH_TEST_DYNAMODB_ENDPOINT: dynamo, BERTH_TEST_S3_ACCESS_KEY: accessKeyId, BERTH_TEST_S3_SECRET_KEY: secretAccessKey } = env;
  if (!s3 || !dynamo || !accessKeyId || !secretAccessKey) {
    throw new Error('provision: BERTH_TEST_S3_ENDPOINT, BERTH_TEST_DYNAMODB_ENDPOINT, BERTH_TEST_S3_ACCESS_KEY and BERTH_TEST_S3_SECRET_KEY must be set');
  }
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  const region = env.AWS_REGION ?? 'us-east-1';
  await createTable(dynamo, name, region);
  const client = createS3Client({ bucket: name, region, endpoint: s3, credentials: { accessKeyId, secretAccessKey } });
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return {
    BERTH_S3_ENDPOINT: s3,
    BERTH_DYNAMODB_ENDPOINT: dynamo,
    BERTH_TABLE: name,
    BERTH_BUCKET: name,
    AWS_REGION: region,
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const vars = await provision(process.argv[2]);
    for (const [key, value] of Object.entries(vars)) console.log(`${key}=${value}`);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
}
