// Package rules holds the logic and metadata of fleetcore's built-in quality
// rules. Each rule is an sdk.Rule value; the tiny main package in
// rules/<rule name>/ registers it so that it builds to <rule name>.wasm
// (`make rules`). Keeping the logic here lets the same functions run natively
// in tests and benchmarks next to their WebAssembly builds.
package rules

import "github.com/fleetcore/fleetcore/checks-wasm/sdk"

// All lists every built-in rule.
func All() []sdk.Rule {
	return []sdk.Rule{GPSRange, GPSZeroIsland, TimeFuture, TimeStale, GPSTeleport, GPSPoorFix,
		OBDPlausibility, OdometerBackwards, DupBurst, GPSSpeedConsistency, TimeGap}
}
