# WASM protocol decoders (owned by protocols/wasm). `make decoders` builds
# every protocols/wasm/decoders/<name>/main.go into
# protocols/wasm/build/decoders/<name>.wasm (the folder a `decoders { dir }`
# block can point at) and every Go example protocols/wasm/examples/<name>_go/
# main.go into protocols/wasm/build/examples/<name>_go.wasm, as Go wasip1
# reactors (-buildmode=c-shared -trimpath), exactly as internal/wasmfixture.Go
# builds them for the tests. Needs only the go tool: no npm, no root.

DEC_ROOT      := protocols/wasm
DEC_BUILD     := $(DEC_ROOT)/build
DEC_NAMES     := $(notdir $(patsubst %/,%,$(dir $(wildcard $(DEC_ROOT)/decoders/*/main.go))))
DEC_WASM      := $(addprefix $(DEC_BUILD)/decoders/,$(addsuffix .wasm,$(DEC_NAMES)))
DEC_GO_NAMES  := $(notdir $(patsubst %/,%,$(dir $(wildcard $(DEC_ROOT)/examples/*_go/main.go))))
DEC_GO_WASM   := $(addprefix $(DEC_BUILD)/examples/,$(addsuffix .wasm,$(DEC_GO_NAMES)))
# A decoder is rebuilt when any Go guest source or the SDK changes (the Go
# build cache keeps the others cheap).
DEC_GO_DEPS   := $(wildcard $(DEC_ROOT)/sdk/*.go $(DEC_ROOT)/decoders/*/*.go $(DEC_ROOT)/examples/*_go/*.go) go.mod

.PHONY: decoders decoders-clean

decoders: $(DEC_WASM) $(DEC_GO_WASM) ## build the WASM decoders and the Go decoder examples into protocols/wasm/build/

$(DEC_BUILD)/decoders/%.wasm: $(DEC_ROOT)/decoders/%/main.go $(DEC_GO_DEPS)
	@mkdir -p $(DEC_BUILD)/decoders
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o $@ ./$(DEC_ROOT)/decoders/$*

$(DEC_BUILD)/examples/%.wasm: $(DEC_ROOT)/examples/%/main.go $(DEC_GO_DEPS)
	@mkdir -p $(DEC_BUILD)/examples
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o $@ ./$(DEC_ROOT)/examples/$*

decoders-clean: ## remove protocols/wasm/build/
	rm -rf $(DEC_BUILD)

# ---- AssemblyScript decoders (helper "assdk") -------------------------------
# The AssemblyScript SDK's block goes below this line: its rules build into
# $(DEC_BUILD)/examples/ (or decoders/) and add their files to the target
# with a line `decoders: <its .wasm files>` (make merges prerequisites).
