#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without containers: etcd, kube-apiserver and
# kube-controller-manager built from their published Go modules, plus kubectl.
#
#   hack/control-plane.sh build              # build (once per version) into the cache
#   hack/control-plane.sh up DIR [--owner-pid PID]
#   hack/control-plane.sh down DIR
#   hack/control-plane.sh restart DIR NAME   # stop and start one component (e.g. kube-apiserver)
#   hack/control-plane.sh bin                # print the directory holding the binaries
#
# `up` builds what is missing, starts the three components on free loopback ports (TLS, RBAC,
# a service-account issuer and keys, a static token file with an admin and the operator's
# ServiceAccount identity), waits for /readyz and writes:
#   DIR/kubeconfig            the admin (system:masters)
#   DIR/operator.kubeconfig   system:serviceaccount:trustwatch-system:trustwatch and its groups
#   DIR/limited.kubeconfig    system:serviceaccount:trustwatch-system:trustwatch-limited (no
#                             RBAC of its own: for tests that grant a reduced role)
#   DIR/bin/kubectl           kubectl with DIR/kubeconfig preset
#   DIR/env                   KUBECONFIG=..., for `source DIR/env`
# With --owner-pid, a watcher runs `down DIR` as soon as that process is gone, so that a test
# binary that panics or is killed leaves nothing behind.
# `down` stops exactly what `up` started, by the process groups recorded in DIR/pids, and
# removes DIR.
#
# Versions are pinned in hack/versions.env. Builds go to $TRUSTWATCH_CACHE (default
# ~/.cache/trustwatch), keyed by version; no module source is ever written into the repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${TRUSTWATCH_CACHE:-$HOME/.cache/trustwatch}"
k8s_bin="$cache/kubernetes-$KUBERNETES_VERSION/bin"
etcd_bin="$cache/etcd-$ETCD_VERSION/bin"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { printf 'control-plane: error: %s\n' "$*" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------

# k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them with local replace
# directives, which do not apply to a module that depends on it. A throwaway module maps each
# of them to its published v0.X.Y, read from kubernetes' own go.mod.
build_kubernetes() {
  if [ -x "$k8s_bin/kube-apiserver" ] && [ -x "$k8s_bin/kube-controller-manager" ] && [ -x "$k8s_bin/kubectl" ]; then
    return
  fi
  command -v go >/dev/null || die "go is required to build the control plane (Go 1.26 or newer)"
  log "building kube-apiserver, kube-controller-manager and kubectl $KUBERNETES_VERSION (several minutes, once)"
  local tmp staging minor gomod out
  tmp="$(mktemp -d)"
  out="$k8s_bin.partial"
  rm -rf "$out"; mkdir -p "$out"
  (
    cd "$tmp"
    go mod init trustwatch.local/control-plane-build >/dev/null 2>&1
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy"
    minor="v0.${KUBERNETES_VERSION#v1.}"
    staging="$(sed -nE 's/^[[:space:]]+(k8s\.io\/[^[:space:]]+) v0\.0\.0$/\1/p' "$gomod" | sort -u)"
    [ -n "$staging" ] || die "no staging modules found in $gomod"
    for m in $staging; do go mod edit -replace "$m=$m@$minor"; done
    go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null 2>&1 || go get "k8s.io/kubernetes@$KUBERNETES_VERSION"
    local ldflags="-s -w"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
    for cmd in kube-apiserver kube-controller-manager kubectl; do
      log "  go build k8s.io/kubernetes/cmd/$cmd"
      go build -ldflags "$ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$tmp"
  rm -rf "$k8s_bin"; mv "$out" "$k8s_bin"
}

# go.etcd.io/etcd/server/v3 has its main package at the module root and replace directives of
# its own, so it is built from a throwaway module that requires it.
build_etcd() {
  [ -x "$etcd_bin/etcd" ] && return
  command -v go >/dev/null || die "go is required to build etcd (Go 1.26 or newer)"
  log "building etcd $ETCD_VERSION (once)"
  local tmp out
  tmp="$(mktemp -d)"
  out="$etcd_bin.partial"
  rm -rf "$out"; mkdir -p "$out"
  (
    cd "$tmp"
    go mod init trustwatch.local/etcd-build >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$tmp"
  rm -rf "$etcd_bin"; mv "$out" "$etcd_bin"
}

build() {
  mkdir -p "$cache"
  build_etcd
  build_kubernetes
}

# --- up / down ---------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts "$@" in its own session (so its process group can be stopped as a whole) and records
# the group's pid under DIR/pids/NAME.
start() {
  local dir="$1" name="$2"; shift 2
  mkdir -p "$dir/cmd"
  printf '%q ' "$@" > "$dir/cmd/$name"
  setsid "$@" >>"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name"
}

stop_component() {
  local dir="$1" name="$2" pid
  [ -f "$dir/pids/$name" ] || return 0
  pid="$(cat "$dir/pids/$name")"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

# Stops one component and starts it again with the same command line (a crash and restart).
restart() {
  local dir="$1" name="$2"
  [ -f "$dir/cmd/$name" ] || die "$dir has no component $name"
  stop_component "$dir" "$name"
  eval "start \"\$dir\" \"\$name\" $(cat "$dir/cmd/$name")"
  if [ "$name" = kube-apiserver ]; then
    local token; token="$(sed -n 's/^ *token: //p' "$dir/kubeconfig" | head -n1)"
    wait_for kube-apiserver "$(cat "$dir/server")/readyz" "$token" "$dir" kube-apiserver
  fi
  log "$name restarted"
}

kubeconfig() {
  local file="$1" server="$2" ca="$3" user="$4" token="$5"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: trustwatch-local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$ca")
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@trustwatch-local
  context: {cluster: trustwatch-local, user: $user}
current-context: $user@trustwatch-local
EOF
  chmod 600 "$file"
}

wait_for() {
  local what="$1" url="$2" token="$3" dir="$4" name="$5"
  for _ in $(seq 600); do
    if curl -sfk --max-time 2 -H "Authorization: Bearer $token" "$url" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$dir/pids/$name")" 2>/dev/null; then
      tail -n 30 "$dir/logs/$name.log" >&2 || true
      die "$what exited during start-up (log: $dir/logs/$name.log)"
    fi
    sleep 0.2
  done
  tail -n 30 "$dir/logs/$name.log" >&2 || true
  die "$what did not become ready at $url within 120 s (log: $dir/logs/$name.log)"
}

up() {
  local dir="$1" owner=""
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner-pid) owner="$2"; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -e "$dir/pids" ] && die "$dir already holds a control plane; run: $0 down $dir"
  build
  mkdir -p "$dir"/{pids,logs,pki,etcd,bin}
  dir="$(cd "$dir" && pwd)"
  # A control plane that fails half-way is stopped, not left running.
  trap "rc=\$?; [ \$rc -eq 0 ] || down '$dir' >/dev/null 2>&1 || true" EXIT

  local pki="$dir/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=trustwatch-local-ca -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=kube-apiserver \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$pki/ext.cnf"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/ext.cnf" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  local admin_token operator_token limited_token
  admin_token="$(openssl rand -hex 24)"
  operator_token="$(openssl rand -hex 24)"
  limited_token="$(openssl rand -hex 24)"
  {
    echo "$admin_token,admin,admin-uid,system:masters"
    echo "$operator_token,system:serviceaccount:trustwatch-system:trustwatch,trustwatch-operator-uid,\"system:serviceaccounts,system:serviceaccounts:trustwatch-system,system:authenticated\""
    echo "$limited_token,system:serviceaccount:trustwatch-system:trustwatch-limited,trustwatch-limited-uid,\"system:authenticated\""
  } > "$pki/tokens.csv"
  chmod 600 "$pki/tokens.csv"

  local etcd_port etcd_peer api_port kcm_port
  etcd_port="$(free_port)"; etcd_peer="$(free_port)"; api_port="$(free_port)"; kcm_port="$(free_port)"
  log "etcd on 127.0.0.1:$etcd_port"
  start "$dir" etcd "$etcd_bin/etcd" --name trustwatch --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "trustwatch=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level warn
  wait_for etcd "http://127.0.0.1:$etcd_port/health" none "$dir" etcd

  local server="https://127.0.0.1:$api_port"
  log "kube-apiserver on $server"
  # The flags controller-runtime's envtest uses, plus RBAC, service accounts and tokens. The
  # ServiceAccount admission plugin is off as in envtest: no token controller mounts tokens.
  # No kube-proxy routes ClusterIPs here: --enable-aggregator-routing makes the API server call
  # webhooks given by Service at an endpoint of the Service's EndpointSlices instead (its
  # ServiceResolver; kube-controller-manager runs the EndpointSlice controller), so a webhook's
  # Service works once a ready pod backs it.
  start "$dir" kube-apiserver "$k8s_bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" --cert-dir "$pki" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --secure-port "$api_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --endpoint-reconciler-type none \
    --authorization-mode RBAC --token-auth-file "$pki/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --disable-admission-plugins ServiceAccount --enable-priority-and-fairness=false \
    --enable-aggregator-routing=true --profiling=false --v=1
  wait_for kube-apiserver "$server/readyz" "$admin_token" "$dir" kube-apiserver

  kubeconfig "$dir/kubeconfig" "$server" "$pki/ca.crt" admin "$admin_token"
  kubeconfig "$dir/operator.kubeconfig" "$server" "$pki/ca.crt" trustwatch "$operator_token"
  kubeconfig "$dir/limited.kubeconfig" "$server" "$pki/ca.crt" trustwatch-limited "$limited_token"

  log "kube-controller-manager on 127.0.0.1:$kcm_port"
  start "$dir" kube-controller-manager "$k8s_bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" \
    --authorization-kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --controllers garbagecollector,deployment,replicaset,statefulset,daemonset,job,cronjob,namespace,serviceaccount,endpointslice \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --concurrent-gc-syncs 5 --v=1
  wait_for kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" "$admin_token" "$dir" kube-controller-manager

  cat > "$dir/bin/kubectl" <<EOF
#!/bin/sh
exec env KUBECONFIG="\${KUBECONFIG:-$dir/kubeconfig}" "$k8s_bin/kubectl" "\$@"
EOF
  chmod +x "$dir/bin/kubectl"
  printf 'export KUBECONFIG=%s\nexport PATH=%s:$PATH\n' "$dir/kubeconfig" "$dir/bin" > "$dir/env"
  echo "$server" > "$dir/server"

  if [ -n "$owner" ]; then
    # Not in a process group of ours that `down` kills: it is the one running `down`.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down "$3"' \
      watcher "$owner" "$here/control-plane.sh" "$dir" >/dev/null 2>&1 < /dev/null &
    echo $! > "$dir/watcher.pid"
  fi
  trap - EXIT
  log "ready: export KUBECONFIG=$dir/kubeconfig (or: source $dir/env)"
}

down() {
  local dir="$1" name pid
  [ -d "$dir/pids" ] || { rm -rf "$dir"; return 0; }
  # Reverse start order: the controller manager, then the API server, then etcd.
  for name in kube-controller-manager kube-apiserver etcd; do
    stop_component "$dir" "$name"
  done
  if [ -f "$dir/watcher.pid" ]; then
    pid="$(cat "$dir/watcher.pid")"
    [ "$pid" != "$PPID" ] && [ "$pid" != "$$" ] && kill -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  build) build ;;
  bin) echo "$k8s_bin"; echo "$etcd_bin" ;;
  up) [ $# -ge 2 ] || die "usage: $0 up DIR [--owner-pid PID]"; shift; up "$@" ;;
  down) [ $# -eq 2 ] || die "usage: $0 down DIR"; down "$2" ;;
  restart) [ $# -eq 3 ] || die "usage: $0 restart DIR NAME"; restart "$2" "$3" ;;
  *) echo "usage: $0 build | up DIR [--owner-pid PID] | down DIR | restart DIR NAME | bin" >&2; exit 2 ;;
esac
