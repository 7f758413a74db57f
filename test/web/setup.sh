#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (playwright-core drives it; no browser is
# downloaded from anywhere else). Idempotent: nothing happens when it is installed already.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
