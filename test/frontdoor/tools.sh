#!/usr/bin/env bash
# Builds the clients of the front-door end-to-end tests from the Go module proxy, each into a
# cache folder of its own, and prints where they are. Safe to run again: a tool whose binaries
# are already in its cache folder is not built again.
#
#   bash test/frontdoor/tools.sh [containerd] [docker] [buildkit] [nerdctl]   # default: the first three
#   eval "$(bash test/frontdoor/tools.sh)"    # sets CONTAINERD=… CTR=… DOCKERD=… BUILDKITD=… …
#
# stdout: only `NAME=/abs/path` lines (CONTAINERD, CTR, DOCKERD, BUILDKITD, BUILDCTL, NERDCTL,
# RUNC, DOCKER); progress and build times go to stderr.
#
#   tool        module                                   binaries                cache folder
#   containerd  github.com/containerd/containerd/v2      containerd, ctr         ~/.cache/berth/containerd-<v>/bin
#   docker      github.com/moby/moby/v2 (Docker 29)      dockerd                 ~/.cache/berth/dockerd-<v>/bin
#   buildkit    github.com/moby/buildkit                 buildkitd, buildctl     ~/.cache/berth/buildkit-<v>/bin
#   nerdctl     github.com/containerd/nerdctl/v2         nerdctl                 ~/.cache/berth/nerdctl-<v>/bin
#
# Versions are pinned (override with CONTAINERD_VERSION, MOBY_VERSION, BUILDKIT_VERSION,
# NERDCTL_VERSION). Cache root: $BERTH_TOOLS_CACHE, else $XDG_CACHE_HOME/berth, else
# ~/.cache/berth. Needs Go >= 1.26 (`go`, else /usr/local/go/bin/go) and, as root on Debian,
# installs the `runc` package when runc is missing (buildkitd's OCI worker and dockerd use it).
# Build times on 2 cores, cold Go build cache: containerd 3 min, dockerd 8 min, buildkit 3.5 min,
# nerdctl 3 min. BuildKit and nerdctl are built inside a copy of their module source (see build).
set -euo pipefail

CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
MOBY_VERSION="${MOBY_VERSION:-v2.0.0-beta.24}"
BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.34.2}"
NERDCTL_VERSION="${NERDCTL_VERSION:-v2.3.5}"

CACHE="${BERTH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}"

log() { echo "tools.sh: $*" >&2; }

GO="$(command -v go || true)"
[[ -n "$GO" ]] || GO=/usr/local/go/bin/go
if [[ ! -x "$GO" ]]; then
  log "no Go toolchain (go in PATH or /usr/local/go/bin/go)"
  exit 1
fi

