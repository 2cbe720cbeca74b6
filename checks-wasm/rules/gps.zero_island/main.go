// Command gps.zero_island is the built-in rule gps.zero_island (see checks-wasm/rules).
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o gps.zero_island.wasm .
package main

import (
	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

func init() { sdk.Register(rules.GPSZeroIsland) }

func main() {}
