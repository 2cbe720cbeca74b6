# AssemblyScript decoders (owned by protocols/wasm/sdk-as). `make decoders`
# also builds every protocols/wasm/examples/<name>_as/assembly/index.ts into
# protocols/wasm/build/examples/<name>_as.wasm with the SDK's pinned
# compiler (protocols/wasm/sdk-as/package.json, installed with `npm ci` when
# missing) and the flags of internal/wasmfixture.ASFlags, so the files equal
# what the tests build.

DEC_AS_SDK    := $(DEC_ROOT)/sdk-as
DEC_AS_ASC    := $(DEC_AS_SDK)/node_modules/.bin/asc
DEC_AS_FLAGS  := -O3 --runtime stub --noAssert --use abort=
DEC_AS_NAMES  := $(notdir $(patsubst %/assembly/,%,$(dir $(wildcard $(DEC_ROOT)/examples/*_as/assembly/index.ts))))
DEC_AS_WASM   := $(addprefix $(DEC_BUILD)/examples/,$(addsuffix .wasm,$(DEC_AS_NAMES)))
# A guest is rebuilt when any AssemblyScript source or the SDK changes.
DEC_AS_DEPS   := $(wildcard $(DEC_AS_SDK)/assembly/*.ts $(DEC_ROOT)/examples/*_as/assembly/*.ts) $(DEC_AS_SDK)/package.json $(DEC_AS_SDK)/package-lock.json

.PHONY: decoders-as-tools

decoders: $(DEC_AS_WASM)

# The AssemblyScript compiler, installed from the lock file when missing.
decoders-as-tools:
	@test -x $(DEC_AS_ASC) || { echo "installing assemblyscript"; \
		cd $(DEC_AS_SDK) && npm ci --no-audit --no-fund; }

$(DEC_BUILD)/examples/%_as.wasm: $(DEC_ROOT)/examples/%_as/assembly/index.ts $(DEC_AS_DEPS) | decoders-as-tools
	@mkdir -p $(DEC_BUILD)/examples
	cd $(DEC_AS_SDK) && node_modules/.bin/asc $(abspath $(DEC_ROOT)/examples/$*_as/assembly/index.ts) --outFile $(abspath $@) $(DEC_AS_FLAGS)
