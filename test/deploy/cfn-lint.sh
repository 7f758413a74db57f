#!/usr/bin/env bash
# Validates CloudFormation templates with cfn-lint (from PyPI), installed on first use into a
# virtualenv under ~/.cache/berth (override with BERTH_CFN_LINT_VENV); a pinned version keeps the
# rule set stable between runs.
#
#   bash test/deploy/cfn-lint.sh <template.json>...
#
# Any error or warning fails, except W3005 ("dependency already enforced by a Ref"): the
# framework (osls) writes a redundant DependsOn on every HTTP API route it generates, which is
# harmless and cannot be removed from serverless.yml (resources.extensions can only append to
# DependsOn).
set -euo pipefail

VERSION="${BERTH_CFN_LINT_VERSION:-1.51.0}"
VENV="${BERTH_CFN_LINT_VENV:-$HOME/.cache/berth/cfn-lint-venv}"

if [ "$#" -eq 0 ]; then
  echo "usage: $0 <template.json>..." >&2
  exit 64
fi

if ! "$VENV/bin/cfn-lint" --version 2>/dev/null | grep -qx "cfn-lint $VERSION"; then
  echo "cfn-lint: installing cfn-lint $VERSION into $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >&2; then
    # Debian's python3 ships venv separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -qq python3-venv >&2 || { apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2; }
      rm -rf "$VENV"
      python3 -m venv "$VENV" >&2
    else
      echo "cfn-lint: python3 -m venv failed; install python3-venv" >&2
      exit 1
    fi
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$VERSION" >&2
fi

exec "$VENV/bin/cfn-lint" --ignore-checks W3005 -- "$@"
