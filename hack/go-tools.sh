#!/usr/bin/env bash
# The Go-built peers of the signature tests: notation, cosign, oras and olareg (a registry with
# the OCI referrers API); and, for the chart tests, helm and the Prometheus Operator's published
# ServiceMonitor and PrometheusRule CRDs and cert-manager's Issuer and Certificate CRDs; and,
# for the PolicyReport tests, the published wgpolicyk8s.io and openreports.io CRDs (each
# copied from its Go module). Built once per version
# (hack/versions.env) into $TRUSTWATCH_CACHE (default ~/.cache/trustwatch) from throwaway Go
# modules; nothing is written into the repository.
#
#   hack/go-tools.sh build             # build what is missing
#   hack/go-tools.sh bin               # print the directory holding the binaries
#   hack/go-tools.sh helm-bin          # the directory holding helm
#   hack/go-tools.sh cosign3-bin       # the directory holding cosign3 (cosign v3)
#   hack/go-tools.sh monitoring-crds   # the directory holding the monitoring.coreos.com CRDs
#   hack/go-tools.sh report-crds       # the wgpolicyk8s.io PolicyReport (Kyverno's) and openreports.io
#                                      # Report CRDs
#   hack/go-tools.sh cert-manager-crds # cert-manager's Issuer and Certificate CRDs
#   hack/go-tools.sh sigstore-fixture  # build (once) and print the path of hack/sigstore-fixture: keyless
#                                      # Sigstore test material from sigstore-go's VirtualSigstore
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${TRUSTWATCH_CACHE:-$HOME/.cache/trustwatch}"
bin="$cache/go-tools-notation-$NOTATION_VERSION-cosign-$COSIGN_VERSION-oras-$ORAS_VERSION-olareg-$OLAREG_VERSION/bin"
# helm has a directory of its own, so that a new helm version rebuilds helm alone.
helm_bin="$cache/helm-$HELM_VERSION/bin"
# cosign v3 beside v2 (v2 for the .sig-tag layout), in a directory of its own likewise.
cosign3_bin="$cache/cosign-$COSIGN_V3_VERSION/bin"
monitoring_crds="$cache/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION/crds"
report_crds="$cache/report-crds-kyverno-$KYVERNO_VERSION-openreports-$OPENREPORTS_VERSION"
cert_manager_crds="$cache/cert-manager-$CERT_MANAGER_VERSION/crds"
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

# Published CRDs, copied from the Go module of the project that publishes them:
#   fetch_crds DEST MODULE VERSION FILE...   (FILE relative to the module's root)
fetch_crds() {
  local dest="$1" module="$2" version="$3" dir f missing=""
  shift 3
  for f in "$@"; do [ -f "$dest/$(basename "$f")" ] || missing=1; done
  [ -z "$missing" ] && return
  log "fetching CRDs of $module $version (once)"
  dir="$(GOFLAGS=-mod=mod go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { echo "go-tools: error: go mod download of $module@$version printed no Dir" >&2; exit 1; }
  mkdir -p "$dest"
  for f in "$@"; do cp "$dir/$f" "$dest/"; done
}

build() {
  install olareg github.com/olareg/olareg github.com/olareg/olareg/cmd/olareg "$OLAREG_VERSION"
  install oras oras.land/oras oras.land/oras/cmd/oras "$ORAS_VERSION"
  install notation github.com/notaryproject/notation github.com/notaryproject/notation/cmd/notation "$NOTATION_VERSION" \
    "-X github.com/notaryproject/notation/internal/version.Version=$NOTATION_VERSION"
  install cosign github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" \
    "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
  install cosign3 github.com/sigstore/cosign/v3 github.com/sigstore/cosign/v3/cmd/cosign "$COSIGN_V3_VERSION" \
    "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_V3_VERSION" "$cosign3_bin"
  install helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "$helm_bin"
  fetch_crds "$monitoring_crds" github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
    example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
    example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
  fetch_crds "$report_crds" github.com/kyverno/kyverno "$KYVERNO_VERSION" \
    config/crds/policyreport/wgpolicyk8s.io_policyreports.yaml
  fetch_crds "$report_crds" github.com/openreports/reports-api "$OPENREPORTS_VERSION" \
    config/crd/openreports.io_reports.yaml
  fetch_crds "$cert_manager_crds" github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION" \
    deploy/crds/cert-manager.io_issuers.yaml deploy/crds/cert-manager.io_certificates.yaml
}

# hack/sigstore-fixture is our own Go program; its cache entry is keyed by its sources.
sigstore_fixture() {
  local key out
  key="$(cat "$here/sigstore-fixture/go.mod" "$here/sigstore-fixture/go.sum" "$here/sigstore-fixture/main.go" |
    sha256sum | cut -c1-16)"
  out="$cache/sigstore-fixture-$key/sigstore-fixture"
  if [ ! -x "$out" ]; then
    log "building sigstore-fixture $key (once)"
    mkdir -p "$(dirname "$out")"
    (cd "$here/sigstore-fixture" && GOFLAGS="$GOFLAGS -mod=mod" go build -o "$out.partial" .)
    mv "$out.partial" "$out"
  fi
  echo "$out"
}

case "${1:-}" in
  build) build; sigstore_fixture >/dev/null ;;
  sigstore-fixture) sigstore_fixture ;;
  bin) echo "$bin" ;;
  helm-bin) echo "$helm_bin" ;;
  cosign3-bin) echo "$cosign3_bin" ;;
  monitoring-crds) echo "$monitoring_crds" ;;
  report-crds) echo "$report_crds" ;;
  cert-manager-crds) echo "$cert_manager_crds" ;;
  *) echo "usage: $0 build | bin | helm-bin | cosign3-bin | monitoring-crds | report-crds | cert-manager-crds | sigstore-fixture" >&2; exit 2 ;;
esac
