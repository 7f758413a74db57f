#!/usr/bin/env bash
# Stops the back ends that test/backends/start.sh recorded in <envfile> and removes their data.
# Harmless when they are already gone.
set -euo pipefail
envfile=${1:?usage: $0 <envfile>}
[ -f "$envfile" ] || exit 0
# shellcheck disable=SC1090
. "$envfile"
# Only the processes start.sh started: a recorded PID that now belongs to anything else is left alone.
pids=""
for pid in ${BERTH_BACKENDS_PIDS:-}; do
  grep -qa -e minio -e moto_server "/proc/$pid/cmdline" 2>/dev/null && pids="$pids $pid"
done
for pid in $pids; do kill "$pid" 2>/dev/null || true; done
for pid in $pids; do
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || continue 2; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
case "${BERTH_BACKENDS_DIR:-}" in */berth-backends.*) rm -rf "$BERTH_BACKENDS_DIR" ;; esac
rm -f "$envfile"
echo "stopped back ends of $envfile"
