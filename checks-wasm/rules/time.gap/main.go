// Command time.gap is the built-in rule time.gap (see checks-wasm/rules).
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o time.gap.wasm .
package main

import (
	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

func init() { sdk.Register(rules.TimeGap) }

func main() {}
