package jsonl

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
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

// sameSignal compares two decoded signals field by field (NaN equal to
// NaN, attrs with their Go types).
func sameSignal(a, b signal.Signal) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb) && reflect.DeepEqual(a.Attrs, b.Attrs) && reflect.DeepEqual(a.DTCs, b.DTCs) &&
		a.Valid == b.Valid && a.TS.Equal(b.TS) && a.TS.Location() == b.TS.Location()
}

// slowParse is Parse through encoding/json only.
func slowParse(line []byte) (signal.Signal, error) {
	var p parsed
	if err := p.slow(line); err != nil {
		return signal.Signal{}, err
	}
	return p.check()
}

// FuzzFastMatchesEncodingJSON: wherever the hand-written scanner accepts
// a line, its signal (or check error) is encoding/json's.
func FuzzFastMatchesEncodingJSON(f *testing.F) {
	for _, l := range validLines(f) {
		f.Add(bytes.TrimSpace(l))
	}
	for _, l := range fastCases {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var p parsed
		if !parseFast(line, &p) {
			return
		}
		fast, ferr := p.check()
		slow, serr := slowParse(line)
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Fatalf("%s: fast error %v, encoding/json error %v", line, ferr, serr)
		}
		if ferr == nil && !sameSignal(fast, slow) {
			t.Fatalf("%s:\nfast %+v\njson %+v", line, fast, slow)
		}
	})
}
