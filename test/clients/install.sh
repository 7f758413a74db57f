#!/usr/bin/env bash
# Builds the Go registry clients used by test/clients from the Go module proxy into
# $(go env GOBIN) or $(go env GOPATH)/bin, skipping any already there, and prints that folder.
set -euo pipefail
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
install() { # binary module@version
  [ -x "$gobin/$1" ] && return
  echo "building $2 into $gobin" >&2
  GOBIN="$gobin" go install "$2" >&2
}
install crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
install oras oras.land/oras/cmd/oras@v1.3.6
install regctl github.com/regclient/regclient/cmd/regctl@v0.11.7
echo "$gobin"
