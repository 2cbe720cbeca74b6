// Command hostile is a Go guest that misbehaves on purpose, picked by the
// speed of the first signal: -1 loops forever, -2 allocates until the
// memory limit, -3 panics; otherwise it passes every signal. The SDK tests
// build it to check how the host contains Go guests.
package main

import "github.com/fleetcore/fleetcore/checks-wasm/sdk"

var hoard [][]byte

func init() {
	sdk.Register(sdk.Rule{
		Meta: sdk.Meta{Name: "test.go_hostile", Version: "1.0.0", Dimension: "validity", Severity: "info",
			Fields: []string{"speed"}, Reasons: map[uint16]string{1: "x"}},
		CheckBatch: func(in []sdk.Signal, out []sdk.Verdict) {
			switch in[0].Speed {
			case -1:
				for {
				}
			case -2:
				for {
					hoard = append(hoard, make([]byte, 4<<20))
				}
			case -3:
				panic("rule bug: speed -3")
			}
		},
	})
}

func main() {}