tools=("$@")
((${#tools[@]} > 0)) || tools=(containerd docker buildkit)

# build NAME VERSION "BIN…" ENV… -- PACKAGE@VERSION… [-- GO-FLAGS…]
#   `go install PACKAGE@VERSION…`.
# build NAME VERSION "BIN…" ENV… -- MODULE@VERSION ./PACKAGE… [-- GO-FLAGS…]   (with BUILD_IN_MODULE=1)
#   `go build ./PACKAGE…` inside a copy of MODULE@VERSION's source from the module proxy, for
#   modules whose go.mod `go install` refuses (exclude or replace directives); $BUILD_PREPARE,
#   when set, runs there first (bash -c).
# Builds into a temporary folder and moves it into place only when every binary was built, so
# that an interrupted build never looks cached.
build() {
  local name=$1 version=$2 bins=$3
  shift 3
  local dir="$CACHE/$name-$version/bin" missing=0 bin
  for bin in $bins; do [[ -x "$dir/$bin" ]] || missing=1; done
  if ((missing == 0)); then
    log "$name $version: cached in $dir"
    return
  fi
  local envs=() packages=() flags=()
  while (($# > 0)) && [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  while (($# > 0)) && [[ $1 != -- ]]; do packages+=("$1"); shift; done
  (($# > 0)) && shift && flags=("$@")
  mkdir -p "$CACHE"
  local staging
  staging="$(mktemp -d "$CACHE/.$name-$version.XXXXXX")"
  chmod 755 "$staging"
  log "$name $version: building ${packages[*]} (this takes minutes)"
  local start=$SECONDS ok=1
  if [[ ${BUILD_IN_MODULE:-} == 1 ]]; then
    local source
    source="$(env "${envs[@]}" "$GO" mod download -json "${packages[0]}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [[ -z "$source" ]]; then
      ok=0
    else
      cp -r "$source" "$staging/src"
      chmod -R u+w "$staging/src"
      (cd "$staging/src" && bash -c "${BUILD_PREPARE:-true}" >&2 && env "${envs[@]}" "$GO" build -trimpath -o "$staging/bin/" "${flags[@]}" "${packages[@]:1}" >&2) || ok=0
      rm -rf "$staging/src"
    fi
  else
    env "${envs[@]}" GOBIN="$staging/bin" "$GO" install -trimpath "${flags[@]}" "${packages[@]}" >&2 || ok=0
  fi
  for bin in $bins; do
    [[ -x "$staging/bin/$bin" ]] || { ((ok == 0)) || log "$name $version: $bin was not built"; ok=0; }
  done
  if ((ok == 0)); then
    rm -rf "$staging"
    log "$name $version: build failed"
    return 1
  fi
  rm -rf "$CACHE/$name-$version"
  mv "$staging" "$CACHE/$name-$version"
  log "$name $version: built in $((SECONDS - start)) s into $dir"
}

ensure_runc() {
  command -v runc >/dev/null && return
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing the Debian package runc"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y runc >&2 || { apt-get update >&2 && apt-get install -y runc >&2; }
  else
    log "runc is missing (install it: apt-get install runc)"
    return 1
  fi
}

out=()
for tool in "${tools[@]}"; do
  case "$tool" in
    containerd)
      build containerd "$CONTAINERD_VERSION" "containerd ctr" \
        -- \
        "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
        -- -tags no_btrfs \
        -ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
      dir="$CACHE/containerd-$CONTAINERD_VERSION/bin"
      out+=("CONTAINERD=$dir/containerd" "CTR=$dir/ctr")
      ;;
    docker)
      ensure_runc
      # moby's go.mod has `tool` and `replace` lines that need -mod=mod outside its own tree.
      build dockerd "$MOBY_VERSION" "dockerd" \
        GOFLAGS=-mod=mod \
        -- \
        "github.com/moby/moby/v2/cmd/dockerd@$MOBY_VERSION" \
        -- -ldflags "-X github.com/moby/moby/v2/dockerversion.Version=$MOBY_VERSION -X github.com/moby/moby/v2/dockerversion.GitCommit=$MOBY_VERSION"
      out+=("DOCKERD=$CACHE/dockerd-$MOBY_VERSION/bin/dockerd")
      docker_cli="$(command -v docker || true)"
      [[ -n "$docker_cli" ]] && out+=("DOCKER=$docker_cli")
      ;;
    buildkit)
      ensure_runc
      # BuildKit's go.mod has exclude directives, which `go install …@version` rejects.
      BUILD_IN_MODULE=1 build buildkit "$BUILDKIT_VERSION" "buildkitd buildctl" \
        -- \
        "github.com/moby/buildkit@$BUILDKIT_VERSION" ./cmd/buildkitd ./cmd/buildctl \
        -- -ldflags "-X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION"
      dir="$CACHE/buildkit-$BUILDKIT_VERSION/bin"
      out+=("BUILDKITD=$dir/buildkitd" "BUILDCTL=$dir/buildctl")
      ;;
    nerdctl)
      # nerdctl's go.mod replaces its test module mod/tigron with ./mod/tigron, which is neither
      # in the module's zip nor on the proxy. Only pkg/testutil imports it, and the binary reaches
      # pkg/testutil through one test-helper file (cmd/nerdctl/helpers/testing_linux.go): remove
      # that file and the tigron requirement.
      BUILD_IN_MODULE=1 \
      BUILD_PREPARE="rm -f cmd/nerdctl/helpers/testing_linux.go && '$GO' mod edit -dropreplace=github.com/containerd/nerdctl/mod/tigron@v0.0.0 -droprequire=github.com/containerd/nerdctl/mod/tigron" \
      build nerdctl "$NERDCTL_VERSION" "nerdctl" \
        GOFLAGS=-mod=mod \
        -- \
        "github.com/containerd/nerdctl/v2@$NERDCTL_VERSION" ./cmd/nerdctl \
        -- -ldflags "-X github.com/containerd/nerdctl/v2/pkg/version.Version=$NERDCTL_VERSION"
      out+=("NERDCTL=$CACHE/nerdctl-$NERDCTL_VERSION/bin/nerdctl")
      ;;
    *)
      log "unknown tool '$tool' (containerd, docker, buildkit, nerdctl)"
      exit 2
      ;;
  esac
done

runc_bin="$(command -v runc || true)"
[[ -n "$runc_bin" ]] && out+=("RUNC=$runc_bin")
printf '%s\n' "${out[@]}" | awk '!seen[$0]++'
