# Declarative checks (owned by plugins/checklang): `make bench-checks`
# measures a compiled check against its hand-written Go SDK rule through
# the same host and prints both throughputs and the ratio from one run.
# Checks need no build step: fleetcore compiles *.check.hcl when it loads
# them, and their tests run in `make test` (go test ./...).

.PHONY: bench-checks

bench-checks: ## compiled check vs Go rule throughput (signals/s and ratio, one run)
	$(GO) test -run '^$$' -bench CheckVsGo -benchtime 2000x ./plugins/checklang
