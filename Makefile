# trustwatch: the command index. CI runs `bash .ci/run`, which runs `make test`.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test deps fmt-check lint unit demo manifests bench run build e2e fuzz

## test: everything CI checks: formatting, clippy -D warnings, all tests against real peers.
test: deps fmt-check lint unit

## deps: install the real peers the tests use (Debian packages), when missing.
deps:
	@missing=""; \
	for bin in notary notary-server notary-signer docker-registry promtool prometheus openssl curl; do \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$bin"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing test peers (missing:$$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq notary docker-registry prometheus openssl curl >/dev/null; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

build:
	$(CARGO) build

## demo: a real notary-server, images signed with the notary CLI, and trustwatch verifying them.
demo: deps build
	bash hack/demo.sh

## manifests: regenerate crds/ from the Rust types.
manifests:
	TRUSTWATCH_UPDATE_CRDS=1 $(CARGO) test --test crds committed_crds_match_the_rust_types

## bench: verification throughput against a real notary-server (numbers in README).
bench: deps
	$(CARGO) run --release --example bench

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
