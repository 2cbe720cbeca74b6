// Package sdk is the Go guest SDK for fleetcore protocol decoders (decoder
// ABI version 1, protocols/wasm/ABI.md). A decoder is a WebAssembly module
// that frames a device's byte stream and decodes each frame into canonical
// records, an ack, a device id and a new per-connection state blob; the
// host (plugins/wasmdecoder) runs it like a built-in decoder.
//
// A decoder implements Frame and Decode and registers itself with its
// metadata from init:
//
//	package main
//
//	import "github.com/fleetcore/fleetcore/protocols/wasm/sdk"
//
//	type decoder struct{}
//
//	func (decoder) Frame(c *sdk.Call, buf []byte) (int, error) { … }
//	func (decoder) Decode(c *sdk.Call, frame []byte, out *sdk.Output) error {
//		out.Record().TimeUnix(ts).Lat(lat).Lon(lon).Speed(kmh).Valid(true).I64("event", ev)
//		out.AckString("OK")
//		return nil
//	}
//
//	func init() { sdk.Register(sdk.Meta{Name: "acme_go", Version: "1.0.0", …}, decoder{}) }
//
//	func main() {}
//
// and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o acme_go.wasm .
//
// The SDK provides the exports (fc_abi, fc_meta, fc_alloc, fc_frame,
// fc_decode, fc_error), parses the input block, caches the parsed listener
// options per distinct options bytes, recovers a panic of the decoder into
// an ABI error for that one frame, and encodes the output block. Every
// buffer (input, output, records, attributes) is reused across calls, so
// the steady state allocates nothing.
//
// Instances are pooled and shared by all connections: a decoder keeps no
// per-connection data in variables. What a session must remember (the
// IMEI after login, a sequence number) goes into the state blob:
// Call.State to read it, Output.SetState to replace it.
//
// Everything but the exports builds natively: Module runs a decoder on the
// same bytes the host exchanges (Input.Encode, ParseResult), so a
// decoder's logic is tested with `go test` before it is built for wasm.
package sdk
