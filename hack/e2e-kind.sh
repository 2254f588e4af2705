#!/usr/bin/env bash
# End-to-end tests on a throwaway kind cluster: creates the cluster, builds the operator image
# with docker and loads it into kind, installs the notary CLI if missing, runs
# `cargo test --test e2e` against the cluster, and deletes the cluster on exit.
#
# Needs docker (with a running engine), kind, kubectl, cargo, openssl and curl; the cluster
# pulls notary:server-0.7.0 from Docker Hub. Your kubeconfig is left alone: the cluster's
# credentials go to a temporary file.
#
#   hack/e2e-kind.sh                     # everything
#   KEEP_CLUSTER=1 hack/e2e-kind.sh      # keep the cluster (and what the test created) afterwards
#   KIND_CLUSTER_NAME=x TRUSTWATCH_IMAGE=trustwatch:mine hack/e2e-kind.sh
#
# kind's default CNI (kindnet) does not enforce NetworkPolicies: the test checks that the
# quarantine NetworkPolicy exists and selects the quarantined pods, not that traffic is denied.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER_NAME:-trustwatch-e2e}"
image="${TRUSTWATCH_IMAGE:-trustwatch:e2e}"
keep="${KEEP_CLUSTER:-0}"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required: $2" >&2; exit 1; }
}
need docker "https://docs.docker.com/engine/install/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need cargo "https://rustup.rs"
need openssl "apt-get install openssl"
need curl "apt-get install curl"
docker info >/dev/null 2>&1 || { echo "error: the docker engine does not answer (docker info)" >&2; exit 1; }

if ! command -v notary >/dev/null 2>&1; then
  echo "==> installing the notary CLI (Debian/Ubuntu package notary)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq notary >/dev/null
fi

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "error: a kind cluster named $cluster exists already; delete it (kind delete cluster --name $cluster)" \
       "or set KIND_CLUSTER_NAME" >&2
  exit 1
fi

kubeconfig="$(mktemp -t trustwatch-e2e-kubeconfig.XXXXXX)"
cleanup() {
  status=$?
  if [ "$keep" = "1" ]; then
    echo "==> KEEP_CLUSTER=1: kind cluster $cluster kept; KUBECONFIG=$kubeconfig"
  else
    echo "==> deleting kind cluster $cluster"
    kind delete cluster --name "$cluster" --kubeconfig "$kubeconfig" >/dev/null 2>&1 || true
    rm -f "$kubeconfig"
  fi
  exit "$status"
}
trap cleanup EXIT

echo "==> creating kind cluster $cluster"
kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 180s
export KUBECONFIG="$kubeconfig"

echo "==> building $image"
docker build -t "$image" .
echo "==> loading $image into $cluster"
kind load docker-image "$image" --name "$cluster"

echo "==> cargo test --test e2e"
keep_objects=0
[ "$keep" = "1" ] && keep_objects=1
TRUSTWATCH_E2E=1 TRUSTWATCH_E2E_REQUIRED=1 TRUSTWATCH_E2E_KEEP="$keep_objects" TRUSTWATCH_IMAGE="$image" \
  cargo test --locked --test e2e -- --nocapture --test-threads=1
