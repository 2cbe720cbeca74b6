package atrack

import (
	"encoding/binary"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder (standard and custom formats), and as one UDP datagram,
// seeded with the captures.
func FuzzSession(f *testing.F) {
	for _, c := range append(conversation(f), readHex(f, "testdata/custom/input.hex")...) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, custom := range []string{"false", "true"} {
			dec := &Decoder{}
			s := dec.NewSession(plugins.SessionConfig{MaxFrame: 4096, Options: plugins.MustDecodeOptions(dec, map[string]string{"custom": custom})})
			for b := data; len(b) > 0; {
				n, err := s.Frame(b)
				if err != nil || n == 0 {
					break
				}
				if n > len(b) {
					t.Fatalf("Frame = %d for %d bytes", n, len(b))
				}
				res, err := s.Decode(b[:n], recv)
				if err == nil {
					for _, sg := range res.Signals {
						if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n || sg.TS.IsZero() {
							t.Fatalf("incomplete signal %+v", sg)
						}
					}
				}
				b = b[n:]
			}
		}
		// UDP: the whole input is one datagram.
		res, err := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.UDP, MaxFrame: 4096}).Decode(data, recv)
		if err == nil {
			for _, sg := range res.Signals {
				if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != len(data) {
					t.Fatalf("incomplete datagram signal %+v", sg)
				}
			}
		}
	})
}

// FuzzRecords wraps arbitrary record bytes in a valid binary report
// (length and CRC right) so the fuzzer reaches the record and custom-field
// decoders rather than the checksum.
func FuzzRecords(f *testing.F) {
	for _, c := range append(conversation(f), readHex(f, "testdata/custom/input.hex")...) {
		if len(c) > binHeaderLen && c[0] == '@' && c[2] != ',' {
			f.Add(c[binHeaderLen:])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 4000 {
			body = body[:4000]
		}
		b := []byte{'@', 'P', 0, 0}
		b = binary.BigEndian.AppendUint16(b, uint16(len(body)+10))
		b = append(b, 0, 1, 0, 0, 0, 0, 0, 0, 0x30, 0x39)
		b = append(b, body...)
		binary.BigEndian.PutUint16(b[2:], CRC16(b[4:]))
		for _, opts := range []map[string]string{nil, {"custom": "true"}, {"long_date": "true", "custom": "true"}} {
			dec := &Decoder{}
			res, err := dec.NewSession(plugins.SessionConfig{Options: plugins.MustDecodeOptions(dec, opts)}).Decode(b, recv)
			if err != nil {
				continue
			}
			_ = plugins.CheckSignals(res.Signals)
			for _, sg := range res.Signals {
				if sg.DeviceID != "12345" || sg.Protocol != Name {
					t.Fatalf("incomplete signal %+v", sg)
				}
			}
		}
	})
}
