// Package sdk is the Go guest SDK for fleetcore quality rules (rule ABI
// version 1, checks-wasm/ABI.md). An analyst writes a plain function over one
// typed signal and registers it with its metadata from init:
//
//	package main
//
//	import "github.com/fleetcore/fleetcore/checks-wasm/sdk"
//
//	func init() {
//		sdk.Register(sdk.Rule{
//			Meta:  sdk.Meta{Name: "gps.range", Version: "1.0.0", ...},
//			Check: func(s sdk.Signal) sdk.Verdict { ... },
//		})
//	}
//
//	func main() {}
//
// and builds it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o rule.wasm .
//
// The SDK provides the exports (fc_abi, fc_meta, fc_alloc, fc_check), decodes
// the batch columns into Signal values and encodes the verdicts. The batch
// buffer handed out by fc_alloc is allocated once and reused, so a check
// does not allocate.
package sdk
