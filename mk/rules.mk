# WASM quality rules (owned by checks-wasm/ and plugins/wasmrule).
# `make rules` builds every built-in rule into checks-wasm/build/rules/
# <rule name>.wasm (the default rules.dir that `fleetcore serve` watches) with
# the go tool only, and gzipped into checks-wasm/builtinrules/rules/ for the
# binary to embed (`make build` depends on it); `make rules-examples` builds the WAT and AssemblyScript
# examples into checks-wasm/build/examples/ (installs wabt with apt-get and
# the AssemblyScript compiler with npm when missing); `make rules-test` runs
# their tests through the real host.

RULES_DIR    := checks-wasm/rules
RULES_BUILD  := checks-wasm/build
RULE_NAMES   := $(notdir $(patsubst %/,%,$(dir $(wildcard $(RULES_DIR)/*/main.go))))
RULE_WASM    := $(addprefix $(RULES_BUILD)/rules/,$(addsuffix .wasm,$(RULE_NAMES)))
# The same rules gzipped into checks-wasm/builtinrules/rules/, embedded in
# the fleetcore binary (served while rules.dir is missing or empty).
BUILTIN_DIR  := checks-wasm/builtinrules/rules
BUILTIN_GZ   := $(addprefix $(BUILTIN_DIR)/,$(addsuffix .wasm.gz,$(RULE_NAMES)))
RULE_DEPS    := $(wildcard checks-wasm/sdk/*.go $(RULES_DIR)/*.go) go.mod
WAT_SRC      := $(wildcard checks-wasm/examples/wat/*.wat)
WAT_WASM     := $(RULES_BUILD)/examples/example.speed_range.wasm
AS_DIR       := checks-wasm/examples/assemblyscript
AS_WASM      := $(RULES_BUILD)/examples/example.obd_plausibility.wasm
AS_SDK       := $(wildcard checks-wasm/sdk-as/assembly/*.ts)

.PHONY: rules rules-examples rules-test rules-tools rules-clean

rules: $(RULE_WASM) $(BUILTIN_GZ) ## build the built-in WASM rules (go tool only; also gzipped for embedding in the binary)

rules-examples: $(WAT_WASM) $(AS_WASM) ## build the WAT and AssemblyScript rule examples (apt-get wabt, npm)

# wabt (wat2wasm) and the AssemblyScript compiler, installed when missing.
rules-tools:
	@command -v wat2wasm >/dev/null 2>&1 || { echo "installing wabt"; \
		(apt-get install -y wabt || (apt-get update && apt-get install -y wabt)) >/dev/null; }
	@test -x $(AS_DIR)/node_modules/.bin/asc || { echo "installing assemblyscript"; \
		cd $(AS_DIR) && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund); }

$(RULES_BUILD)/rules/%.wasm: $(RULES_DIR)/%/main.go $(RULE_DEPS)
	@mkdir -p $(RULES_BUILD)/rules
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o $@ ./$(RULES_DIR)/$*

$(BUILTIN_DIR)/%.wasm.gz: $(RULES_BUILD)/rules/%.wasm
	gzip -9nc $< > $@.tmp && mv $@.tmp $@

$(WAT_WASM): checks-wasm/examples/wat/speed_range.wat | rules-tools
	@mkdir -p $(RULES_BUILD)/examples
	wat2wasm $< -o $@

$(AS_WASM): $(AS_DIR)/assembly/index.ts $(AS_SDK) $(AS_DIR)/package.json $(AS_DIR)/package-lock.json | rules-tools
	@mkdir -p $(RULES_BUILD)/examples
	cd $(AS_DIR) && npm run --silent build

rules-test: rules rules-examples ## test the WASM host, the SDKs, the built-in rules and the examples
	$(GO) test -race ./plugins/wasmrule/... ./checks-wasm/...

rules-clean:
	rm -rf $(RULES_BUILD) $(BUILTIN_DIR)/*.wasm.gz
