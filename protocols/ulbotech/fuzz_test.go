package ulbotech

import (
	"testing"
)

// FuzzSession feeds arbitrary bytes through one session's framer and
// decoder, seeded with every capture: no panic, Frame never claims more
// than it was given, every signal carries device id, protocol and frame.
func FuzzSession(f *testing.F) {
	for _, c := range loadCaptures(f) {
		f.Add(c.bytes(f))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession()
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				break
			}
			if n > len(data) {
				t.Fatalf("Frame = %d for %d bytes", n, len(data))
			}
			res, err := s.Decode(data[:n], recvTime)
			if err == nil {
				for _, sg := range res.Signals {
					if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n {
						t.Fatalf("incomplete signal %+v", sg)
					}
				}
			}
			data = data[n:]
		}
	})
}

// FuzzContent wraps arbitrary TLV bytes in a frame with a valid CRC, so
// the fuzzer reaches the block decoders rather than the CRC check.
func FuzzContent(f *testing.F) {
	f.Add([]byte{0x01, 0x0e, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x07, 0x06, 0x61, 0x01, 0x81, 0x0f, 0x80, 0x00, 0x09, 0x03, 0x33, 0x20, 0x15})
	f.Add([]byte{0x0c, 0x04, 0x83, 0x10, 0x01, 0x02})
	f.Add([]byte{0x05, 0x04, 0x00, 0x00, 0x1f, 0xff})
	f.Fuzz(func(t *testing.T, tlvs []byte) {
		res, err := newSession().Decode(build("353323083177450", 1, tlvs), recvTime)
		if err == nil && len(res.Signals) != 1 {
			t.Fatalf("%d signals", len(res.Signals))
		}
	})
}
