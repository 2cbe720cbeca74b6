// Package examples holds example quality rules written without the Go SDK:
// wat/ in hand-written WebAssembly text (built with wabt's wat2wasm) and
// assemblyscript/ in AssemblyScript (built with asc). `make rules` builds
// both into checks-wasm/build/examples; the tests build them again and run
// them through the host.
package examples
