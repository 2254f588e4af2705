#!/usr/bin/env bash
# One-shot verification cost: `trustwatch verify` against `notation verify` and `cosign verify`
# on the same image, trust configuration and loopback docker-registry. Prints the median wall
# time and CPU time (user+sys) of RUNS runs of each.
#
#   cargo build --release && bash hack/oneshot-bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-9}
TW=${TW:-target/release/trustwatch}
BIN=$(bash hack/go-tools.sh bin)
[ -x "$TW" ] || { echo "build first: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
reg_pid=""
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
host=127.0.0.1:$port
for _ in $(seq 100); do curl -sf "http://$host/v2/" >/dev/null && break; sleep 0.1; done

export HOME=$work XDG_CONFIG_HOME=$work/xdg XDG_CACHE_HOME=$work/cache COSIGN_PASSWORD=bench
cd "$work"
echo "notation build" >n.txt
echo "cosign build" >c.txt
nd=$("$BIN/oras" push --plain-http "$host/bench/notation:v1" n.txt --format go-template --template '{{.digest}}')
cd_=$("$BIN/oras" push --plain-http "$host/bench/cosign:v1" c.txt --format go-template --template '{{.digest}}')
"$BIN/notation" cert generate-test --default bench >/dev/null
"$BIN/notation" sign --insecure-registry "$host/bench/notation@$nd" >/dev/null 2>&1
mkdir -p "$XDG_CONFIG_HOME/notation/truststore/x509/ca/bench"
cp "$XDG_CONFIG_HOME/notation/localkeys/bench.crt" "$XDG_CONFIG_HOME/notation/truststore/x509/ca/bench/"
cat >"$XDG_CONFIG_HOME/notation/trustpolicy.json" <<'EOF'
{"version":"1.0","trustPolicies":[{"name":"bench","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:bench"],"trustedIdentities":["*"]}]}
EOF
"$BIN/cosign" generate-key-pair >/dev/null 2>&1
"$BIN/cosign" sign --key cosign.key --tlog-upload=false --allow-http-registry --allow-insecure-registry -y "$host/bench/cosign@$cd_" >/dev/null 2>&1
cd - >/dev/null

measure() { # name, command...: median wall and CPU (user+sys, from wait4's rusage)
  local name=$1; shift
  "$@" >/dev/null 2>&1 || { echo "$name failed: $*" >&2; "$@"; exit 1; }
  python3 - "$name" "$RUNS" "$@" <<'PY'
import os, subprocess, sys, time, statistics
name, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
walls, cpus = [], []
for _ in range(runs):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    walls.append(time.perf_counter() - t)
    cpus.append(ru.ru_utime + ru.ru_stime)
    assert os.waitstatus_to_exitcode(status) == 0, f"{name}: exit {status}"
print(f"{name:<30} median wall {statistics.median(walls)*1000:7.1f} ms   median cpu {statistics.median(cpus)*1000:7.1f} ms   ({runs} runs)")
PY
}

nref="$host/bench/notation@$nd"
cref="$host/bench/cosign@$cd_"
measure "notation verify" "$BIN/notation" verify --insecure-registry "$nref"
measure "trustwatch verify (Notation)" "$TW" verify --notation-config "$XDG_CONFIG_HOME/notation" --plain-http "$nref"
measure "cosign verify" "$BIN/cosign" verify --key "$work/cosign.pub" --insecure-ignore-tlog=true \
  --allow-http-registry --allow-insecure-registry "$cref"
measure "trustwatch verify (cosign)" "$TW" verify --key "$work/cosign.pub" --plain-http "$cref"
if [ -n "${PROFILE:-}" ]; then
  perf record -q -F 20000 -g -o "$PROFILE.data" -- "$TW" verify --notation-config "$XDG_CONFIG_HOME/notation" --plain-http "$nref" >/dev/null 2>&1
  perf report -i "$PROFILE.data" --no-children --sort dso,symbol 2>/dev/null >"$PROFILE.txt"
  echo "profile of trustwatch verify (Notation): $PROFILE.txt"
fi
