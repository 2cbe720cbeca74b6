package osmand

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

var recvTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newSession(opts map[string]string) plugins.Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10, Options: plugins.MustDecodeOptions(&Decoder{}, opts)})
}

type corpusFrame struct {
	Payload string          `json:"payload"`
	Check   string          `json:"check"`
	Expects json.RawMessage `json:"expects"`
}

func loadCorpus(t testing.TB) []corpusFrame {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "traccar-osmand.jsonl"))
	if err != nil {
		t.Fatalf("reading corpus: %v", err)
	}
	var out []corpusFrame
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c corpusFrame
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("parsing corpus line %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	return out
}

// feed frames and decodes a byte stream the way the gateway does.
func feed(s plugins.Session, data []byte) (plugins.Result, error) {
	var all plugins.Result
	for len(data) > 0 {
		n, err := s.Frame(data)
		if err != nil {
			return all, err
		}
		if n == 0 {
			return all, fmt.Errorf("%w: truncated (%d bytes left)", plugins.ErrMalformed, len(data))
		}
		res, err := s.Decode(data[:n], recvTime)
		if err != nil {
			return all, err
		}
		all.Signals = append(all.Signals, res.Signals...)
		all.Ack = append(all.Ack, res.Ack...)
		all.Close = res.Close
		all.DeviceID = res.DeviceID
		data = data[n:]
	}
	return all, nil
}

// TestCorpus replays Traccar's OsmAnd test requests (raw HTTP) and compares
// the outcome of each with testdata/corpus.golden (-update rewrites it).
// Every request Traccar decodes into a position must yield a signal here;
// the one without a device id must be refused with ErrNoDevice.
func TestCorpus(t *testing.T) {
	var sb strings.Builder
	for i, c := range loadCorpus(t) {
		s := newSession(nil)
		res, err := feed(s, []byte(c.Payload))
		line := map[string]any{"line": i + 1}
		switch c.Check {
		case "decodes_position", "decodes_something":
			if err != nil || len(res.Signals) == 0 {
				t.Errorf("line %d: %v, %d signals; Traccar decodes this request", i+1, err, len(res.Signals))
			}
		case "decodes_nothing":
			if !errors.Is(err, plugins.ErrNoDevice) {
				t.Errorf("line %d: got %v, want ErrNoDevice", i+1, err)
			}
			if !strings.HasPrefix(string(s.(plugins.Rejecter).Reject(err)), "HTTP/1.1 400 Bad Request\r\n") {
				t.Errorf("line %d: rejection is not a 400", i+1)
			}
		}
		if err != nil {
			line["error"] = err.Error()
		} else if !bytes.Equal(res.Ack, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) {
			t.Errorf("line %d: ack %q", i+1, res.Ack)
		}
		var sigs []json.RawMessage
		for _, sg := range res.Signals {
			if sg.DeviceID == "" || sg.Protocol != Name || !bytes.Equal(sg.Frame, []byte(c.Payload)) {
				t.Errorf("line %d: signal lacks device/protocol/frame", i+1)
			}
			b, _ := json.Marshal(sg.ToJSON())
			sigs = append(sigs, b)
		}
		line["signals"] = sigs
		b, _ := json.Marshal(line)
		sb.Write(b)
		sb.WriteByte('\n')
	}
	path := filepath.Join("testdata", "corpus.golden")
	if *update {
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run with -update): %v", err)
	}
	if got := sb.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Errorf("golden line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		if len(gl) != len(wl) {
			t.Errorf("golden: %d lines, want %d", len(gl), len(wl))
		}
	}
}

