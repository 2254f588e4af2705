#!/usr/bin/env bash
# make demo: the operator's main job on this machine, no container runtime needed.
#
# A real Kubernetes control plane (hack/control-plane.sh: etcd, kube-apiserver,
# kube-controller-manager), a real notary-server and docker-registry on loopback, images pushed
# to the registry and signed with the notary CLI, notation and cosign, and `trustwatch run` as the
# operator under its own ServiceAccount identity (config/rbac). No kubelet runs: this script
# plays scheduler and kubelet, binding pods to a Node and writing the digest each container
# "pulled" into its status, as a real kubelet would.
#
# It shows: the install through the Helm chart (charts/trustwatch, with the real helm); signed,
# drifted, revoked, expiring and unsigned workloads; `kubectl get troot,itp,itr -A` and the
# events; a re-sign that clears the drift; a quarantine and its release; the migration view off
# Docker Content Trust (Notary v1, Notation and cosign under one policy); the admission webhook
# refusing a `kubectl apply` of a Deployment with an unsigned image, called by the API server through
# the chart's Service; and `trustwatch audit`, the same decisions offline.
#
# Everything lives in .demo/ and is stopped on exit. KEEP=1 leaves it running (the script
# prints how to use kubectl on it, and how to stop it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo="$root/.demo"
keep="${KEEP:-0}"
tw="${TRUSTWATCH:-$root/target/debug/trustwatch}"
[ -x "$tw" ] || cargo build --quiet
for bin in notary notary-server docker-registry openssl curl python3; do
  command -v "$bin" >/dev/null || { echo "demo: $bin is missing: run make deps" >&2; exit 1; }
done
bash hack/go-tools.sh build
cosign_bin="$(bash hack/go-tools.sh bin)/cosign"
notation_bin="$(bash hack/go-tools.sh bin)/notation"
helm_bin="$(bash hack/go-tools.sh helm-bin)/helm"

if [ -d "$demo/cluster/pids" ]; then bash hack/control-plane.sh down "$demo/cluster"; fi
rm -rf "$demo"; mkdir -p "$demo"
pids=()
cleanup() {
  if [ "$keep" = 1 ]; then
    echo
    echo "KEEP=1: still running. kubectl: $demo/cluster/bin/kubectl get itr -A"
    echo "Stop: kill ${pids[*]}; bash hack/control-plane.sh down $demo/cluster"
    return
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash hack/control-plane.sh down "$demo/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT
step() { printf '\n==> %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "a Kubernetes control plane on loopback (built once from its Go modules; minutes on a fresh machine)"
bash hack/control-plane.sh up "$demo/cluster" --owner-pid $$
k() { "$demo/cluster/bin/kubectl" "$@"; }

step "notary-server and docker-registry on loopback"
notary_port=$(free_port); registry_port=$(free_port)
(cd "$demo"
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=demo-ca \
   -keyout ca.key -out ca.crt 2>/dev/null
 openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
 printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
 openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile ext.cnf -out server.crt 2>/dev/null)
cat > "$demo/notary-server.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$notary_port","tls_key_file":"$demo/server.key","tls_cert_file":"$demo/server.crt"},
 "trust_service":{"type":"local"},"storage":{"backend":"memory"},"logging":{"level":"warn"}}
JSON
notary-server -config "$demo/notary-server.json" >"$demo/notary-server.log" 2>&1 & pids+=($!)
cat > "$demo/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $demo/registry}}
http: {addr: 127.0.0.1:$registry_port}
YAML
docker-registry serve "$demo/registry.yml" >"$demo/registry.log" 2>&1 & pids+=($!)
server="https://127.0.0.1:$notary_port"; reg="127.0.0.1:$registry_port"
for _ in $(seq 100); do
  curl -sf --cacert "$demo/ca.crt" "$server/_notary_server/health" >/dev/null && curl -sf "http://$reg/v2/" >/dev/null && break
  sleep 0.1
done

