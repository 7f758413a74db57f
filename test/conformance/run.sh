#!/usr/bin/env bash
# Builds the OCI distribution-spec conformance suites from the Go module proxy and runs all
# four categories (pull, push, content discovery, content management) against a fresh
# `npm start` on a free port. Extra environment (e.g. BERTH_S3_ENDPOINT and
# BERTH_DYNAMODB_ENDPOINT) is passed on to the server.
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

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
data=$(mktemp -d)
log=$(mktemp)
PORT=$port HOST=127.0.0.1 BERTH_DATA_DIR="$data" node --import tsx infra/local/main.ts >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data" "$log"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || { cat "$log"; exit 1; }

status=0
echo "== conformance (legacy v1.1 suite) against 127.0.0.1:$port"
out=$(mktemp -d)
if ! (cd "$out" && OCI_ROOT_URL="http://127.0.0.1:$port" OCI_NAMESPACE=conformance/legacy OCI_CROSSMOUNT_NAMESPACE=conformance/legacy-other \
  OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 OCI_HIDE_SKIPPED_WORKFLOWS=0 \
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
sed -n '/^OCI Conformance Result/,$p' "$out/main.txt"
rm -rf "$out"
exit $status
