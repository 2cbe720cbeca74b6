package osmand

import (
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through the HTTP framer and decoder,
// seeded with the corpus requests and the table-test requests. Nothing may
// panic, Frame never claims more than it was given, and a decoded signal
// always carries its device id, protocol and frame; a rejection always has
// an HTTP reply.
func FuzzSession(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add([]byte(c.Payload))
	}
	for _, r := range conformanceRequests {
		f.Add([]byte(r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 8 << 10})
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil {
				if len(s.(plugins.Rejecter).Reject(err)) == 0 {
					t.Fatal("empty rejection reply")
				}
				return
			}
			if n == 0 {
				return
			}
			if n > len(data) {
				t.Fatalf("Frame = %d for %d bytes", n, len(data))
			}
			res, err := s.Decode(data[:n], recvTime)
			if err != nil {
				return
			}
			for _, sg := range res.Signals {
				if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n {
					t.Fatalf("incomplete signal %+v", sg)
				}
			}
			data = data[n:]
		}
	})
}
