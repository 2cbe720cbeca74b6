# Benchmarks (owned by benchmarks/): `make bench` runs the standard
# scenarios against an in-process fleetcore on a fresh database each and
# writes JSON, Markdown and SVG per scenario to $(BENCH_OUT), then prints a
# summary table (the one in benchmarks/README.md). A few minutes in all.

BENCH_OUT       ?= var/bench
BENCH_DURATION  ?= 20s
BENCH_SCENARIOS ?= steady burst many-connections outage rules poison wasm
BENCH_FLAGS     ?=
# The config `make run` uses; the benchmark overrides database, listeners,
# API address, spool dir and queue names.
BENCH_CONFIG    ?= $(CONFIG)

.PHONY: bench bench-summary bench-wasm-go

bench-wasm-go: ## issue-13 Go benchmarks: WASM decoders (Go guests, WAT) vs native, per frame and per idle connection
	$(GO) test -run x -bench PortRatio -benchtime 20000x ./protocols/wasm/examples
	$(GO) test -run x -bench PortIdle -benchtime 1x ./protocols/wasm/examples
	$(GO) test -run x -bench Ratio -benchtime 20000x ./plugins/wasmdecoder && $(GO) test -run x -bench IdleSession -benchtime 1x ./plugins/wasmdecoder

bench: build services ## run the benchmark scenarios (a few minutes); results in var/bench/
	@mkdir -p $(BENCH_OUT)
	@set -e; for s in $(BENCH_SCENARIOS); do \
	  d=$(BENCH_DURATION); rows=50000; \
	  case $$s in steady) rows=100000;; burst) d=30s;; rules) d=45s;; many-connections) d=40s;; poison) d=40s;; wasm) d=40s;; esac; \
	  echo "== $$s ($$d)"; \
	  ./$(BIN) bench -scenario $$s -config $(BENCH_CONFIG) -duration $$d -ref-rows $$rows -json $(BENCH_OUT)/$$s.json $(BENCH_FLAGS); \
	done
	@$(MAKE) --no-print-directory bench-summary

bench-summary: ## print the summary table of the last `make bench`
	@./$(BIN) bench -summary $(foreach s,$(BENCH_SCENARIOS),$(wildcard $(BENCH_OUT)/$(s).json))
