#!/usr/bin/env bash
# The Go-built peers of the signature tests: notation, cosign, oras and olareg (a registry with
# the OCI referrers API); and, for the chart tests, helm and the Prometheus Operator's published
# ServiceMonitor and PrometheusRule CRDs (copied from its Go module). Built once per version
# (hack/versions.env) into $TRUSTWATCH_CACHE (default ~/.cache/trustwatch) from throwaway Go
# modules; nothing is written into the repository.
#
#   hack/go-tools.sh build             # build what is missing
#   hack/go-tools.sh bin               # print the directory holding the binaries
#   hack/go-tools.sh helm-bin          # the directory holding helm
#   hack/go-tools.sh monitoring-crds   # the directory holding the monitoring.coreos.com CRDs
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${TRUSTWATCH_CACHE:-$HOME/.cache/trustwatch}"
bin="$cache/go-tools-notation-$NOTATION_VERSION-cosign-$COSIGN_VERSION-oras-$ORAS_VERSION-olareg-$OLAREG_VERSION/bin"
# helm has a directory of its own, so that a new helm version rebuilds helm alone.
helm_bin="$cache/helm-$HELM_VERSION/bin"
monitoring_crds="$cache/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION/crds"
export GOTOOLCHAIN=local GOFLAGS="-trimpath" CGO_ENABLED=0

log() { printf 'go-tools: %s\n' "$*" >&2; }

# `go install MODULE@VERSION` asks the proxy for the module's version list (for deprecation
# notices), which the proxy here refuses for some modules; a throwaway module that requires
# the exact version needs no list.
install() {
  local name="$1" module="$2" pkg="$3" version="$4" ldflags="${5:-}" bin="${6:-$bin}" tmp
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

# The CRDs as prometheus-operator publishes them (example/prometheus-operator-crd in its module).
fetch_monitoring_crds() {
  local dir
  [ -f "$monitoring_crds/monitoring.coreos.com_prometheusrules.yaml" ] && return
  log "fetching the monitoring.coreos.com CRDs of prometheus-operator $PROMETHEUS_OPERATOR_VERSION (once)"
  dir="$(GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { echo "go-tools: error: go mod download of prometheus-operator printed no Dir" >&2; exit 1; }
  mkdir -p "$monitoring_crds"
  for crd in servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$monitoring_crds/"
  done
}

build() {
  install olareg github.com/olareg/olareg github.com/olareg/olareg/cmd/olareg "$OLAREG_VERSION"
  install oras oras.land/oras oras.land/oras/cmd/oras "$ORAS_VERSION"
  install notation github.com/notaryproject/notation github.com/notaryproject/notation/cmd/notation "$NOTATION_VERSION" \
    "-X github.com/notaryproject/notation/internal/version.Version=$NOTATION_VERSION"
  install cosign github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" \
    "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
  install helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "$helm_bin"
  fetch_monitoring_crds
}

case "${1:-}" in
  build) build ;;
  bin) echo "$bin" ;;
  helm-bin) echo "$helm_bin" ;;
  monitoring-crds) echo "$monitoring_crds" ;;
  *) echo "usage: $0 build | bin | helm-bin | monitoring-crds" >&2; exit 2 ;;
esac
