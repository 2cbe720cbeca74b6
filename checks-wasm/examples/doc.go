// Package examples holds example quality rules written without the Go SDK:
// wat/ in hand-written WebAssembly text (built with wabt's wat2wasm) and
// assemblyscript/ in AssemblyScript on the AssemblyScript SDK
// (checks-wasm/sdk-as, built with asc): example.obd_plausibility, the port
// of the Go rule obd.plausibility, held to the same verdicts by a property
// test. `make rules` builds
// both into checks-wasm/build/examples; the tests build them again and run
// them through the host.
package examples
