// Command speed_limit is the hand-written Go equivalent of
// testdata/speed.limit.check.hcl (the equivalence test and benchmark of
// plugins/checklang build it for wasip1).
package main

import "github.com/fleetcore/fleetcore/checks-wasm/sdk"

func init() {
	sdk.Register(sdk.Rule{
		Meta: sdk.Meta{
			Name: "speed.limit", Version: "1.0.0", Dimension: "validity", Severity: "warning",
			Fields: []string{"speed"},
			Reasons: map[uint16]string{
				1: "speed {speed} km/h over the limit",
				2: "speed {speed} km/h over the limit",
			},
		},
		Check: func(s sdk.Signal) sdk.Verdict {
			switch {
			case s.Speed > 200:
				return sdk.Fail(1)
			case s.Speed > 160:
				return sdk.Warn(2)
			}
			return sdk.Pass()
		},
	})
}

func main() {}
