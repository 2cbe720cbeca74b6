package replay_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
	_ "github.com/fleetcore/fleetcore/protocols/all"
	"github.com/fleetcore/fleetcore/signal"
)

// TestFrameChecksRecords: replay (and so `fleetcore decode` and the corpus
// tests) refuses a frame whose record the gateway would refuse, with the
// reason of signal.Check; the hostile frames of issue 11 were decoded and
// printed as records before.
func TestFrameChecksRecords(t *testing.T) {
	long := strings.Repeat("A1b2", 1500) // 6000 bytes
	cases := []struct {
		name, proto string
		tr          plugins.Transport
		frame       string
		want        string // "" = decodes
		// byDecoder: the decoder itself refuses the field (ErrMalformed with
		// its own reason) before signal.Check sees the record.
		byDecoder bool
	}{
		{"osmand good", "osmand", plugins.TCP, "GET /?id=123456&lat=52.5&lon=13.4&timestamp=1700000000 HTTP/1.1\r\nHost: x\r\n\r\n", "", false},
		{"osmand lat=1e308", "osmand", plugins.TCP, "GET /?id=123456&lat=1e308&lon=13.4&timestamp=1700000000 HTTP/1.1\r\nHost: x\r\n\r\n", "latitude 1e+308 is beyond ±90°", true},
		{"osmand timestamp=-1", "osmand", plugins.TCP, "GET /?id=123456&lat=52.5&lon=13.4&timestamp=-1 HTTP/1.1\r\nHost: x\r\n\r\n", `timestamp "-1" is 1969-12-31T23:59:59Z, outside 1970–9999`, true},
		{"osmand bearing=400", "osmand", plugins.TCP, "GET /?id=123456&lat=52.5&lon=13.4&timestamp=1700000000&bearing=400 HTTP/1.1\r\nHost: x\r\n\r\n", "heading 400 outside [0, 360]", false},
		{"osmand fuel=101", "osmand", plugins.TCP, "GET /?id=123456&lat=52.5&lon=13.4&timestamp=1700000000&fuel=101 HTTP/1.1\r\nHost: x\r\n\r\n", "fuel 101 outside [0, 100]", false},
		{"h02 good", "h02", plugins.TCP, "*HQ,9001000002,V1,213945,A,3542.2043,N,13838.6508,E,0.00,170,221025,FBFFF9FF#", "", false},
		{"h02 6000-byte id", "h02", plugins.TCP, "*HQ," + long + ",V1,213945,A,3542.2043,N,13838.6508,E,0.00,170,221025,FBFFF9FF#", "device id of 6000 bytes, at most 128", true},
		{"h02 6000-byte id over UDP", "h02", plugins.UDP, "*HQ," + long + ",V1,213945,A,3542.2043,N,13838.6508,E,0.00,170,221025,FBFFF9FF#", "device id of 6000 bytes, at most 128", true},
		{"jsonl good", "jsonl", plugins.TCP, `{"device_id":"sim-1","ts":"2026-01-01T00:00:00Z","lat":1}` + "\n", "", false},
		{"jsonl 6000-byte id", "jsonl", plugins.TCP, `{"device_id":"` + long + `","ts":"2026-01-01T00:00:00Z"}` + "\n", "device_id of 6000 bytes exceeds 128", false},
		{"jsonl NUL in an attr key", "jsonl", plugins.TCP, `{"device_id":"sim-1","ts":"2026-01-01T00:00:00Z","attrs":{"a\u0000":1}}` + "\n", `attrs key "a\x00" contains a NUL character`, false},
		{"jsonl 1969 (Moon landing)", "jsonl", plugins.TCP, `{"device_id":"sim-1","ts":"1969-07-20T20:17:00Z"}` + "\n", "ts 1969-07-20T20:17:00Z outside", false},
		{"jsonl huge number", "jsonl", plugins.TCP, `{"device_id":"sim-1","ts":"2026-01-01T00:00:00Z","odometer":1e300}` + "\n", "odometer 1e+300 outside [0, 1e+08]", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dec, ok := plugins.Decoders.Lookup(tc.proto)
			if !ok {
				t.Fatalf("no decoder %s", tc.proto)
			}
			sess := dec.NewSession(plugins.SessionConfig{Transport: tc.tr, MaxFrame: 64 << 10})
			sigs, err := replay.Frame(sess, tc.tr, []byte(tc.frame), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			if tc.want == "" {
				if err != nil || len(sigs) != 1 {
					t.Fatalf("Frame() = %d signals, %v; want 1, nil", len(sigs), err)
				}
				return
			}
			if len(sigs) != 0 {
				t.Errorf("Frame() returned %d signals of a refused frame", len(sigs))
			}
			if !errors.Is(err, plugins.ErrMalformed) || (!tc.byDecoder && !errors.Is(err, signal.ErrInvalid)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Frame() error = %v, want ErrMalformed (and signal.ErrInvalid unless the decoder refuses) with %q", err, tc.want)
			}
		})
	}
}

// TestRunPrintsTheReason: `fleetcore decode` prints the refusal as the
// frame's error line.
func TestRunPrintsTheReason(t *testing.T) {
	dec, _ := plugins.Decoders.Lookup("osmand")
	in := strings.NewReader(`GET /?id=123456&lat=1e308&lon=13.4&timestamp=1700000000 HTTP/1.1\r\nHost: x\r\n\r\n` + "\n")
	var out bytes.Buffer
	if err := replay.Run(dec, in, &out, replay.Options{}); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Frame    int    `json:"frame"`
		Error    string `json:"error"`
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if line.Frame != 1 || line.DeviceID != "" || !strings.Contains(line.Error, "latitude 1e+308 is beyond ±90°") {
		t.Fatalf("output %q, want frame 1's refusal", out.String())
	}
}

// TestOsmAndUnknownSpeedIsAbsent: iOS reports an invalid speed and course as
// -1 and Traccar Client sends them on; they are unknown, not refused (a
// refusal would make such a phone resend the same report forever).
func TestOsmAndUnknownSpeedIsAbsent(t *testing.T) {
	dec, _ := plugins.Decoders.Lookup("osmand")
	sess := dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10})
	frame := "GET /?id=123456&lat=52.5&lon=13.4&timestamp=1700000000&speed=-1.94384&bearing=-1 HTTP/1.1\r\nHost: x\r\n\r\n"
	sigs, err := replay.Frame(sess, plugins.TCP, []byte(frame), time.Now())
	if err != nil || len(sigs) != 1 {
		t.Fatalf("Frame() = %d signals, %v; want 1, nil", len(sigs), err)
	}
	if s := sigs[0]; !math.IsNaN(s.Speed) || !math.IsNaN(s.Heading) || s.Lat != 52.5 {
		t.Fatalf("speed %g, heading %g, lat %g: want the speed and heading absent", s.Speed, s.Heading, s.Lat)
	}
}