func TestDecode(t *testing.T) {
	nan := math.NaN()
	type want struct {
		device                        string
		ts                            time.Time
		lat, lon, speed, hd, alt, hd2 float64
		valid                         signal.Flag
		attrs                         map[string]any
		n                             int
	}
	tests := []struct {
		name string
		req  string
		opts map[string]string
		want want
	}{
		{"query, unix seconds, speed in knots",
			"GET /?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=10.0&bearing=90.5&altitude=12&hdop=1.5&batt=87 HTTP/1.1\r\nHost: x\r\n\r\n", nil,
			want{device: "123456", ts: time.Unix(1377177267, 0).UTC(), lat: 60, lon: 30, speed: 18.52, hd: 90.5, alt: 12, hd2: 1.5, valid: signal.True,
				attrs: map[string]any{"battery_level": 87.0}, n: 1}},
		{"speed_unit kmh option",
			"GET /?id=1&timestamp=1377177267&lat=1&lon=2&speed=50 HTTP/1.1\r\n\r\n", map[string]string{"speed_unit": "kmh"},
			want{device: "1", ts: time.Unix(1377177267, 0).UTC(), lat: 1, lon: 2, speed: 50, hd: nan, alt: nan, hd2: nan, valid: signal.True, n: 1}},
		{"unix milliseconds and deviceid",
			"GET /?deviceid=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579 HTTP/1.1\r\n\r\n", nil,
			want{device: "902064", ts: time.UnixMilli(1442068686579).UTC(), lat: 42.06288, lon: -88.23412, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.True, n: 1}},
		{"ISO time, encoded",
			"GET /?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z HTTP/1.1\r\n\r\n", nil,
			want{device: "902064", ts: time.Date(2016, 1, 27, 18, 55, 47, 0, time.UTC), lat: 42.06288, lon: -88.23412, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.True, n: 1}},
		{"space-separated time",
			"GET /?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&id=353861053849681 HTTP/1.1\r\n\r\n", nil,
			want{device: "353861053849681", ts: time.Date(2014, 6, 4, 9, 10, 11, 0, time.UTC), lat: 49.60688, lon: 6.15788, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.True, n: 1}},
		{"location parameter and free attributes",
			"GET /?id=1&timestamp=1504763810&location=40.5,-74.25&ignition=true&count=933&note=hi HTTP/1.1\r\n\r\n", nil,
			want{device: "1", ts: time.Unix(1504763810, 0).UTC(), lat: 40.5, lon: -74.25, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.True,
				attrs: map[string]any{"ignition": true, "count": int64(933), "note": "hi"}, n: 1}},
		{"cells only: position absent",
			"GET /?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90 HTTP/1.1\r\n\r\n", nil,
			want{device: "123456", ts: time.Unix(1377177267, 0).UTC(), lat: nan, lon: nan, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.Unknown,
				attrs: map[string]any{"cell": "257,02,16,2224;257,02,16,2223,-90"}, n: 1}},
		{"form body",
			"POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 48\r\n\r\nid=77&timestamp=1377177267&lat=10&lon=20&valid=0", nil,
			want{device: "77", ts: time.Unix(1377177267, 0).UTC(), lat: 10, lon: 20, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.False, n: 1}},
		{"chunked form body",
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nid=77&timestamp=\r\n11\r\n1377177267&lat=10\r\n0\r\n\r\n", nil,
			want{device: "77", ts: time.Unix(1377177267, 0).UTC(), lat: nan, lon: nan, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.Unknown, n: 1}},
		{"Traccar Client JSON, speed m/s, battery 0..1, odometer m",
			jsonRequest(`{"location":{"timestamp":"2021-07-21T08:06:34.444Z","odometer":1500,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":10,"heading":63,"altitude":35.7},"is_moving":true,"event":"motionchange","battery":{"level":0.52,"is_charging":true},"activity":{"type":"in_vehicle"},"extras":{"n":12,"f":1.5,"b":false,"s":"x"}},"device_id":"abc"}`), nil,
			want{device: "abc", ts: time.Date(2021, 7, 21, 8, 6, 34, 444e6, time.UTC), lat: -6.1148096, lon: 106.6837015, speed: 36, hd: 63, alt: 35.7, hd2: nan, valid: signal.True,
				attrs: map[string]any{"motion": true, "event": "motionchange", "battery_level": 52.0, "charging": true, "activity": "in_vehicle", "accuracy": 3.8,
					"n": int64(12), "f": 1.5, "b": false, "s": "x"}, n: 1}},
		{"JSON unknown speed and heading",
			jsonRequest(`{"location":{"timestamp":"2025-05-09T04:11:30.579Z","coords":{"speed":-1,"longitude":-122.406417,"latitude":37.785834,"heading":-1,"altitude":0}},"device_id":"658765"}`), nil,
			want{device: "658765", ts: time.Date(2025, 5, 9, 4, 11, 30, 579e6, time.UTC), lat: 37.785834, lon: -122.406417, speed: nan, hd: nan, alt: 0, hd2: nan, valid: signal.True, n: 1}},
		{"JSON batch of two locations",
			jsonRequest(`{"location":[{"timestamp":"2025-05-09T04:11:30Z","coords":{"latitude":1,"longitude":2}},{"timestamp":"2025-05-09T04:11:40Z","coords":{"latitude":1.1,"longitude":2.1}}],"device_id":7}`), nil,
			want{device: "7", ts: time.Date(2025, 5, 9, 4, 11, 30, 0, time.UTC), lat: 1, lon: 2, speed: nan, hd: nan, alt: nan, hd2: nan, valid: signal.True, n: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(tt.opts)
			res, err := feed(s, []byte(tt.req))
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			if len(res.Signals) != tt.want.n {
				t.Fatalf("%d signals, want %d", len(res.Signals), tt.want.n)
			}
			g, w := res.Signals[0], tt.want
			if g.DeviceID != w.device || res.DeviceID != w.device || s.(plugins.DeviceIdentifier).DeviceID() != w.device {
				t.Errorf("device = %q, want %q", g.DeviceID, w.device)
			}
			if !g.TS.Equal(w.ts) {
				t.Errorf("ts = %v, want %v", g.TS, w.ts)
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{{"lat", g.Lat, w.lat}, {"lon", g.Lon, w.lon}, {"speed", g.Speed, w.speed}, {"heading", g.Heading, w.hd}, {"alt", g.Alt, w.alt}, {"hdop", g.HDOP, w.hd2}} {
				if math.IsNaN(f.want) != math.IsNaN(f.got) || (!math.IsNaN(f.want) && math.Abs(f.got-f.want) > 1e-9) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if g.Valid != w.valid {
				t.Errorf("valid = %v, want %v", g.Valid, w.valid)
			}
			for k, v := range w.attrs {
				if g.Attrs[k] != v {
					t.Errorf("attr %s = %#v, want %#v", k, g.Attrs[k], v)
				}
			}
			if g.Protocol != Name || !bytes.Equal(g.Frame, []byte(tt.req)) || !g.Recv.Equal(recvTime) {
				t.Errorf("protocol/frame/recv not set")
			}
		})
	}
}

func jsonRequest(body string) string {
	return fmt.Sprintf("POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func TestAckAndClose(t *testing.T) {
	tests := []struct {
		name      string
		req       string
		wantClose bool
	}{
		{"HTTP/1.1 keep-alive", "GET /?id=1&lat=1&lon=2&timestamp=1 HTTP/1.1\r\n\r\n", false},
		{"HTTP/1.1 Connection: close", "GET /?id=1&lat=1&lon=2&timestamp=1 HTTP/1.1\r\nConnection: close\r\n\r\n", true},
		{"HTTP/1.0", "GET /?id=1&lat=1&lon=2&timestamp=1 HTTP/1.0\r\n\r\n", true},
		{"HTTP/1.0 keep-alive", "GET /?id=1&lat=1&lon=2&timestamp=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := feed(newSession(nil), []byte(tt.req))
			if err != nil {
				t.Fatal(err)
			}
			if res.Close != tt.wantClose {
				t.Errorf("Close = %v, want %v", res.Close, tt.wantClose)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.Ack)), nil)
			if err != nil {
				t.Fatalf("ack is not an HTTP response: %v", err)
			}
			if resp.StatusCode != 200 || resp.Close != tt.wantClose || resp.ContentLength != 0 {
				t.Errorf("ack: status %d close %v length %d", resp.StatusCode, resp.Close, resp.ContentLength)
			}
		})
	}
}

