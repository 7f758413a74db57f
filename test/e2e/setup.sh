#!/usr/bin/env bash
# Prerequisites of `npm run test:e2e` on a Debian machine, as root; safe to run again.
#  * Debian packages docker.io, skopeo, containerd, debootstrap, openssl (installed when missing;
#    `apt-get update` at most once).
#  * A running dockerd. When `docker info` fails, one is started in the background:
#      dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none
#    with its log in a temporary file and its PID in $BERTH_E2E_DOCKERD_PIDFILE
#    (default /tmp/berth-e2e-dockerd.pid); stop it with: kill "$(cat /tmp/berth-e2e-dockerd.pid)".
#    A dockerd that already runs is left alone.
# Nothing is pulled from Docker Hub: the tests make their images from tarballs.
set -euo pipefail

PIDFILE="${BERTH_E2E_DOCKERD_PIDFILE:-/tmp/berth-e2e-dockerd.pid}"
PACKAGES=(docker.io skopeo containerd debootstrap openssl)

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: must run as root (installs packages, starts dockerd)" >&2
  exit 1
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y "${missing[@]}"
else
  echo "setup.sh: ${PACKAGES[*]} already installed"
fi

if docker info >/dev/null 2>&1; then
  echo "setup.sh: dockerd is running"
else
  log=$(mktemp /tmp/berth-e2e-dockerd.XXXXXX.log)
  echo "setup.sh: starting dockerd (log: $log, pid file: $PIDFILE)"
  # nohup execs dockerd (same PID), which outlives this script and its terminal.
  nohup dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "setup.sh: dockerd exited; its log:" >&2
      cat "$log" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "setup.sh: dockerd did not answer within 60 s; its log:" >&2
    tail -n 50 "$log" >&2
    exit 1
  fi
  echo "setup.sh: dockerd is running (pid $pid)"
fi

# skopeo's blob-info cache path, over which the tests bind a private folder.
mkdir -p /var/lib/containers/cache

for tool in docker skopeo ctr containerd debootstrap unshare tar; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool not found" >&2; exit 1; }
done
echo "setup.sh: ready"
