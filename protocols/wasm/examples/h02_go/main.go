// Command h02_go is the H02 decoder of protocols/h02 (Sinotrack ST-901/906
// and compatibles: text messages `*HQ,<id>,<type>,...#` and fixed-length
// binary records starting with '$') ported to the Go guest SDK: the same
// frames, records, attributes, acks and errors, built as a WebAssembly
// decoder (`make decoders` writes protocols/wasm/build/examples/h02_go.wasm).
// It is the worked example of a text protocol with options and records
// without a device time (stamped by the host, to the second, like the
// native decoder).
//
// State blob (state_version 1): one byte, the binary record length last
// decoded on the connection (0 = none), then the device id.
//
// Differences from the native decoder: fc_frame cannot change the state
// (ABI v1), so a binary record length is not learned while framing; the
// port re-detects it on every record exactly as the native decoder does
// before it has learned one, and falls back to the length of the last
// binary record it decoded where the native decoder would use its learned
// length (a stream whose records are cut mid-way by TCP segments). The
// listener's allow-list is checked by the host (ErrUnauthorized). The
// option binary_length takes 0 for "auto-detect" (the native option has no
// value for it); a value below 32 refuses every binary record.
package main

import "github.com/fleetcore/fleetcore/protocols/wasm/sdk"

var (
	optBinaryLength = sdk.IntOption{
		Name: "binary_length", Default: 0, Min: 0, Max: 1024,
		Help: "the length of `$` binary records on this listener (32, 42, 45, …); 0 auto-detects",
	}
	optAck = sdk.EnumOption{
		Name: "ack", Default: "on", Values: []string{"on", "off"},
		Help: "`off` sends no replies; `on` replies as Traccar and the vendor servers do, after durability",
	}
)

func init() {
	sdk.Register(sdk.Meta{
		Name:         "h02_go",
		Version:      "1.0.0",
		Description:  "H02 (Go SDK port; Sinotrack and compatibles): *HQ text messages and $ binary records",
		Transports:   []sdk.Transport{sdk.TCP, sdk.UDP},
		DefaultPort:  5013,
		StateVersion: 1,
		StateMax:     1 + maxDeviceID,
		Options:      []sdk.Option{optBinaryLength, optAck},
		Tests:        selfTests,
	}, decoder{})
}

func main() {}

var selfTests = []sdk.Test{{
	Name: "position, heartbeat and a binary record",
	Frames: []sdk.TestFrame{
		{Text: "*HQ,355488020113911,V1,012945,A,5231.79283,N,01324.10718,E,0.05,0,170217,FFFFFFFF#",
			Want: sdk.Want{AckText: "*HQ,355488020113911,V4,V1,20260101000000#", Device: "355488020113911", Signals: []map[string]any{{
				"device_id": "355488020113911", "ts": "2017-02-17T01:29:45Z", "valid": true,
				"attrs": map[string]any{"type": "V1", "status": 4294967295, "ignition": true},
			}}}},
		{Text: "*HQ,355488020113911,HTBT#", Want: sdk.Want{AckText: "*HQ,355488020113911,HTBT#", Signals: []map[string]any{}}},
		{Hex: "2441060116601245431311165035313006004318210e000000fffffbffff0024",
			Want: sdk.Want{Device: "4106011660", NoAck: true, Signals: []map[string]any{{
				"device_id": "4106011660", "ts": "2016-11-13T12:45:43Z",
				"attrs": map[string]any{"status": 4294966271, "ignition": false},
			}}}},
		{Text: "*HQ,355488020113911,V1,012945,X,5231.79283,N,01324.10718,E,0.05,0,170217,FFFFFFFF#",
			Want: sdk.Want{Error: "malformed"}},
	},
}}
