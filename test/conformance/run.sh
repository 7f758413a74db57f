#!/usr/bin/env bash
# Builds the OCI distribution-spec conformance suites from the Go module proxy and runs all
# four categories (pull, push, content discovery, content management) against a fresh
# `npm start` on a free port. Extra environment (e.g. BERTH_S3_ENDPOINT and
# BERTH_DYNAMODB_ENDPOINT) is passed on to the server.
#
# usage: test/conformance/run.sh [envfile]
# With an env file written by test/backends/start.sh the server runs on those back ends (MinIO
# and moto) instead of the embedded emulators, on a fresh table and bucket made for this run.
# With BERTH_CONFORMANCE_AUTH=1 the server runs with BERTH_AUTH=required and both suites log in
# (OCI_USERNAME/OCI_PASSWORD) as an admin made with `npx berth user add` for this run.
#
# The module proxy serves two versions of github.com/opencontainers/distribution-spec/conformance:
#   LEGACY  the Ginkgo suite released with distribution-spec v1.1 (2023-11-01 snapshot)
#   MAIN    the main-branch redesign (adds sha512, tag parameters, upload cancel, data sets)
set -euo pipefail
cd "$(dirname "$0")/../.."

LEGACY=v0.0.0-20231101194043-f2182352d4cc
MAIN=v0.0.0-20260831232431-97274622c111
MODULE=github.com/opencontainers/distribution-spec/conformance
bin_dir="${XDG_CACHE_HOME:-$HOME/.cache}/berth/conformance"
mkdir -p "$bin_dir"

build() { # version output kind(test|binary)
  local version=$1 out=$2 kind=$3
  [ -x "$out" ] && return
  local work dir
  work=$(mktemp -d)
  (cd "$work" && go mod init build >/dev/null 2>&1)
  dir=$(cd "$work" && go mod download -json "$MODULE@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
  if [ "$kind" = test ]; then (cd "$work/src" && go test -c -o "$out" .); else (cd "$work/src" && go build -o "$out" .); fi
  rm -rf "$work"
}

echo "building conformance suites ($LEGACY, $MAIN)"
build "$LEGACY" "$bin_dir/legacy-$LEGACY.test" test
build "$MAIN" "$bin_dir/main-$MAIN" binary

backend="embedded emulators"
if [ -n "${1:-}" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$1"
  provisioned=$(node --import tsx test/backends/provision.ts conformance)
  eval "$provisioned"
  set +a
  backend="$BERTH_S3_ENDPOINT (S3) and $BERTH_DYNAMODB_ENDPOINT (DynamoDB), table and bucket $BERTH_TABLE"
fi

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
data=$(mktemp -d)
log=$(mktemp)
[ "${BERTH_CONFORMANCE_AUTH:-}" = 1 ] && export BERTH_AUTH=required
PORT=$port HOST=127.0.0.1 BERTH_DATA_DIR="$data" node infra/local/start.mjs >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data" "$log"' EXIT
v2() { curl -s -o /dev/null -w '%{http_code}' "$@" "http://127.0.0.1:$port/v2/"; } # 200, or 401 with auth required
for _ in $(seq 1 100); do v2 | grep -qE '^(200|401)$' && break; sleep 0.2; done
v2 | grep -qE '^(200|401)$' || { cat "$log"; exit 1; }
if [ "${BERTH_AUTH:-}" = required ]; then
  # The CLI finds the database in $data/endpoints.json (written by the embedded emulators).
  [ -f "$data/endpoints.json" ] || node -e 'const e = process.env; require("fs").writeFileSync(process.argv[1], JSON.stringify({ BERTH_DYNAMODB_ENDPOINT: e.BERTH_DYNAMODB_ENDPOINT, BERTH_TABLE: e.BERTH_TABLE, AWS_ACCESS_KEY_ID: e.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: e.AWS_SECRET_ACCESS_KEY }))' "$data/endpoints.json"
  OCI_USERNAME=conformance
  OCI_PASSWORD=$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')
  echo "$OCI_PASSWORD" | BERTH_DATA_DIR="$data" npx berth user add "$OCI_USERNAME" --password-stdin --role admin >/dev/null
  # OCI_CACHE_AUTH=false: the suite would reuse a token fetched for a plain push on the mount,
  # which lacks pull on the source; fresh tokens follow each challenge, which names the source.
  OCI_CACHE_AUTH=false
  export OCI_USERNAME OCI_PASSWORD OCI_CACHE_AUTH
  [ "$(v2)" = 401 ] && [ "$(v2 -u "$OCI_USERNAME:$OCI_PASSWORD")" = 200 ] || { echo "auth is not on, or the login does not work"; cat "$log"; exit 1; }
  backend="$backend, BERTH_AUTH=required, suites logged in as $OCI_USERNAME (admin)"
fi
echo "server on $backend"

status=0
echo "== conformance (legacy v1.1 suite) against 127.0.0.1:$port"
out=$(mktemp -d)
# OCI_AUTOMATIC_CROSSMOUNT=0: Berth answers a mount without `from` with 202 (no automatic content
# discovery), and the suite checks exactly that only when the variable says so.
if ! (cd "$out" && OCI_ROOT_URL="http://127.0.0.1:$port" OCI_NAMESPACE=conformance/legacy OCI_CROSSMOUNT_NAMESPACE=conformance/legacy-other \
  OCI_AUTOMATIC_CROSSMOUNT=0 OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 OCI_HIDE_SKIPPED_WORKFLOWS=0 \
  OCI_REPORT_DIR=none "$bin_dir/legacy-$LEGACY.test" -ginkgo.no-color >"$out/legacy.txt" 2>&1); then
  status=1
  grep -A8 "\[FAIL\]\|FAILED\]" "$out/legacy.txt" | head -80
fi
grep -E "^Ran [0-9]+ of [0-9]+ Specs|Passed \|" "$out/legacy.txt"

echo "== conformance (main-branch suite, every API and data set enabled) against 127.0.0.1:$port"
if ! (cd "$out" && OCI_REGISTRY="127.0.0.1:$port" OCI_TLS=disabled OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 OCI_VERSION=1.1 \
  OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true OCI_RESULTS_DIR="$out/results" \
  "$bin_dir/main-$MAIN" >"$out/main.txt" 2>&1); then
  status=1
  grep "failed test" "$out/main.txt" | head -40
fi
grep -E ': (Skip|Disabled)$' "$out/main.txt" | sed 's/^ */skipped: /' || true
sed -n '/^OCI Conformance Result/,$p' "$out/main.txt"
rm -rf "$out"
exit $status
