# Release build and Debian package (deploy/). `make package` builds a static
# bin/fleetcore (CGO_ENABLED=0, -trimpath; the built-in rules are embedded
# in it) with the Go decoders beside it, stages them under bin/pkg/ with
# configs/fleetcore.hcl rewritten to the FHS paths (/etc/fleetcore/rules for
# the operator's rule folder, served instead of the built-in rules once it
# holds rule files; /usr/lib/fleetcore for decoders, /var/lib/fleetcore for
# spool and compile caches), and packs
# bin/fleetcore_<version>_<arch>.deb with nfpm (go run, module proxy).
# `make package-test` installs that package on this machine, runs it as the
# unit would, and purges it (deploy/test-package.sh; root).

NFPM_VERSION := v2.45.2
NFPM         := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
PKG_STAGE    := bin/pkg
DEB_ARCH     := $(shell $(GO) env GOARCH)
# Debian versions start with a digit: v1.2.3 → 1.2.3, an untagged commit
# abc1234 → 0~gitabc1234.
DEB_VERSION  := $(shell echo '$(VERSION)' | sed -E '/^v[0-9]/!s/^/0~git/; s/^v//; s/-/~/g')
DEB          := bin/fleetcore_$(DEB_VERSION)_$(DEB_ARCH).deb

.PHONY: release package package-test

release: rules decoders ## static release binary bin/pkg/fleetcore (built-in rules embedded), its decoders and config (FHS paths)
	@rm -rf $(PKG_STAGE) && mkdir -p $(PKG_STAGE)/decoders
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(PKG_STAGE)/fleetcore ./cmd/fleetcore
	cp $(DEC_WASM) $(PKG_STAGE)/decoders/
	sed -e 's|"\.\./var/spool"|"/var/lib/fleetcore/spool"|' \
	    -e 's|"\.\./var/wasm-cache/decoders"|"/var/lib/fleetcore/wasm-cache/decoders"|' \
	    -e 's|"\.\./var/wasm-cache"|"/var/lib/fleetcore/wasm-cache"|' \
	    -e 's|"\.\./checks-wasm/build/rules"|"/etc/fleetcore/rules"|' \
	    -e 's|"\.\./protocols/wasm/build/decoders"|"/usr/lib/fleetcore/decoders"|' \
	    -e 's|^# fleetcore default configuration: what `make run` uses.|# fleetcore configuration (Debian package; systemctl reload fleetcore applies the live keys).|' \
	    configs/fleetcore.hcl > $(PKG_STAGE)/fleetcore.hcl
	@if grep -n '"\.\./' $(PKG_STAGE)/fleetcore.hcl; then echo "package config: a path still points into the checkout" >&2; exit 1; fi
	$(PKG_STAGE)/fleetcore validate -config $(PKG_STAGE)/fleetcore.hcl >/dev/null || \
	  { echo "package config does not validate" >&2; exit 1; }

package: release ## the Debian package bin/fleetcore_<version>_<arch>.deb (nfpm)
	@rm -f bin/fleetcore_*.deb
	VERSION=$(DEB_VERSION) ARCH=$(DEB_ARCH) $(NFPM) package -f deploy/nfpm.yaml -p deb -t $(DEB)
	@echo "built $(DEB)"

package-test: package ## install the package here, serve, reload, stop, purge (root; deploy/test-package.sh)
	bash deploy/test-package.sh $(DEB)

# The package test runs with `make test` (the lead wires $(TEST_PREREQS)).
TEST_PREREQS += package-test
