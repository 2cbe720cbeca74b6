// Command gps.speed_consistency is the built-in rule gps.speed_consistency (see checks-wasm/rules).
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o gps.speed_consistency.wasm .
package main

import (
	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

func init() { sdk.Register(rules.GPSSpeedConsistency) }

func main() {}
