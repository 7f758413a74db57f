#!/usr/bin/env bash
# Starts real back ends for Berth's tests on loopback and writes their settings to an env file:
#   MinIO      S3-compatible, verifies SigV4, multipart, presigned URLs; built from the Go module
#              proxy into $(go env GOBIN) or $(go env GOPATH)/bin on first use
#   moto       moto_server (PyPI, Apache-2.0) for DynamoDB: conditions, queries, transactions;
#              installed on first use into a venv under ~/.cache/berth. (DynamoDB Local is not
#              used: its licence is not open source.)
#
# usage: test/backends/start.sh <envfile>
# The env file holds BERTH_TEST_S3_ENDPOINT, BERTH_TEST_DYNAMODB_ENDPOINT,
# BERTH_TEST_S3_ACCESS_KEY, BERTH_TEST_S3_SECRET_KEY (what test/support/stack.ts reads),
# BERTH_BACKENDS_PIDS and BERTH_BACKENDS_DIR; `test/backends/stop.sh <envfile>` ends them.
# Running it again while the back ends recorded in <envfile> still answer changes nothing.
# MINIO_ROOT_USER / MINIO_ROOT_PASSWORD may be set; otherwise a random pair is used. Both listen
# on 127.0.0.1, each on a free port; the S3 endpoint names MinIO `localhost` (see below).
set -euo pipefail

envfile=${1:?usage: $0 <envfile>}
MINIO_MODULE=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
MOTO=moto[server]==5.2.5
cache="${XDG_CACHE_HOME:-$HOME/.cache}/berth"
venv="$cache/moto-venv"

answers() { # url: any HTTP answer counts (MinIO's health probe is 200, moto answers 404 on /)
  curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1" 2>/dev/null | grep -qv '^000$'
}

if [ -s "$envfile" ]; then
  # shellcheck disable=SC1090
  (. "$envfile" && [ -n "${BERTH_BACKENDS_PIDS:-}" ] && answers "${BERTH_TEST_S3_ENDPOINT:-}/minio/health/live" \
    && answers "${BERTH_TEST_DYNAMODB_ENDPOINT:-}" && for pid in $BERTH_BACKENDS_PIDS; do kill -0 "$pid" 2>/dev/null || exit 1; done) && {
    echo "back ends of $envfile already running"
    exit 0
  }
  bash "$(dirname "$0")/stop.sh" "$envfile" >/dev/null # whatever of them is left
fi

# --- install what is missing ------------------------------------------------------------------
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
minio="$gobin/minio"
if [ ! -x "$minio" ]; then
  echo "building MinIO ($MINIO_MODULE) into $gobin (a few minutes, once)"
  GOBIN="$gobin" go install "$MINIO_MODULE"
fi

if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing $MOTO into $venv (once)"
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "$MOTO"
fi

# --- start ------------------------------------------------------------------------------------
free_port() { # address
  python3 -c 'import socket, sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1]); s.close()' "$1"
}
# Clients reach MinIO by another host name than the registry (127.0.0.1), as S3 is another host
# than the registry in production. On the same host name, Go's net/http keeps the registry's
# Authorization header on the blob redirect (it ignores the port) and MinIO, like S3, refuses a
# presigned URL that also carries a Bearer token (400 "multiple authentication types"); on
# another loopback IP literal (127.0.0.2), go-containerregistry (crane) refuses the redirect
# ("SSRF protection": private IP literals on another host). A name passes both.
s3_name=${BERTH_TEST_S3_HOST:-localhost}

dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-backends.XXXXXX")
mkdir -p "$dir/minio"
user=${MINIO_ROOT_USER:-berth$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')}
password=${MINIO_ROOT_PASSWORD:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
s3_port=$(free_port 127.0.0.1)
console_port=$(free_port 127.0.0.1)
dynamo_port=$(free_port 127.0.0.1)

MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$password MINIO_BROWSER=off MINIO_UPDATE=off \
  setsid "$minio" server --quiet --address "127.0.0.1:$s3_port" --console-address "127.0.0.1:$console_port" \
  "$dir/minio" </dev/null >"$dir/minio.log" 2>&1 &
minio_pid=$!
setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$dynamo_port" </dev/null >"$dir/moto.log" 2>&1 &
moto_pid=$!

s3="http://$s3_name:$s3_port"
dynamo="http://127.0.0.1:$dynamo_port"
for _ in $(seq 1 150); do
  answers "$s3/minio/health/live" && answers "$dynamo" && break
  sleep 0.2
done
if ! answers "$s3/minio/health/live" || ! answers "$dynamo"; then
  echo "back ends did not start; logs:" >&2
  tail -n 30 "$dir"/*.log >&2
  kill "$minio_pid" "$moto_pid" 2>/dev/null || true
  exit 1
fi

cat >"$envfile" <<ENV
BERTH_TEST_S3_ENDPOINT=$s3
BERTH_TEST_DYNAMODB_ENDPOINT=$dynamo
BERTH_TEST_S3_ACCESS_KEY=$user
BERTH_TEST_S3_SECRET_KEY=$password
BERTH_BACKENDS_PIDS="$minio_pid $moto_pid"
BERTH_BACKENDS_DIR=$dir
ENV
echo "MinIO at $s3 (pid $minio_pid), moto DynamoDB at $dynamo (pid $moto_pid); settings in $envfile"
