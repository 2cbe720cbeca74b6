package navis

import (
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder, seeded with the conversations. Nothing may panic, Frame never
// claims more bytes than it got, and every signal is complete.
func FuzzSession(f *testing.F) {
	for _, name := range []string{"ntcb", "flex10", "flex30"} {
		var all []byte
		for _, c := range conversation(f, name) {
			f.Add(c)
			all = append(all, c...)
		}
		f.Add(all)
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
			res, err := s.Decode(data[:n], recvTime)
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

// FuzzRecords wraps arbitrary record bytes in valid messages (XOR and
// CRC-8 right) after a handshake and a negotiation, so the fuzzer reaches
// the NTCB and FLEX record decoders rather than the checksums.
func FuzzRecords(f *testing.F) {
	ntcb := conversation(f, "ntcb")
	flex := conversation(f, "flex30")
	for _, c := range ntcb[2:] {
		f.Add(c[19:], flex[1][22:])
	}
	f.Add(flex[3][3:len(flex[3])-1], flex[1][22:])
	f.Fuzz(func(t *testing.T, body, mask []byte) {
		if len(body) > 2048 || len(mask) > 32 {
			return
		}
		check := func(res plugins.Result, err error) {
			if err != nil {
				return
			}
			_ = plugins.CheckSignals(res.Signals)
			for _, sg := range res.Signals {
				if sg.DeviceID == "" || sg.TS.IsZero() {
					t.Fatalf("incomplete signal %+v", sg)
				}
			}
		}
		for _, cmd := range []string{"*>T", "*>A"} {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{}).(*Session)
			if _, err := s.Decode(ntcb[0], recvTime); err != nil {
				t.Fatal(err)
			}
			check(s.Decode(ntcbMsg(append([]byte(cmd), body...)), recvTime))
		}
		s := (&Decoder{}).NewSession(plugins.SessionConfig{}).(*Session)
		if _, err := s.Decode(flex[0], recvTime); err != nil {
			t.Fatal(err)
		}
		neg := append([]byte{'*', '>', 'F', 'L', 'E', 'X', 0xB0, 0x1E, 0x1E, byte(len(mask) * 8)}, mask...)
		if _, err := s.Decode(ntcbMsg(neg), recvTime); err != nil || s.flex == nil {
			return
		}
		for _, typ := range []byte{'A', 'T', 'C', 'X', 'E'} {
			check(s.Decode(flexMsg(append([]byte{'~', typ}, body...)), recvTime))
		}
	})
}
