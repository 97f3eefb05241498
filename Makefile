# modelgate — make help lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
WASM_SRC  := target/wasm32-wasip1/release/modelgate.wasm
WASM      := build/modelgate.wasm
CARGO     ?= cargo
# Benchmarks: BENCH_ARGS for tests/bench.py (wrk), FLOW_BENCH_REQUESTS for the
# engine's warm path (tests/flow_bench.py, native and in V8), BODY_BENCH_ITERATIONS for
# the body benchmark; CI runs each once with tiny counts.
BENCH_ARGS ?=
BODY_BENCH_ITERATIONS ?= 5
FLOW_BENCH_REQUESTS ?= 20000
FLOW_BENCH_ARGS ?=
# The soak: tests/soak.py's arguments (--short in CI).
SOAK_ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: $(VENV)/.installed ## Install the wasm target, the test virtualenv (Envoy, SDKs) and redis-server (budgets)
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

.PHONY: wasm
wasm: ## Build build/modelgate.wasm (release, wasm32-wasip1)
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	$(CARGO) build --release --target wasm32-wasip1 -p modelgate-filter
	@mkdir -p build
	cp $(WASM_SRC) $(WASM)
	@ls -l $(WASM) | awk '{print "modelgate.wasm: " $$5 " bytes"}'

.PHONY: ledger
ledger: ## Build the budget ledger service (target/release/modelgate-ledger)
	$(CARGO) build --release -p modelgate-ledger

.PHONY: lint
lint: ## cargo fmt --check and clippy (warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 -p modelgate-filter -- -D warnings

.PHONY: unit
unit: ## Unit tests (cargo test --workspace), including the no-panic run
	$(CARGO) test --workspace

.PHONY: e2e
e2e: setup wasm explorer-build browser ## End-to-end tests: real Envoy + modelgate.wasm + official SDKs
	$(PY) -m pytest tests -q

.PHONY: test
test: setup lint unit e2e fuzz-smoke ## Every test (what CI runs)

FUZZ_TARGETS := config spiffe_id jwt_svid json_body multipart driver xfcc x509 path stream_usage jsonrpc budget
FUZZ_SECONDS ?= 20

.PHONY: fuzz-smoke
fuzz-smoke: ## Each cargo-fuzz target for FUZZ_SECONDS (20 s; nightly); make fuzz-smoke FUZZ_SECONDS=600 for a real run
	@rustup toolchain list | grep -q '^nightly' || { echo "cargo fuzz needs the nightly toolchain (rustup toolchain install nightly)"; exit 1; }
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd policies/fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && \
		cargo +nightly fuzz run -O $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
			| grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|SUMMARY|panicked|ERROR' ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

.PHONY: soak
soak: setup wasm ## The soak (docs/reliability.md): 200,000 requests at c=64, faults, 20 policy swaps; SOAK_ARGS=--short is CI's
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(CARGO) build -p modelgate-cli
	$(CARGO) build --release -p modelgate-ledger
	cd tests && ../$(PY) soak.py $(SOAK_ARGS)

.PHONY: bench
bench: setup wasm ledger ## Benchmarks: body decision time per MiB, throughput with and without modelgate (wrk)
	$(CARGO) bench -p modelgate-policies --bench body -- $(BODY_BENCH_ITERATIONS)
	@command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs; }
	cd tests && ../$(PY) flow_bench.py --requests $(FLOW_BENCH_REQUESTS) $(FLOW_BENCH_ARGS)
	$(CARGO) build --release --target wasm32-wasip1 -p modelgate-bench-empty
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	cd tests && ../$(PY) bench.py $(BENCH_ARGS)

EXPLORER := build/explorer

.PHONY: explorer-build
explorer-build: setup ## Build the browser policy explorer (the engine through wasm-bindgen) into build/explorer
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@v=$$(grep -A1 '^name = "wasm-bindgen"$$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p'); \
		wasm-bindgen --version 2>/dev/null | grep -q " $$v" || $(CARGO) install wasm-bindgen-cli --version "=$$v"
	$(CARGO) build --release --target wasm32-unknown-unknown -p modelgate-explorer
	wasm-bindgen --target web --no-typescript --out-dir $(EXPLORER) target/wasm32-unknown-unknown/release/modelgate_explorer.wasm
	cp explorer/web/index.html explorer/web/app.js $(EXPLORER)/
	$(PY) explorer/demo_policy.py > $(EXPLORER)/demo-policy.json

.PHONY: explorer
explorer: explorer-build ## The policy explorer on http://127.0.0.1:8080
	$(PY) -m http.server --bind 127.0.0.1 --directory $(EXPLORER) 8080

.PHONY: browser
browser: ## Debian's Chromium and ChromeDriver for the explorer's browser test (installed when missing)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

.PHONY: image
image: setup wasm ## The Wasm OCI image (Istio's compat variant) as an OCI layout in build/oci, without Docker
	$(PY) envoy/image/oci.py --wasm $(WASM) --out build/oci

.PHONY: run
run: setup wasm ## The local demo: Envoy + filter + test upstream + sample SVIDs
	$(PY) envoy/demo/run.py

.PHONY: clean
clean: ## Remove build outputs
	$(CARGO) clean
	rm -rf build
