# trustwatch: the command index. CI runs `bash .ci/run`, which runs `make test`.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test deps debian-peers go-peers python-peers fuzz-tool fmt-check lint fuzz-quick unit cluster demo manifests bench run build e2e fuzz control-plane

## test: everything CI checks: formatting, clippy -D warnings, a few seconds of fuzzing per
## target, and every test against real peers, the cluster suites on a real control plane included.
test: deps fmt-check lint fuzz-quick unit

## deps: install and build the real peers the tests use, when missing: Debian packages (notary,
## docker-registry, prometheus), the Go-built control plane and signing tools (cached outside
## the repository, keyed by version), python-tuf (a cached virtualenv), cargo-fuzz.
deps: debian-peers go-peers python-peers fuzz-tool

debian-peers:
	@missing=""; \
	for bin in notary notary-server notary-signer docker-registry promtool prometheus openssl curl; do \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$bin"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing test peers (missing:$$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq notary docker-registry prometheus openssl curl >/dev/null; \
	fi

## go-peers: etcd, kube-apiserver, kube-controller-manager and kubectl; notation, cosign, oras,
## olareg. Minutes on a fresh machine, once per version (hack/versions.env).
go-peers:
	bash hack/control-plane.sh build
	bash hack/go-tools.sh build

## python-peers: python-tuf, the TUF reference implementation, in a virtualenv cached outside the
## repository (hack/python-tools.sh): it makes the Sigstore-style TUF repositories of the tests.
python-peers:
	bash hack/python-tools.sh build

fuzz-tool:
	@cargo fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --version ^0.13 --locked --quiet

fuzz-quick:
	bash hack/fuzz.sh quick

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets --no-fail-fast

## cluster: only the suites on the embedded control plane (tests/cluster, tests/cluster_faults).
cluster:
	$(CARGO) test --test cluster --test cluster_faults

## control-plane: a control plane to try trustwatch on (stop it with `bash hack/control-plane.sh down .cluster`).
control-plane:
	bash hack/control-plane.sh up .cluster

build:
	$(CARGO) build

## demo: the operator on the embedded control plane, against a real notary-server and registry.
demo: debian-peers go-peers build
	bash hack/demo.sh

## manifests: regenerate crds/ from the Rust types, and the chart's copies of them and of the
## alert rules (charts/trustwatch/files/).
manifests:
	TRUSTWATCH_UPDATE_CRDS=1 $(CARGO) test --test crds committed_crds_match_the_rust_types
	TRUSTWATCH_UPDATE_CHART=1 $(CARGO) test --test chart the_chart_carries_the_current_crds_and_alert_rules

## bench: BENCHMARKS.md's figures: cold verification beside notary list, cosign verify and
## notation verify (benches/verify.rs); the admission webhook's cold and warm latency under 50
## concurrent reviews per format (benches/admission.rs, TRUSTWATCH_BENCH_ROUNDS warm bursts);
## the operator at 1k, 10k and 50k pods on the embedded
## control plane (benches/scale.rs, about 20 minutes); the engine's inner loops
## (examples/bench.rs). Results go to stdout and target/bench/. Knobs: TRUSTWATCH_BENCH_REPS,
## TRUSTWATCH_BENCH_SIZES, TRUSTWATCH_BENCH_WINDOW, TRUSTWATCH_BENCH_DEFAULT_INTERVAL=0,
## TRUSTWATCH_BASELINE_BIN (another trustwatch binary measured side by side).
bench: deps
	mkdir -p target/bench
	$(CARGO) bench --bench verify > target/bench/verify.md && cat target/bench/verify.md
	$(CARGO) bench --bench admission > target/bench/admission.md && cat target/bench/admission.md
	$(CARGO) bench --bench scale > target/bench/scale.md && cat target/bench/scale.md
	$(CARGO) run --release --example bench > target/bench/engine.txt && cat target/bench/engine.txt

## fuzz: cargo-fuzz on the pure cores (TUF metadata, canonical JSON, image references,
## WWW-Authenticate) from real-metadata seed corpora, 60 s per target; `bash hack/fuzz.sh quick`
## is the few-seconds run for `make test`. Needs `cargo install cargo-fuzz --version ^0.13 --locked`.
fuzz:
	bash hack/fuzz.sh

## e2e: the cluster tests on a throwaway kind cluster (needs docker and kind; see tests/e2e).
e2e:
	bash hack/e2e-kind.sh

## run: the operator against the current kubeconfig.
run:
	$(CARGO) run -- run
