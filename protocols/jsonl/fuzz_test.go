package jsonl

import (
	"encoding/json"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func FuzzDecode(f *testing.F) {
	for _, l := range validLines(f) {
		f.Add(l)
	}
	f.Add([]byte(`{"device_id":"a","ts":"2026-11-25T10:00:00Z","attrs":{"x":[1,2]}}` + "\n"))
	f.Add([]byte(`{"device_id":"a"}{}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(4096)
		res, err := s.Decode(data, recv)
		if err != nil {
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Fatalf("error %v with output %+v", err, res)
			}
			if !json.Valid(s.Reject(err)[:len(s.Reject(err))-1]) {
				t.Fatalf("reject reply %q is not JSON", s.Reject(err))
			}
			return
		}
		for _, sig := range res.Signals {
			if sig.DeviceID == "" || sig.TS.IsZero() || sig.Protocol != Name {
				t.Fatalf("bad signal %+v", sig)
			}
			// The canonical JSON of an accepted record parses back.
			b, err := json.Marshal(sig)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if _, err := Parse(b); err != nil {
				t.Fatalf("accepted record does not re-parse: %v\n%s", err, b)
			}
		}
	})
}

func FuzzFrame(f *testing.F) {
	for _, l := range validLines(f) {
		f.Add(append(append([]byte(nil), l...), l...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := Decoder{}.NewSession(plugins.SessionConfig{MaxFrame: 256})
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				return
			}
			if n > len(data) || n > 256 {
				t.Fatalf("framed %d of %d bytes", n, len(data))
			}
			_, _ = s.Decode(data[:n], recv)
			data = data[n:]
		}
	})
}
