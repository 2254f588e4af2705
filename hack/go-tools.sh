#!/usr/bin/env bash
# The Go-built peers of the signature tests: notation, cosign, oras and olareg (a registry with
# the OCI referrers API). Built once per version (hack/versions.env) into $TRUSTWATCH_CACHE
# (default ~/.cache/trustwatch) from throwaway Go modules; nothing is written into the
# repository.
#
#   hack/go-tools.sh build        # build what is missing
#   hack/go-tools.sh bin          # print the directory holding the binaries
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${TRUSTWATCH_CACHE:-$HOME/.cache/trustwatch}"
bin="$cache/go-tools-notation-$NOTATION_VERSION-cosign-$COSIGN_VERSION-oras-$ORAS_VERSION-olareg-$OLAREG_VERSION/bin"
export GOTOOLCHAIN=local GOFLAGS="-trimpath" CGO_ENABLED=0

log() { printf 'go-tools: %s\n' "$*" >&2; }

# `go install MODULE@VERSION` asks the proxy for the module's version list (for deprecation
# notices), which the proxy here refuses for some modules; a throwaway module that requires
# the exact version needs no list.
install() {
  local name="$1" module="$2" pkg="$3" version="$4" ldflags="${5:-}" tmp
  [ -x "$bin/$name" ] && return
  command -v go >/dev/null || { echo "go-tools: error: go is required to build $name (Go 1.26 or newer)" >&2; exit 1; }
  log "building $name $version (once)"
  mkdir -p "$bin"
  tmp="$(mktemp -d)"
  (
    cd "$tmp"
    go mod init trustwatch.local/go-tools-build >/dev/null 2>&1
    go get "$module@$version" >/dev/null 2>&1 || go get "$module@$version"
    GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w $ldflags" -o "$bin/$name.partial" "$pkg"
  )
  rm -rf "$tmp"
  mv "$bin/$name.partial" "$bin/$name"
}

build() {
  install olareg github.com/olareg/olareg github.com/olareg/olareg/cmd/olareg "$OLAREG_VERSION"
  install oras oras.land/oras oras.land/oras/cmd/oras "$ORAS_VERSION"
  install notation github.com/notaryproject/notation github.com/notaryproject/notation/cmd/notation "$NOTATION_VERSION" \
    "-X github.com/notaryproject/notation/internal/version.Version=$NOTATION_VERSION"
  install cosign github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" \
    "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
}

case "${1:-}" in
  build) build ;;
  bin) echo "$bin" ;;
  *) echo "usage: $0 build | bin" >&2; exit 2 ;;
esac
