# fleetcore: `make run` runs the server on configs/fleetcore.hcl against the
# local Postgres; `make test` runs every test (starting the services first);
# `go test -short ./...` (or `make test-short`) is the quick loop without
# services, `make test-integration` runs only the TestIntegration… tests.

GO        ?= go
GOBIN     := $(shell $(GO) env GOPATH)/bin
BIN       := bin/fleetcore
CONFIG    ?= configs/fleetcore.hcl
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 5s
STATICCHECK := $(GOBIN)/staticcheck
# golangci-lint runs the linters of .golangci.yml (the house rules and the
# import graph of DESIGN.md §2); installed through the Go module proxy.
GOLANGCI_VERSION := v2.15.0
GOLANGCI    := $(GOBIN)/golangci-lint

.PHONY: all build run test test-tools test-go test-short test-integration lint deadcode fmt fuzz fuzz-short services tools clean help

all: build

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

# Fragments for rules, benchmarks and others (each owns its targets).
-include mk/*.mk

build: rules decoders ## build bin/fleetcore with the built-in WASM rules embedded (and the WASM decoders)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fleetcore

run: build services ## run fleetcore on $(CONFIG) against the local Postgres
	./$(BIN) serve -config $(CONFIG)

services: ## install (apt-get, if missing) and start PostgreSQL and RabbitMQ
	@bash .ci/services.sh

# What only the tests need beyond the services: headless Chromium for the
# dashboard end-to-end test, promtool (Debian's prometheus package) for the
# /metrics and alerting-rule tests and HAProxy for the load-balancer tests
# (apt-get, when missing). `make run` needs none.
test-tools: ## install (apt-get, if missing) what the tests need beyond the services: Chromium, promtool, HAProxy
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@command -v promtool >/dev/null 2>&1 || { echo "installing promtool (prometheus)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v haproxy >/dev/null 2>&1 || { echo "installing haproxy"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq haproxy >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }; }

tools: $(STATICCHECK) $(GOLANGCI) ## install the developer tools (staticcheck, golangci-lint)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Reinstalled when the pinned version changes.
$(GOLANGCI): Makefile
	@v=$$($@ version --short 2>/dev/null | sed 's/^v*/v/'); \
	  if [ "$$v" != "$(GOLANGCI_VERSION)" ]; then \
	    echo "installing golangci-lint $(GOLANGCI_VERSION)"; \
	    $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION); \
	  fi; touch $@

test: services test-tools tools rules rules-examples lint test-go fuzz-short $(TEST_PREREQS) ## run every test (what CI runs)

test-go: ## go test with the race detector (every test, integration included)
	CI=$${CI:-true} $(GO) test -race -count=1 -timeout 30m ./...

test-short: ## the quick loop: unit tests only, no services (go test -short)
	$(GO) test -short -count=1 ./...

test-integration: services test-tools rules rules-examples ## only the TestIntegration… tests (real Postgres and RabbitMQ), race detector on
	CI=$${CI:-true} $(GO) test -race -count=1 -timeout 30m -run '^TestIntegration' ./...

lint: $(STATICCHECK) $(GOLANGCI) ## gofmt check, go vet, staticcheck, golangci-lint (.golangci.yml), go mod tidy leaves no diff
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GOLANGCI) run ./...
	@$(GO) mod tidy -diff || { echo "go mod tidy would change go.mod/go.sum"; exit 1; }

deadcode: ## list the functions nothing calls, tests included (review before removing: public SDK API stays)
	$(GO) run golang.org/x/tools/cmd/deadcode@v0.52.0 -test ./...

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

fuzz-short: ## run every Fuzz target for a few seconds ($(FUZZTIME))
	@bash .ci/fuzz.sh $(FUZZTIME)

fuzz: ## run every Fuzz target for FUZZTIME (default 60s here)
	@bash .ci/fuzz.sh $(if $(filter 5s,$(FUZZTIME)),60s,$(FUZZTIME))

clean: ## remove build output and local state
	rm -rf bin var checks-wasm/build