func TestReject(t *testing.T) {
	tests := []struct {
		name     string
		req      string
		allow    func(string) bool
		max      int
		wantErr  error
		wantCode int
	}{
		{"no device id", "GET /?lat=1&lon=2 HTTP/1.1\r\n\r\n", nil, 0, plugins.ErrNoDevice, 400},
		{"bad number", "GET /?id=1&lat=north&lon=2 HTTP/1.1\r\n\r\n", nil, 0, plugins.ErrMalformed, 400},
		{"NaN latitude", "GET /?id=1&lat=NaN&lon=2 HTTP/1.1\r\n\r\n", nil, 0, plugins.ErrMalformed, 400},
		{"bad timestamp", "GET /?id=1&timestamp=yesterday HTTP/1.1\r\n\r\n", nil, 0, plugins.ErrMalformed, 400},
		{"bad JSON", jsonRequest(`{"location":`), nil, 0, plugins.ErrMalformed, 400},
		{"JSON without timestamp", jsonRequest(`{"location":{"coords":{"latitude":1,"longitude":2}},"device_id":"x"}`), nil, 0, plugins.ErrMalformed, 400},
		{"device not allowed", "GET /?id=666&lat=1&lon=2 HTTP/1.1\r\n\r\n", func(id string) bool { return id != "666" }, 0, plugins.ErrUnauthorized, 403},
		{"not HTTP", "\x78\x78\x0d\x01\x01\x23", nil, 0, plugins.ErrMalformed, 400},
		{"bad request line", "GET /\r\n\r\n", nil, 0, plugins.ErrMalformed, 400},
		{"huge Content-Length", "POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", nil, 0, plugins.ErrTooLarge, 413},
		{"body beyond MaxFrame", "POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", nil, 1024, plugins.ErrTooLarge, 413},
		{"headers beyond MaxFrame", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000), nil, 1024, plugins.ErrTooLarge, 413},
		{"gzip transfer coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", nil, 0, plugins.ErrUnsupported, 400},
		{"Content-Length and chunked", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", nil, 0, plugins.ErrMalformed, 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", nil, 0, plugins.ErrMalformed, 400},
		{"DELETE", "DELETE /?id=1 HTTP/1.1\r\n\r\n", nil, 0, plugins.ErrUnsupported, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = 64 << 10
			}
			s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: max, AllowDevice: tt.allow})
			res, err := feed(s, []byte(tt.req))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("a rejected request produced signals or an ack")
			}
			reply := s.(plugins.Rejecter).Reject(err)
			resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), nil)
			if rerr != nil {
				t.Fatalf("reject reply is not HTTP: %v", rerr)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tt.wantCode || !resp.Close || !strings.Contains(body.String(), err.Error()) {
				t.Errorf("reject: %d close=%v body %q", resp.StatusCode, resp.Close, body.String())
			}
		})
	}
}

