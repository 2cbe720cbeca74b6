# HTTP API (owned by core/api/).

.PHONY: bench-export

bench-export: ## issue-17: export 100 k and 1 M signals as CSV, GeoJSON and GPX; peak heap against export size (~3 min)
	$(GO) test -run '^$$' -bench BenchmarkExport -benchtime 1x ./core/api
