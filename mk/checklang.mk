# Declarative checks (owned by plugins/checklang): `make bench-checks`
# measures a compiled check against its hand-written Go SDK and
# AssemblyScript SDK equivalents through the same host and prints the
# throughputs and the ratios from one run (asc comes from `rules-tools`).
# Checks need no build step: fleetcore compiles *.check.hcl when it loads
# them, and their tests run in `make test` (go test ./...).

.PHONY: bench-checks

bench-checks: rules-tools ## compiled check vs Go and AssemblyScript rule throughput (signals/s and ratios, one run)
	$(GO) test -run '^$$' -bench CheckVsGo -benchtime 2000x ./plugins/checklang
