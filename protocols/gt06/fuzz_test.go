package gt06

import (
	"slices"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a logged-in session's framer
// and decoder, seeded with every corpus frame. It checks that nothing
// panics, that Frame never claims more bytes than it was given, and that
// every signal carries the device id, the protocol and its frame.
func FuzzSession(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add(mustHex(c.Payload))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := loggedIn(t)
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

// FuzzDecode hands arbitrary bytes straight to Decode (as a UDP-style
// caller or a re-decode of a stored frame would).
func FuzzDecode(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add(mustHex(c.Payload))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096})
		_, _ = s.Decode(data, recvTime)
		_, _ = loggedIn(t).Decode(data, recvTime)
	})
}

// fuzzModels are listener option values with their own code paths ("" =
// none).
var fuzzModels = []string{"", "LW4G-4B", "NT20", "XT40", "VL103", "SEEWORLD", "R11", "QH302R"}

// FuzzContent builds a packet with a correct CRC around arbitrary content,
// so the fuzzer reaches every message decoder rather than the CRC check.
func FuzzContent(f *testing.F) {
	for _, c := range loadCorpus(f) {
		p, err := parsePacket(mustHex(c.Payload), 0)
		if err != nil {
			continue
		}
		m, _ := c.State["modelOverride"].(string)
		f.Add(p.long, p.proto, append([]byte(nil), p.content...), uint8(slices.Index(fuzzModels, m)+1))
	}
	f.Fuzz(func(t *testing.T, long bool, proto byte, content []byte, model uint8) {
		if len(content) > 1000 || !long && len(content) > 0xFF-5 {
			return // does not fit the length field
		}
		frame := Response(long, proto, content, 7)
		s := loggedInModel(t, fuzzModels[int(model)%len(fuzzModels)])
		n, err := s.Frame(frame)
		if err != nil || n != len(frame) {
			t.Fatalf("Frame(%x) = %d, %v", frame, n, err)
		}
		res, err := s.Decode(frame, recvTime)
		if err != nil {
			return
		}
		for _, sg := range res.Signals {
			if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n {
				t.Fatalf("incomplete signal %+v", sg)
			}
		}
	})
}
