#!/usr/bin/env bash
# make demo: a real notary-server on loopback, example images signed with the real notary
# CLI, and `trustwatch verify` run on them. Everything lives in .demo/ and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo="$root/.demo"
rm -rf "$demo"; mkdir -p "$demo"
command -v notary-server >/dev/null || { echo "installing notary (Debian package)"; apt-get install -y -qq notary >/dev/null; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server="https://127.0.0.1:$port"

echo "==> TLS for the local Notary server"
(cd "$demo"
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=demo-ca \
   -keyout ca.key -out ca.crt 2>/dev/null
 openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
 printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
 openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile ext.cnf -out server.crt 2>/dev/null)

cat > "$demo/server.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$port","tls_key_file":"$demo/server.key","tls_cert_file":"$demo/server.crt"},
 "trust_service":{"type":"local"},"storage":{"backend":"memory"},"logging":{"level":"warn"}}
JSON
echo "==> notary-server on $server"
notary-server -config "$demo/server.json" >"$demo/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf --cacert "$demo/ca.crt" "$server/_notary_server/health" >/dev/null && break; sleep 0.1; done

export NOTARY_ROOT_PASSPHRASE=demo NOTARY_TARGETS_PASSPHRASE=demo NOTARY_SNAPSHOT_PASSPHRASE=demo NOTARY_DELEGATION_PASSPHRASE=demo
n() { notary -d "$demo/trust" -s "$server" --tlscacert "$demo/ca.crt" "$@"; }
digest() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

gun=registry.demo.local/team/app
echo "==> signing example images with the notary CLI"
n init "$gun" -p >/dev/null
n addhash "$gun" v1 1234 --sha256 "$(digest app-v1)" -p >/dev/null
n addhash "$gun" v2 1234 --sha256 "$(digest app-v2)" -p >/dev/null
# A signer whose certificate expires in 3 days: verified, but ExpiringSoon.
openssl ecparam -name prime256v1 -genkey -noout -out "$demo/alice.key"
openssl req -new -x509 -sha256 -key "$demo/alice.key" -out "$demo/alice.crt" -days 3 -subj /CN=alice 2>/dev/null
n key import "$demo/alice.key" --role targets/releases >/dev/null
n delegation add "$gun" targets/releases "$demo/alice.crt" --all-paths -p >/dev/null
n addhash "$gun" v3 1234 --sha256 "$(digest app-v3)" --roles targets/releases -p >/dev/null
# A repository whose signer is then revoked (its only key removed from the delegation).
pay=registry.demo.local/team/payments
n init "$pay" -p >/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$demo/bob.key"
openssl req -new -x509 -sha256 -key "$demo/bob.key" -out "$demo/bob.crt" -days 365 -subj /CN=bob 2>/dev/null
n key import "$demo/bob.key" --role targets/releases >/dev/null
n delegation add "$pay" targets/releases "$demo/bob.crt" --all-paths -p >/dev/null
n addhash "$pay" v1 1234 --sha256 "$(digest pay-v1)" --roles targets/releases -p >/dev/null
bob_id=$(n delegation list "$pay" | grep -oE '[0-9a-f]{64}' | head -n1)
n delegation remove "$pay" targets/releases "$bob_id" -y -p >/dev/null
n list "$gun"

# The pinned root key: the root certificate of the repository, as an operator would pin it
# (notary reuses one root key for every repository in a trust dir).
python3 - "$demo/trust/tuf/$gun/metadata/root.json" > "$demo/root.crt" <<'PY'
import base64, json, sys
root = json.load(open(sys.argv[1]))["signed"]
kid = root["roles"]["root"]["keyids"][0]
sys.stdout.write(base64.b64decode(root["keys"][kid]["keyval"]["public"]).decode())
PY

tw="${TRUSTWATCH:-$root/target/debug/trustwatch}"
[ -x "$tw" ] || cargo build --quiet
v1=$(digest app-v1)
set +e
echo
echo "==> trustwatch verify (one shot, as in CI pipelines): v1 is trusted, v2@<v1 digest> has drifted"
"$tw" verify --server "$server" --ca-file "$demo/ca.crt" --root-key "$demo/root.crt" \
  "$gun:v1" "$gun:v2@sha256:$v1" "registry.demo.local/team/unsigned:v1"
echo "(exit code $?: 1 because not every image is verified)"

echo
echo "==> the operator's view, offline: trustwatch audit over example pods"
indent() { sed "s/^/$(printf '%*s' "$1" '')/" "$2"; }
cat > "$demo/trust.yaml" <<YAML
apiVersion: trustwatch.dev/v1alpha1
kind: TrustRoot
metadata:
  name: demo
spec:
  server: $server
  caBundle: |
$(indent 4 "$demo/ca.crt")
  rootKeys:
    - name: demo-root
      publicKey: |
$(indent 8 "$demo/root.crt")
  expiryWarning: 7d
---
apiVersion: trustwatch.dev/v1alpha1
kind: ImageTrustPolicy
metadata:
  name: team
spec:
  action: Quarantine
  images:
    - pattern: registry.demo.local/team/**
      trustRoot: demo
    - pattern: registry.demo.local/team/payments
      trustRoot: demo
      signers: [releases]
YAML
pod() { # name deployment image running-digest
  cat <<JSON
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$1","namespace":"shop","uid":"uid-$1","labels":{"pod-template-hash":"5d8f7"},
 "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"$2-5d8f7","uid":"rs-$2","controller":true}]},
 "spec":{"containers":[{"name":"app","image":"$3"}]},
 "status":{"containerStatuses":[{"name":"app","image":"$3","imageID":"${3%%:*}@sha256:$4","ready":true,"restartCount":0}]}}
JSON
}
{
  echo '{"apiVersion":"v1","kind":"List","items":['
  pod web-5d8f7-a web "$gun:v1" "$v1"; echo ,
  pod api-5d8f7-a api "$gun:v2" "$v1"; echo ,
  pod batch-5d8f7-a batch "$gun:v3" "$(digest app-v3)"; echo ,
  pod payments-5d8f7-a payments "$pay:v1" "$(digest pay-v1)"; echo ,
  pod cache-5d8f7-a cache "docker.io/library/redis:7" "$(digest redis)"
  echo ']}'
} > "$demo/pods.json"
"$tw" audit -f "$demo/trust.yaml" --pods "$demo/pods.json"
echo "(exit code $?)"
echo
echo "==> one report as the operator writes it (kubectl get imagetrustreport -n shop deployment-api-team -o yaml)"
"$tw" audit -f "$demo/trust.yaml" --pods "$demo/pods.json" -o json \
  | python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; print(json.dumps([i for i in items if i["metadata"]["name"]=="deployment-api-team"][0], indent=2))'
set -e