func TestFramePipelined(t *testing.T) {
	a := "GET /?id=1&lat=1&lon=2&timestamp=100 HTTP/1.1\r\nHost: h\r\n\r\n"
	b := jsonRequest(`{"location":{"timestamp":"2025-05-09T04:11:30Z","coords":{"latitude":1,"longitude":2}},"device_id":"x"}`)
	c := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nid=9&\r\n0\r\nX-Trailer: 1\r\n\r\n"
	stream := a + "\r\n" + b + c
	s := newSession(nil)
	var lens []int
	data := []byte(stream)
	for len(data) > 0 {
		n, err := s.Frame(data)
		if err != nil || n == 0 {
			t.Fatalf("Frame: %d, %v at %q", n, err, data)
		}
		lens = append(lens, n)
		data = data[n:]
	}
	want := []int{len(a), 2, len(b), len(c)}
	if fmt.Sprint(lens) != fmt.Sprint(want) {
		t.Errorf("frames %v, want %v", lens, want)
	}
	// Every strict prefix of a request needs more bytes.
	for i := 1; i < len(b); i++ {
		if n, err := s.Frame([]byte(b[:i])); n != 0 || err != nil {
			t.Fatalf("prefix %d: %d, %v", i, n, err)
		}
	}
}

// conformanceRequests: resends keep their keys (by the device time, or, for
// the request without a timestamp, by the time of the first copy).
var conformanceRequests = []string{
	"GET /?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87 HTTP/1.1\r\n\r\n",
	"GET /?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0 HTTP/1.1\r\nHost: example\r\n\r\n",
	"GET /?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0 HTTP/1.1\r\n\r\n",
	"POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 48\r\n\r\nid=77&timestamp=1377177267&lat=10&lon=20&valid=0",
	"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nid=77&timestamp=\r\n11\r\n1377177267&lat=10\r\n0\r\n\r\n",
}

