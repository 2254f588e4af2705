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
echo "==> signing $gun with the notary CLI"
n init "$gun" -p >/dev/null
n addhash "$gun" v1 1234 --sha256 "$(digest app-v1)" -p >/dev/null
n addhash "$gun" v2 1234 --sha256 "$(digest app-v2)" -p >/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$demo/alice.key"
openssl req -new -x509 -sha256 -key "$demo/alice.key" -out "$demo/alice.crt" -days 365 -subj /CN=alice 2>/dev/null
n key import "$demo/alice.key" --role targets/releases >/dev/null
n delegation add "$gun" targets/releases "$demo/alice.crt" --all-paths -p >/dev/null
n addhash "$gun" v3 1234 --sha256 "$(digest app-v3)" --roles targets/releases -p >/dev/null
n list "$gun"

# The pinned root key: the root certificate of the repository, as an operator would pin it.
python3 - "$demo/trust/tuf/$gun/metadata/root.json" > "$demo/root.crt" <<'PY'
import base64, json, sys
root = json.load(open(sys.argv[1]))["signed"]
kid = root["roles"]["root"]["keyids"][0]
sys.stdout.write(base64.b64decode(root["keys"][kid]["keyval"]["public"]).decode())
PY

tw="${TRUSTWATCH:-$root/target/debug/trustwatch}"
[ -x "$tw" ] || cargo build --quiet
v1=$(digest app-v1); v2=$(digest app-v2)
echo
echo "==> trustwatch verify: v1 and v3 are trusted; v2 runs a digest that is not the one signed (drift)"
set +e
"$tw" verify --server "$server" --ca-file "$demo/ca.crt" --root-key "$demo/root.crt" \
  "$gun:v1@sha256:$v1" "$gun:v3" "$gun:v2@sha256:$v1" "registry.demo.local/team/unsigned:v1"
code=$?
echo "(exit code $code: 1 because not every image is verified)"
echo
echo "==> the same as JSON, requiring the signer 'releases'"
"$tw" verify --server "$server" --ca-file "$demo/ca.crt" --root-key "$demo/root.crt" --signer releases -o json "$gun:v3" "$gun:v1"
echo
echo "==> expiry forecasting: with a 1100-day warning window the 3-year targets metadata is ExpiringSoon"
"$tw" verify --server "$server" --ca-file "$demo/ca.crt" --root-key "$demo/root.crt" --expiry-warning 1100d "$gun:v3"
echo
echo "==> an audit at a later instant (--now): 20 days ahead the 14-day timestamp has expired"
"$tw" verify --server "$server" --ca-file "$demo/ca.crt" --root-key "$demo/root.crt" \
  --now "$(date -u -d '+20 days' +%Y-%m-%dT%H:%M:%SZ)" "$gun:v3"
set -e
