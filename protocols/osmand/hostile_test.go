package osmand

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

func get(query string) []byte { return []byte("GET /?" + query + " HTTP/1.1\r\nHost: example\r\n\r\n") }

// TestOutOfRangeRefused: values the decoder cannot turn into a sane
// canonical value are refused with a reason naming the parameter, through
// the session (framing and decoding), with a 400 reply.
func TestOutOfRangeRefused(t *testing.T) {
	tests := []struct {
		name, req, reason string
	}{
		{"lat 1e308", "GET /?id=1&timestamp=1377177267&lat=1e308&lon=30 HTTP/1.1\r\n\r\n", "latitude"},
		{"lat 90.5", "GET /?id=1&timestamp=1377177267&lat=90.5&lon=30 HTTP/1.1\r\n\r\n", "latitude"},
		{"lon -180.1", "GET /?id=1&timestamp=1377177267&lat=10&lon=-180.1 HTTP/1.1\r\n\r\n", "longitude"},
		{"location beyond", "GET /?id=1&timestamp=1377177267&location=100,30 HTTP/1.1\r\n\r\n", "latitude"},
		{"timestamp -1", "GET /?id=1&timestamp=-1&lat=10&lon=30 HTTP/1.1\r\n\r\n", "timestamp"},
		{"timestamp 0", "GET /?id=1&timestamp=0&lat=10&lon=30 HTTP/1.1\r\n\r\n", "timestamp"},
		{"timestamp before 1970", "GET /?id=1&timestamp=1969-07-20T20:17:40Z&lat=10&lon=30 HTTP/1.1\r\n\r\n", "timestamp"},
		{"timestamp beyond 9999", "GET /?id=1&timestamp=99999999999999999&lat=10&lon=30 HTTP/1.1\r\n\r\n", "timestamp"},
		{"valid not a flag", "GET /?id=1&timestamp=1377177267&lat=10&lon=30&valid=maybe HTTP/1.1\r\n\r\n", "valid"},
		{"v not A or V", "GET /?id=1&timestamp=1377177267&lat=10&lon=30&v=X HTTP/1.1\r\n\r\n", "parameter v"},
		{"charge not a flag", "GET /?id=1&timestamp=1377177267&lat=10&lon=30&charge=soon HTTP/1.1\r\n\r\n", "charge"},
		{"JSON latitude", jsonRequest(`{"device_id":"1","location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":91,"longitude":10}}}`), "latitude"},
		{"JSON timestamp -1", jsonRequest(`{"device_id":"1","location":{"timestamp":"-1","coords":{"latitude":1,"longitude":10}}}`), "timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(nil)
			res, err := feed(s, []byte(tt.req))
			if !errors.Is(err, plugins.ErrMalformed) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrMalformed naming %q", err, tt.reason)
			}
			if len(res.Signals) != 0 {
				t.Errorf("refused request produced %d signals", len(res.Signals))
			}
			if reply := string(s.(plugins.Rejecter).Reject(err)); !strings.HasPrefix(reply, "HTTP/1.1 400 ") {
				t.Errorf("reply %q, want a 400", reply)
			}
		})
	}
}

// TestResendWithoutTimestamp: a report without a timestamp, sent again on a
// new connection (the ack was lost), gets the same key; a different report
// gets another.
func TestResendWithoutTimestamp(t *testing.T) {
	d := &Decoder{}
	key := func(req []byte, at time.Time) signal.Key {
		t.Helper()
		s := d.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10})
		res, err := s.Decode(req, at)
		if err != nil || len(res.Signals) != 1 {
			t.Fatalf("%q: %d signals, %v", req, len(res.Signals), err)
		}
		return res.Signals[0].Key()
	}
	first := key(get("id=861001000719969&lat=41.666667&lon=-0.883333&batt=87"), recvTime)
	resends := map[string][]byte{
		"same request":                get("id=861001000719969&lat=41.666667&lon=-0.883333&batt=87"),
		"parameters in another order": get("lat=41.666667&id=861001000719969&batt=87&lon=-0.883333"),
		"as a form body":              []byte("POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 54\r\n\r\nid=861001000719969&lat=41.666667&lon=-0.883333&batt=87"),
	}
	for name, req := range resends {
		if got := key(req, recvTime.Add(90*time.Second)); got != first {
			t.Errorf("%s: key %+v, first %+v", name, got, first)
		}
	}
	if got := key(get("id=861001000719969&lat=41.666667&lon=-0.883333&batt=86"), recvTime.Add(91*time.Second)); got == first {
		t.Errorf("a different report got the first one's key")
	}
	if got := key(get("id=861001000719969&lat=41.666667&lon=-0.883333&batt=87"), recvTime.Add(plugins.DefaultResendWindow+time.Minute)); got == first {
		t.Errorf("the same report after the resend window got the first one's key")
	}
}
