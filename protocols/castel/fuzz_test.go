package castel

import (
	"encoding/binary"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder, seeded with the golden captures: no panic, Frame never claims
// more than it was given, every signal is complete and passes Check.
func FuzzSession(f *testing.F) {
	for _, fr := range goldenFrames(f) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := session()
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
				if err := plugins.CheckSignals(res.Signals); err != nil {
					t.Fatalf("a decoded record fails Check: %v", err)
				}
			}
			data = data[n:]
		}
	})
}

// FuzzContent wraps arbitrary bodies in a frame with a correct length and
// CRC, so the fuzzer reaches every message decoder.
func FuzzContent(f *testing.F) {
	for _, fr := range goldenFrames(f) {
		if fr[0] == '@' && len(fr) >= 31 {
			f.Add(fr[4], binary.BigEndian.Uint16(fr[25:]), fr[27:len(fr)-4])
		}
	}
	f.Fuzz(func(t *testing.T, version byte, typ uint16, body []byte) {
		if len(body) > 2000 {
			return
		}
		fr := Response(int(version), []byte("FUZZ0000000000000000"), typ, body)
		res, err := session().Decode(fr, recvTime)
		if err == nil {
			if err := plugins.CheckSignals(res.Signals); err != nil {
				t.Fatalf("a decoded record fails Check: %v", err)
			}
		}
	})
}
