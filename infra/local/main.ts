/**
 * `npm start`: the registry at http://localhost:5000 on embedded DynamoDB and S3, like
 * `docker run -p 5000:5000 registry:2`. With `BERTH_S3_ENDPOINT` and `BERTH_DYNAMODB_ENDPOINT`
 * set it serves those back ends instead (MinIO and DynamoDB Local, or AWS).
 *
 * With `BERTH_EMULATE_LAMBDA=1` it serves the deployment as AWS would: an emulated CloudFront
 * distribution (infra/local/cloudfront-emulator.ts) runs the front door's CloudFront Function
 * (infra/aws/frontdoor/function.js) and sends whole-blob upload PUTs and blob GETs to S3, and
 * everything else to the bundled Lambda handler (dist/api/index.mjs, built when missing or stale)
 * behind an emulated API Gateway HTTP API with AWS's limits (infra/local/lambda-emulator.ts).
 * Objects created under `incoming/` start the bundled `verify` function, as S3's event
 * notification does. `BERTH_FRONT_DOOR=0` leaves CloudFront out (a deployment without the front door).
 *
 * Environment: `PORT` (5000), `HOST` (0.0.0.0), `BERTH_DATA_DIR` (./.berth),
 * `BERTH_EMULATE_LAMBDA`, `BERTH_FRONT_DOOR`, and the variables of functions/config.ts.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../functions/config.js';
import { registryFor } from '../../functions/wiring.js';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCloudFrontEmulator } from './cloudfront-emulator.js';
import { EMULATOR_CREDENTIALS, localTokenKey, localUploadKey, startEmulators } from './emulators.js';
import { asyncInvoker, bundleLoader, createLambdaEmulator, ensureBundle, maxChunkBytes, VERIFY_BUNDLE } from './lambda-emulator.js';
import { createRegistryServer } from './server.js';

// The local stack runs on the machine's Node 20 by design; the SDK's notice about Node 22 is for Lambda.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const port = Number(process.env.PORT ?? 5000);
const host = process.env.HOST ?? '0.0.0.0';
const dataDir = resolve(process.env.BERTH_DATA_DIR ?? '.berth');

const external = Boolean(process.env.BERTH_S3_ENDPOINT && process.env.BERTH_DYNAMODB_ENDPOINT);
const emulators = external ? undefined : await startEmulators(dataDir);
if (emulators) Object.assign(process.env, emulators.env);
// Like registry:2, anonymous full access unless BERTH_AUTH=required.
process.env.BERTH_AUTH ??= 'off';
process.env.BERTH_TOKEN_KEY ??= await localTokenKey(dataDir);

const emulateLambda = process.env.BERTH_EMULATE_LAMBDA === '1';
const frontDoor = emulateLambda && process.env.BERTH_FRONT_DOOR !== '0';
let kvsFile = '';
if (emulateLambda) {
  // As deployed: blob GETs answer 307 (Lambda responses stop at 6 MB), to the front door's signed
  // paths or to presigned S3 URLs, and the POST that starts an upload advertises the largest chunk
  // a request through API Gateway can carry.
  process.env.BERTH_BLOB_DELIVERY = frontDoor ? 'frontdoor' : 'redirect';
  process.env.BERTH_MAX_CHUNK ??= String(maxChunkBytes());
  if (frontDoor) {
    const key = await localUploadKey(dataDir);
    process.env.BERTH_UPLOAD_KEY ??= key.base64;
    kvsFile = key.kvsFile;
  }
  ensureBundle();
}

/** The front end the clients talk to: CloudFront before API Gateway, API Gateway alone, or the plain server. */
async function frontEnd(): Promise<Server> {
  if (!emulateLambda) return createRegistryServer(registryFor(loadConfig()));
  const gateway = createLambdaEmulator({ loadHandler: bundleLoader() });
  if (!frontDoor) return gateway;
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  const verify = asyncInvoker(bundleLoader(VERIFY_BUNDLE));
  return createCloudFrontEmulator({
    functionFile: fileURLToPath(new URL('../aws/frontdoor/function.js', import.meta.url)),
    kvsFile,
    origins: {
      api: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`,
      blobs: {
        endpoint: process.env.BERTH_S3_ENDPOINT!,
        bucket: process.env.BERTH_BUCKET ?? 'berth',
        region: process.env.AWS_REGION ?? 'us-east-1',
        credentials: {
          accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? EMULATOR_CREDENTIALS.accessKeyId,
          secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? EMULATOR_CREDENTIALS.secretAccessKey,
        },
      },
    },
    onObjectCreated: (record) => verify({ Records: [record] }),
  });
}

const server = await frontEnd();
server.listen(port, host, () => {
  const where = emulators ? `embedded DynamoDB and S3 under ${dataDir}` : `${process.env.BERTH_S3_ENDPOINT} and ${process.env.BERTH_DYNAMODB_ENDPOINT}`;
  const how = frontDoor
    ? ', emulated CloudFront front door before the bundled Lambda handler behind an emulated API Gateway HTTP API'
    : emulateLambda
      ? ', bundled Lambda handler behind an emulated API Gateway HTTP API'
      : '';
  console.log(`berth: registry listening on http://${host === '0.0.0.0' ? 'localhost' : host}:${port} (${where}${how})`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void emulators?.stop().finally(() => process.exit(0));
    if (!emulators) process.exit(0);
  });
}
