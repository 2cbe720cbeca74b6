// Command gps.teleport is the built-in rule gps.teleport (see checks-wasm/rules).
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o gps.teleport.wasm .
package main

import (
	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

func init() { sdk.Register(rules.GPSTeleport) }

func main() {}
