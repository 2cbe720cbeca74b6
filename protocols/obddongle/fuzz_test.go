package obddongle

import (
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder: no panic, Frame never claims more than it was given, every
// signal is complete and passes Check.
func FuzzSession(f *testing.F) {
	f.Add(capConnect)
	f.Add(capPublish)
	f.Add(capPublishCorpus)
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

// FuzzContent wraps arbitrary content in a well-formed frame.
func FuzzContent(f *testing.F) {
	f.Add(byte(msgPublish), capPublish[22:len(capPublish)-3])
	f.Add(byte(msgConnect), capConnect[22:len(capConnect)-3])
	f.Fuzz(func(t *testing.T, typ byte, content []byte) {
		if len(content) > 1000 {
			return
		}
		fr := Response(1, imei, typ, content)
		res, err := session().Decode(fr, recvTime)
		if err == nil {
			if err := plugins.CheckSignals(res.Signals); err != nil {
				t.Fatalf("a decoded record fails Check: %v", err)
			}
		}
	})
}
