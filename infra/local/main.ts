/**
 * `npm start`: the registry at http://localhost:5000 on embedded DynamoDB and S3, like
 * `docker run -p 5000:5000 registry:2`. With `BERTH_S3_ENDPOINT` and `BERTH_DYNAMODB_ENDPOINT`
 * set it serves those back ends instead (MinIO and DynamoDB Local, or AWS).
 *
 * With `BERTH_EMULATE_LAMBDA=1` it serves the bundled Lambda handler (dist/api/index.mjs, built
 * when missing or stale) behind an emulated API Gateway HTTP API with AWS's limits
 * (infra/local/lambda-emulator.ts): blob GETs redirect to the embedded S3, uploads advertise the
 * largest chunk a deployment accepts.
 *
 * Environment: `PORT` (5000), `HOST` (0.0.0.0), `BERTH_DATA_DIR` (./.berth),
 * `BERTH_EMULATE_LAMBDA`, and the variables of functions/config.ts.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../../functions/config.js';
import { registryFor } from '../../functions/wiring.js';
import { localTokenKey, startEmulators } from './emulators.js';
import { bundleLoader, createLambdaEmulator, ensureBundle, maxChunkBytes } from './lambda-emulator.js';
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
if (emulateLambda) {
  // As deployed: blob GETs answer 307 to presigned S3 URLs (Lambda responses stop at 6 MB), and
  // the POST that starts an upload advertises the largest chunk a request can carry.
  process.env.BERTH_BLOB_DELIVERY = 'redirect';
  process.env.BERTH_MAX_CHUNK ??= String(maxChunkBytes());
  ensureBundle();
}
const server = emulateLambda ? createLambdaEmulator({ loadHandler: bundleLoader() }) : createRegistryServer(registryFor(loadConfig()));
server.listen(port, host, () => {
  const where = emulators ? `embedded DynamoDB and S3 under ${dataDir}` : `${process.env.BERTH_S3_ENDPOINT} and ${process.env.BERTH_DYNAMODB_ENDPOINT}`;
  const how = emulateLambda ? ', bundled Lambda handler behind an emulated API Gateway HTTP API' : '';
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
