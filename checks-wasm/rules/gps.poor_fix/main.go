// Command gps.poor_fix is the built-in rule gps.poor_fix (see checks-wasm/rules).
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o gps.poor_fix.wasm .
package main

import (
	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

func init() { sdk.Register(rules.GPSPoorFix) }

func main() {}