# --- images: pushed over the Registry API, signed with the notary CLI and cosign ------------
push() { # repo tag content -> prints the manifest digest
  local repo=$1 tag=$2 content=$3 layer cfg loc manifest
  blob() { # bytes-file -> digest
    local d; d="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
    loc=$(curl -s -D - -o /dev/null -X POST "http://$reg/v2/$repo/blobs/uploads/" | sed -n 's/^[Ll]ocation: *//p' | tr -d '\r')
    case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
    case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
    curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$loc" >/dev/null
    echo "$d"
  }
  printf '%s' "$content" > "$demo/layer"; layer=$(blob "$demo/layer")
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$layer" > "$demo/config"
  cfg=$(blob "$demo/config")
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$cfg" "$(wc -c < "$demo/config")" "$layer" "$(wc -c < "$demo/layer")")
  printf '%s' "$manifest" > "$demo/manifest"
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$demo/manifest" \
    "http://$reg/v2/$repo/manifests/$tag" >/dev/null
  echo "sha256:$(sha256sum "$demo/manifest" | cut -d' ' -f1)"
}
resolve() { # repo tag -> digest the registry serves now (what a pull runs)
  curl -s -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/$1/manifests/$2" \
    | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p' | tr -d '\r'
}
export NOTARY_ROOT_PASSPHRASE=demo NOTARY_TARGETS_PASSPHRASE=demo NOTARY_SNAPSHOT_PASSPHRASE=demo NOTARY_DELEGATION_PASSPHRASE=demo
n() { notary -d "$demo/trust" -s "$server" --tlscacert "$demo/ca.crt" "$@"; }
sign() { # repo tag [role] : signs what the registry serves now for repo:tag
  local d size
  d=$(resolve "$1" "$2"); size=$(curl -s -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/$1/manifests/$2" | sed -n 's/^[Cc]ontent-[Ll]ength: *//p' | tr -d '\r')
  if [ -n "${3:-}" ]; then n addhash "$reg/$1" "$2" "$size" --sha256 "${d#sha256:}" --roles "$3" -p >/dev/null
  else n addhash "$reg/$1" "$2" "$size" --sha256 "${d#sha256:}" -p >/dev/null; fi
}
delegate() { # repo role name days
  openssl ecparam -name prime256v1 -genkey -noout -out "$demo/$3.key"
  openssl req -new -x509 -sha256 -key "$demo/$3.key" -out "$demo/$3.crt" -days "$4" -subj "/CN=$3" 2>/dev/null
  n key import "$demo/$3.key" --role "$2" >/dev/null
  n delegation add "$reg/$1" "$2" "$demo/$3.crt" --all-paths -p >/dev/null
}
cosign() { (cd "$demo" && HOME="$demo" COSIGN_PASSWORD=demo "$cosign_bin" "$@"); }
notation() { XDG_CONFIG_HOME="$demo/notation" XDG_CACHE_HOME="$demo/notation-cache" "$notation_bin" "$@"; }

step "images pushed to the registry and signed with the notary CLI (and cosign, and notation)"
for app in web api payments batch tools legacy migrated checkout; do push "shop/$app" v1 "$app v1" >/dev/null; done
for app in web api payments batch legacy migrated; do n init "$reg/shop/$app" -p >/dev/null; done
sign shop/web v1; sign shop/api v1; sign shop/legacy v1; sign shop/migrated v1
push shop/api v1 "api v1, rebuilt and pushed without signing" >/dev/null   # drift
delegate shop/payments targets/releases bob 365; sign shop/payments v1 targets/releases
for id in $(n delegation list "$reg/shop/payments" | grep -oE '[0-9a-f]{64}' | sort -u); do
  n delegation remove "$reg/shop/payments" targets/releases "$id" -y -p >/dev/null 2>&1 || true
done                                                                           # revoked signer
delegate shop/batch targets/releases alice 3; sign shop/batch v1 targets/releases  # certificate expires in 3 days
# shop/tools: pushed, never signed.
cosign generate-key-pair --output-key-prefix release >/dev/null 2>&1
cosign sign --key release.key --tlog-upload=false --allow-http-registry --allow-insecure-registry -y \
  "$reg/shop/migrated@$(resolve shop/migrated v1)" >/dev/null 2>&1         # DCT and cosign
notation cert generate-test --default demo-release >/dev/null               # an X.509 signing key
notation sign --insecure-registry --signature-format cose \
  "$reg/shop/checkout@$(resolve shop/checkout v1)" >/dev/null 2>&1         # Notation only
n list "$reg/shop/web"
root_cert=$(python3 - "$demo/trust/tuf/$reg/shop/web/metadata/root.json" <<'PY'
import base64, json, sys
root = json.load(open(sys.argv[1]))["signed"]
kid = root["roles"]["root"]["keyids"][0]
print(base64.b64decode(root["keys"][kid]["keyval"]["public"]).decode())
PY
)

step "trustwatch installed with its Helm chart: helm install trustwatch charts/trustwatch -n trustwatch-system --create-namespace"
# The operator's pods cannot start here (no container runtime): the operator runs below as a
# process with the chart's ServiceAccount identity, and this script plays kubelet for the
# chart's pods at this host's address, so that the chart's Service leads to it.
host_ip=$(hostname -I | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1)
[ -n "$host_ip" ] || { echo "demo: no non-loopback IPv4 address (hostname -I) for the webhook's endpoint" >&2; exit 1; }
webhook_port=$(free_port); health_port=$(free_port)
KUBECONFIG="$demo/cluster/kubeconfig" "$helm_bin" install trustwatch charts/trustwatch -n trustwatch-system \
  --create-namespace --set "webhook.port=$webhook_port" | sed -n '/^NAME:/,/^REVISION:/p'
KUBECONFIG="$demo/cluster/kubeconfig" "$helm_bin" list -n trustwatch-system
k wait --for=condition=Established crd/trustroots.trustwatch.dev crd/imagetrustpolicies.trustwatch.dev crd/imagetrustreports.trustwatch.dev >/dev/null
indent() { sed "s/^/$(printf '%*s' "$1" '')/"; }
cat > "$demo/trust.yaml" <<YAML
apiVersion: trustwatch.dev/v1alpha1
kind: TrustRoot
metadata: {name: demo-notary}
spec:
  server: $server
  caBundle: |
$(indent 4 < "$demo/ca.crt")
  rootKeys:
    - name: demo-root
      publicKey: |
$(echo "$root_cert" | indent 8)
  refreshInterval: 10s
  expiryWarning: 7d
---
apiVersion: trustwatch.dev/v1alpha1
kind: TrustRoot
metadata: {name: demo-cosign}
spec:
  cosign:
    keys:
      - name: release
        publicKey: |
$(indent 10 < "$demo/release.pub")
  registry: {plainHTTP: true}
---
apiVersion: trustwatch.dev/v1alpha1
kind: TrustRoot
metadata: {name: demo-notation}
spec:
  notation:
    trustStores:
      ca:
        - name: demo-release
          pem: |
$(indent 12 < "$demo/notation/notation/localkeys/demo-release.crt")
    trustedIdentities: ["x509.subject: C=US, ST=WA, O=Notary, CN=demo-release"]
    verificationLevel: strict
  registry: {plainHTTP: true}
---
apiVersion: trustwatch.dev/v1alpha1
kind: ImageTrustPolicy
metadata: {name: shop}
spec:
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
  images:
    - pattern: $reg/shop/**
      trustRoot: demo-notary
    - pattern: $reg/shop/legacy
      trustRoots: [demo-notary, demo-cosign]
    - pattern: $reg/shop/migrated
      trustRoots: [demo-notary, demo-cosign]
    - pattern: $reg/shop/checkout
      trustRoots: [demo-notary, demo-notation]
  action: Audit
  interval: 30s
YAML
k create namespace shop >/dev/null
k apply -f "$demo/trust.yaml"
printf '{"apiVersion":"v1","kind":"Node","metadata":{"name":"demo-node"}}' | k apply -f - >/dev/null
k patch node demo-node --subresource=status --type=merge -p '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"played by hack/demo.sh"}]}}' >/dev/null
k patch node demo-node --type=merge -p '{"spec":{"taints":null}}' >/dev/null

step "workloads: Deployments, a StatefulSet, a DaemonSet, a Job and a bare Pod"
img() { echo "$reg/shop/$1:v1"; }
deploy() { # name image [kind]
  k -n shop create deployment "$1" --image="$2" >/dev/null
}
for app in web api legacy migrated checkout; do deploy "$app" "$(img "$app")"; done
cat <<YAML | k apply -f - >/dev/null
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: payments, namespace: shop}
spec:
  serviceName: payments
  selector: {matchLabels: {app: payments}}
  template:
    metadata: {labels: {app: payments}}
    spec: {containers: [{name: payments, image: $(img payments)}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: batch, namespace: shop}
spec:
  selector: {matchLabels: {app: batch}}
  template:
    metadata: {labels: {app: batch}}
    spec: {containers: [{name: batch, image: $(img batch)}]}
---
apiVersion: v1
kind: Pod
metadata: {name: tools, namespace: shop}
spec: {containers: [{name: tools, image: $(img tools)}]}
YAML

# The scheduler and kubelet this machine does not have: bind each pod to demo-node and write the
# digest its containers pulled (what the registry served for the tag at that moment).
kubelet() {
  while true; do
    k -n shop get pods -o json | python3 -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    m = p["metadata"]
    imgs = ",".join(c["name"] + "=" + c["image"] for c in p["spec"]["containers"])
    print(m["name"], m["uid"], p["spec"].get("nodeName", "-"), imgs)' | while read -r name uid node imgs; do
      if [ "$node" = "-" ]; then
        printf '{"apiVersion":"v1","kind":"Binding","metadata":{"name":"%s"},"target":{"apiVersion":"v1","kind":"Node","name":"demo-node"}}' "$name" \
          | k create --raw "/api/v1/namespaces/shop/pods/$name/binding" -f - >/dev/null 2>&1 || true
        continue
      fi
      [ -e "$demo/kubelet/$uid" ] && continue
      statuses=""
      IFS=, read -ra pairs <<< "$imgs"
      for pair in "${pairs[@]}"; do
        c=${pair%%=*}; image=${pair#*=}; ref=${image#"$reg"/}; repo=${ref%%:*}; tag=${ref##*:}
        d=$(resolve "$repo" "$tag")
        statuses+="{\"name\":\"$c\",\"image\":\"$image\",\"imageID\":\"$reg/$repo@$d\",\"ready\":true,\"started\":true,\"restartCount\":0,\"state\":{\"running\":{\"startedAt\":\"2026-12-01T00:00:00Z\"}}},"
      done
      body="{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"},{\"type\":\"ContainersReady\",\"status\":\"True\"}],\"containerStatuses\":[${statuses%,}]}}"
      k -n shop patch pod "$name" --subresource=status --type=merge -p "$body" >/dev/null 2>&1 && mkdir -p "$demo/kubelet" && touch "$demo/kubelet/$uid"
    done
    sleep 1
  done
}
kubelet > "$demo/kubelet.log" 2>&1 & pids+=($!)

step "the operator: trustwatch run, as system:serviceaccount:trustwatch-system:trustwatch (the chart's RBAC), serving the webhook"
KUBECONFIG="$demo/cluster/operator.kubeconfig" POD_NAME=trustwatch-demo RUST_LOG=info \
  "$tw" run --metrics-addr 127.0.0.1:0 --health-addr "127.0.0.1:$health_port" --scan-throttle 2s \
  --webhook-addr "$host_ip:$webhook_port" > "$demo/operator.log" 2>&1 & pids+=($!)
# The kubelet of the chart's pods: bound to demo-node, at this host's address, Ready as the
# operator's /readyz says; kube-controller-manager publishes them as the Service's endpoints.
operator_pods() {
  while true; do
    ready=False; curl -sf "http://127.0.0.1:$health_port/readyz" >/dev/null 2>&1 && ready=True
    for pod in $(k -n trustwatch-system get pods -l app.kubernetes.io/name=trustwatch -o name 2>/dev/null); do
      name=${pod#pod/}
      if [ -z "$(k -n trustwatch-system get "$pod" -o jsonpath='{.spec.nodeName}')" ]; then
        printf '{"apiVersion":"v1","kind":"Binding","metadata":{"name":"%s"},"target":{"apiVersion":"v1","kind":"Node","name":"demo-node"}}' "$name" \
          | k create --raw "/api/v1/namespaces/trustwatch-system/pods/$name/binding" -f - >/dev/null 2>&1 || true
      fi
      k -n trustwatch-system patch "$pod" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$host_ip\",\"podIPs\":[{\"ip\":\"$host_ip\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"$ready\"},{\"type\":\"ContainersReady\",\"status\":\"$ready\"}]}}" >/dev/null 2>&1 || true
    done
    sleep 2
  done
}
operator_pods > "$demo/operator-pods.log" 2>&1 & pids+=($!)
wait_for() { # what command...
  local what=$1; shift
  for _ in $(seq 120); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "demo: $what did not happen within 2 minutes; see $demo/operator.log" >&2; exit 1
}
verdict_is() { [ "$(k -n shop get itr "$1" -o jsonpath='{.status.verdict}' 2>/dev/null)" = "$2" ]; }
for pair in deployment-web-shop=Verified deployment-api-shop=DigestDrift statefulset-payments-shop=SignerRevoked \
            daemonset-batch-shop=ExpiringSoon pod-tools-shop=Unsigned deployment-migrated-shop=Verified \
            deployment-checkout-shop=ExpiringSoon; do
  wait_for "report ${pair%%=*} = ${pair#*=}" verdict_is "${pair%%=*}" "${pair#*=}"
done

step "kubectl get troot,itp,itr -A"
k get troot,itp,itr -A
step "kubectl get itr -n shop -o wide (the Migration column: the migration off Docker Content Trust)"
k get itr -n shop -o wide
step "the Notation-signed checkout image, as trustwatch and as notation verify see it (ExpiringSoon: notation cert generate-test certificates live one day)"
k -n shop get itr deployment-checkout-shop -o jsonpath='{range .status.containers[0].trustRoots[*]}{.name}: {.format} {.verdict} ({.reason}){"\n"}{end}'
mkdir -p "$demo/notation/notation"
cat > "$demo/notation/notation/trustpolicy.json" <<JSON
{"version": "1.0", "trustPolicies": [{"name": "demo", "registryScopes": ["*"],
  "signatureVerification": {"level": "strict"}, "trustStores": ["ca:demo-release"],
  "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary, CN=demo-release"]}]}
JSON
notation verify --insecure-registry "$reg/shop/checkout@$(resolve shop/checkout v1)" 2>&1 | tail -1
step "why the drift (kubectl get itr -n shop deployment-api-shop -o jsonpath='{.status.containers[0].message}')"
k -n shop get itr deployment-api-shop -o jsonpath='{.status.containers[0].message}'; echo
step "events (kubectl get events -n shop --field-selector reportingComponent=trustwatch)"
k -n shop get events --field-selector reportingComponent=trustwatch --sort-by=.metadata.creationTimestamp \
  -o custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message

step "the drifted tag is re-signed for what runs: the drift clears by itself"
sign shop/api v1
wait_for "the drift to clear" verdict_is deployment-api-shop Verified
k -n shop get itr deployment-api-shop

step "the policy switches to Quarantine: the unsigned pod is labelled and a deny-all NetworkPolicy isolates it"
k patch itp shop --type=merge -p '{"spec":{"action":"Quarantine"}}' >/dev/null
quarantined() { [ "$(k -n shop get pod tools -o jsonpath='{.metadata.labels.trustwatch\.dev/quarantined}')" = true ]; }
wait_for "the quarantine" quarantined
k -n shop get pods -L trustwatch.dev/quarantined
k -n shop get networkpolicy trustwatch-quarantine -o yaml | sed -n '/^spec:/,$p'

step "the unsigned image is signed: its pod is released (payments stays quarantined: its signer was revoked)"
n init "$reg/shop/tools" -p >/dev/null; sign shop/tools v1
released() { ! quarantined; }
wait_for "the release" released
k -n shop get pods -L trustwatch.dev/quarantined
k get itp shop

step "back to Audit: every pod is released and the NetworkPolicy removed"
k patch itp shop --type=merge -p '{"spec":{"action":"Audit"}}' >/dev/null
no_policy() { ! k -n shop get networkpolicy trustwatch-quarantine >/dev/null 2>&1; }
wait_for "the NetworkPolicy removal" no_policy
k -n shop get pods -L trustwatch.dev/quarantined

step "the same policy at the door: spec.admission.mode Enforce, and kubectl apply of a Deployment with an unsigned image"
k patch itp shop --type=merge -p '{"spec":{"admission":{"mode":"Enforce"}}}' >/dev/null
push shop/rogue v1 "rogue v1, never signed" >/dev/null
deployment_yaml() { # name image
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s, namespace: shop}\nspec:\n  selector: {matchLabels: {app: %s}}\n  template:\n    metadata: {labels: {app: %s}}\n    spec: {containers: [{name: app, image: "%s"}]}\n' "$1" "$1" "$1" "$2"
}
deployment_yaml rogue "$(img rogue)" > "$demo/rogue.yaml"
deployment_yaml web2 "$(img web)" > "$demo/web2.yaml"
refused() { ! k apply --dry-run=server -f "$demo/rogue.yaml" >/dev/null 2>&1; }
wait_for "the webhook to answer" refused
echo "\$ cat rogue.yaml"; cat "$demo/rogue.yaml"
echo "\$ kubectl apply -f rogue.yaml"
k apply -f "$demo/rogue.yaml" 2>&1 || true
echo "\$ kubectl apply --dry-run=server -f web2.yaml   # the same Deployment with a signed image: admitted"
k apply --dry-run=server -f "$demo/web2.yaml" 2>&1
k get itp shop

step "the same decisions offline: trustwatch audit over kubectl get pods,replicasets,namespaces -A -o json"
k get pods,replicasets,jobs,namespaces -A -o json > "$demo/cluster.json"
"$tw" audit -f "$demo/trust.yaml" --pods "$demo/cluster.json" || true
echo
echo "demo done: the operator verified every running digest, reported, quarantined and released."