func TestConformance(t *testing.T) {
	var frames [][]byte
	for _, r := range conformanceRequests {
		frames = append(frames, []byte(r))
	}
	for _, c := range loadCorpus(t) {
		if strings.HasPrefix(c.Payload, "POST") {
			frames = append(frames, []byte(c.Payload)) // the JSON requests carry device time
		}
	}
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames: frames,
		Oversized: [][]byte{
			[]byte("POST / HTTP/1.1\r\nContent-Length: 4294967295\r\n\r\n"),
			[]byte("POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"),
			[]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n"),
		},
	})
}

func BenchmarkDecode(b *testing.B) {
	var frames [][]byte
	for _, r := range conformanceRequests {
		frames = append(frames, []byte(r))
	}
	frames = append(frames, []byte(loadCorpus(b)[3].Payload))
	s := newSession(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := frames[i%len(frames)]
		if n, err := s.Frame(f); err != nil || n != len(f) {
			b.Fatalf("Frame: %d %v", n, err)
		}
		if _, err := s.Decode(f, recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func TestCanonicalParameters(t *testing.T) {
	res, err := feed(newSession(nil), []byte("GET /?id=1&timestamp=1504763810&lat=1&lon=2&rpm=933&fuel=24&coolant=88.5&power=12.6&sat=7&odometer=1234.5 HTTP/1.1\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := res.Signals[0]
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"rpm", g.RPM, 933}, {"fuel", g.Fuel, 24}, {"coolant", g.Coolant, 88.5}, {"voltage", g.Voltage, 12.6}, {"sats", g.Sats, 7}, {"odometer", g.Odometer, 1234.5}} {
		if f.got != f.want {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if len(g.Attrs) != 0 {
		t.Errorf("canonical parameters leaked into attrs: %v", g.Attrs)
	}
}

// TestSpeedUnitOption: each declared unit and alias converts the query's
// speed to km/h; the default is knots.
func TestSpeedUnitOption(t *testing.T) {
	tests := []struct {
		unit string // "" = option not set
		want float64
	}{
		{"", 18.52}, {"kn", 18.52}, {"kmh", 10}, {"KM/H", 10}, {"kph", 10}, {"mps", 36}, {"m/s", 36}, {"mph", 16.09344},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			var opts map[string]string
			if tt.unit != "" {
				opts = map[string]string{"speed_unit": tt.unit}
			}
			res, err := feed(newSession(opts), []byte("GET /?id=1&timestamp=1377177267&lat=1&lon=2&speed=10 HTTP/1.1\r\n\r\n"))
			if err != nil || len(res.Signals) != 1 {
				t.Fatalf("decoding: %v, %d signals", err, len(res.Signals))
			}
			if got := res.Signals[0].Speed; math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("speed = %v, want %v", got, tt.want)
			}
		})
	}
}
