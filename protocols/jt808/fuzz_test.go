package jt808

import (
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder, seeded with the conversation. Nothing may panic, Frame never
// claims more bytes than it got, and every signal is complete and passes
// signal.Check.
func FuzzSession(f *testing.F) {
	for _, c := range conversation() {
		f.Add(c)
	}
	f.Add([]byte("(740190311185,1,001,ELOCK,3,529439)"))
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
					if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n {
						t.Fatalf("incomplete signal %+v", sg)
					}
				}
			}
			data = data[n:]
		}
	})
}

// FuzzBody wraps an arbitrary body in a valid message (correct escaping,
// length and XOR) of each message id the decoder interprets, so the fuzzer
// reaches the message decoders rather than the checksum.
func FuzzBody(f *testing.F) {
	for _, c := range conversation() {
		m, err := Unescape(c[1 : len(c)-1])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(m[0])<<8|uint16(m[1]), m[12:len(m)-1])
	}
	f.Fuzz(func(t *testing.T, id uint16, body []byte) {
		if len(body) > 1023 {
			body = body[:1023]
		}
		for _, id := range []uint16{id, msgLocation, msgLocationBatch, msgLocationBatch2, msgLocation2, msgTransparent, msgTextResponse} {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{})
			res, err := s.Decode(msg(id, 1, body), recvTime)
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
