// Command teltonika_go is the Teltonika AVL decoder of protocols/teltonika
// ported to the Go guest SDK: the same frames, records, attributes, acks
// and errors, built as a WebAssembly decoder (`make decoders` writes
// protocols/wasm/build/examples/teltonika_go.wasm). It is the worked
// example of a binary protocol with a checksum, a login and per-connection
// state (the IMEI, kept in the state blob).
//
// Differences from the native decoder, all host-side by design: a login
// the listener's allow-list refuses is ErrUnauthorized from the host
// (native: ack 0x00 and close); a string attribute (a codec 8E variable
// IO element in hex, a GPRS reply) is capped at 1024 bytes by the ABI
// (native: 128 KiB); such a frame fails instead of being stored.
package main

import "github.com/fleetcore/fleetcore/protocols/wasm/sdk"

var optExtended = sdk.BoolOption{
	Name: "extended",
	Help: "force the 16-byte IO section some FMB firmwares add to codec 8/16 records (without it that layout is still recognised when the standard one does not fit)",
}

func init() {
	sdk.Register(sdk.Meta{
		Name:         "teltonika_go",
		Version:      "1.0.0",
		Description:  "Teltonika AVL (Go SDK port): codecs 8, 8E, 16, GH3000 (7); GPRS messages 12/13/14",
		Transports:   []sdk.Transport{sdk.TCP, sdk.UDP},
		DefaultPort:  5027,
		StateVersion: 1,
		StateMax:     maxIMEILen,
		Options:      []sdk.Option{optExtended},
		Tests:        selfTests,
	}, decoder{})
}

func main() {}

// selfTests run at load: a login, a codec 8 frame with one record, the
// same frame with a broken CRC, and a UDP datagram.
var selfTests = []sdk.Test{{
	Name: "login then codec 8",
	Frames: []sdk.TestFrame{
		{Hex: "000f333536333037303432343431303133", Want: sdk.Want{AckHex: "01", Device: "356307042441013", Signals: []map[string]any{}}},
		{Hex: "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf",
			Want: sdk.Want{AckHex: "00000001", Signals: []map[string]any{{
				"device_id": "356307042441013", "ts": "2019-06-10T10:04:46Z",
				"attrs":   map[string]any{"io21": 3, "io1": 1, "io66": 24079, "io241": 24602, "io78": 0, "event": 1, "priority": 1},
				"voltage": 24.079,
			}}}},
		{Hex: "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7ce",
			Want: sdk.Want{Error: "checksum"}},
	},
}, {
	Name: "data before login", Frames: []sdk.TestFrame{
		{Hex: "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf",
			Want: sdk.Want{Error: "no_device"}},
	},
}}
