#!/usr/bin/env bash
# `npm run test:backends`: starts MinIO and moto (test/backends/start.sh), runs every suite of
# `npm test` that touches storage (storage contract, Lambda bundle, auth, search, direct
# uploads, HTTP API, the front door of the emulated deployment) against them, every test stack on
# a fresh table and bucket, then both OCI
# conformance suites and the crane / oras / regctl suite against `npm start` on them (so real
# clients follow the 307 blob redirects to presigned MinIO URLs), and stops the back ends
# whatever happened. BERTH_SKIP_CONFORMANCE=1 or BERTH_SKIP_CLIENTS=1 leave those parts out.
set -euo pipefail
cd "$(dirname "$0")/../.."

envfile=$(mktemp "${TMPDIR:-/tmp}/berth-backends-env.XXXXXX")
trap 'bash test/backends/stop.sh "$envfile" >/dev/null' EXIT
bash test/backends/start.sh "$envfile"

status=0
echo "== storage contract, Lambda bundle, auth, search, direct upload and HTTP API suites on MinIO + moto"
npm run --silent build >/dev/null
(set -a && . "$envfile" && set +a &&
  node --import tsx --test --test-concurrency=1 test/contract/*.test.ts test/lambda/*.test.ts \
    test/auth/*.test.ts test/search/*.test.ts test/direct/*.test.ts test/http/*.test.ts test/gc/*.test.ts) || status=1

echo "== the emulated deployment's front door on MinIO (which checks the signatures of the emulated CloudFront's S3 requests) + moto"
(set -a && . "$envfile" && set +a &&
  node --import tsx --test --test-concurrency=1 test/frontdoor/protocol.test.ts) || status=1

if [ "${BERTH_SKIP_CONFORMANCE:-}" != 1 ]; then
  echo "== OCI conformance suites against npm start on MinIO + moto"
  bash test/conformance/run.sh "$envfile" || status=1
fi

if [ "${BERTH_SKIP_CLIENTS:-}" != 1 ]; then
  echo "== crane, oras and regctl against npm start on MinIO + moto"
  bash test/clients/install.sh >/dev/null
  (set -a && . "$envfile" && set +a && node --import tsx --test --test-concurrency=1 test/clients/*.test.ts) || status=1
fi
exit $status
