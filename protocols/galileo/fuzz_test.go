package galileo

import (
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder, seeded with the captures: nothing may panic, Frame never claims
// more bytes than it got, and every signal is complete.
func FuzzSession(f *testing.F) {
	for _, c := range append(conversation(f), readHex(f, "testdata/iridium/input.hex")...) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096})
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				break
			}
			if n > len(data) {
				t.Fatalf("Frame = %d for %d bytes", n, len(data))
			}
			res, err := s.Decode(data[:n], recv)
			if err == nil {
				for _, sg := range res.Signals {
					if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n || sg.TS.IsZero() {
						t.Fatalf("incomplete signal %+v", sg)
					}
				}
			}
			data = data[n:]
		}
	})
}

// FuzzPayload wraps arbitrary tags in valid main and compressed packets
// (length and CRC right), after an IMEI packet, so the fuzzer reaches the
// tag and minimal-data-set decoders rather than the checksum.
func FuzzPayload(f *testing.F) {
	for _, c := range conversation(f) {
		f.Add(c[3 : len(c)-2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2000 {
			data = data[:2000]
		}
		for _, h := range []byte{HeaderMain, HeaderCompressed} {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{})
			if _, err := s.Decode(packet(HeaderMain, false, imeiTag()), recv); err != nil {
				t.Fatal(err)
			}
			res, err := s.Decode(packet(h, false, data), recv)
			if err != nil {
				continue
			}
			_ = plugins.CheckSignals(res.Signals)
			for _, sg := range res.Signals {
				if sg.DeviceID == "" || sg.TS.IsZero() {
					t.Fatalf("incomplete signal %+v", sg)
				}
			}
		}
	})
}
