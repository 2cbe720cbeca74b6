package teltonika

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const testIMEI = "356307042441013"

var recv = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ioVal is one IO element for the frame builder.
type ioVal struct {
	id int
	v  []byte
}

// rec is one AVL record for the frame builder.
type rec struct {
	ts       int64 // ms
	prio     byte
	lon, lat int32
	alt      int16
	angle    uint16
	sats     byte
	speed    uint16
	event    int
	gen      byte
	io       [4][]ioVal // 1, 2, 4 and 8-byte elements
	nx       []ioVal    // codec 8E variable-length elements
}

func be(n int, v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b[8-n:]
}

// avlData encodes codec id, count, records and count the way a device does.
func avlData(codec byte, recs []rec) []byte {
	wideID := codec == Codec8E || codec == Codec16
	wideCount := codec == Codec8E
	idx := func(wide bool, v int) []byte {
		if wide {
			return be(2, uint64(v))
		}
		return be(1, uint64(v))
	}
	b := []byte{codec, byte(len(recs))}
	for _, r := range recs {
		b = append(b, be(8, uint64(r.ts))...)
		b = append(b, r.prio)
		b = append(b, be(4, uint64(uint32(r.lon)))...)
		b = append(b, be(4, uint64(uint32(r.lat)))...)
		b = append(b, be(2, uint64(uint16(r.alt)))...)
		b = append(b, be(2, uint64(r.angle))...)
		b = append(b, r.sats)
		b = append(b, be(2, uint64(r.speed))...)
		b = append(b, idx(wideID, r.event)...)
		if codec == Codec16 {
			b = append(b, r.gen)
		}
		total := len(r.nx)
		for _, g := range r.io {
			total += len(g)
		}
		b = append(b, idx(wideCount, total)...)
		for _, g := range r.io {
			b = append(b, idx(wideCount, len(g))...)
			for _, e := range g {
				b = append(b, idx(wideID, e.id)...)
				b = append(b, e.v...)
			}
		}
		if codec == Codec8E {
			b = append(b, be(2, uint64(len(r.nx)))...)
			for _, e := range r.nx {
				b = append(b, be(2, uint64(e.id))...)
				b = append(b, be(2, uint64(len(e.v)))...)
				b = append(b, e.v...)
			}
		}
	}
	return append(b, byte(len(recs)))
}

func tcpFrame(data []byte) []byte {
	b := make([]byte, 8, len(data)+12)
	binary.BigEndian.PutUint32(b[4:], uint32(len(data)))
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, uint32(CRC16(data)))
}

func loginFrame(imei string) []byte {
	return append(be(2, uint64(len(imei))), imei...)
}

func udpDatagram(packetID uint16, avlID byte, imei string, data []byte) []byte {
	body := append(be(2, uint64(packetID)), 0x01, avlID)
	body = append(body, loginFrame(imei)...)
	body = append(body, data...)
	return append(be(2, uint64(len(body))), body...)
}

func gprsData(codec, typ byte, payload []byte) []byte {
	b := []byte{codec, 1, typ}
	b = append(b, be(4, uint64(len(payload)))...)
	b = append(b, payload...)
	return append(b, 1)
}

// sampleRecord is a codec 8 record with the FMB ids the decoder maps.
var sampleRecord = rec{
	ts: 1700000000123, prio: 1, lon: 252545883, lat: 546708533, alt: 141, angle: 275,
	sats: 9, speed: 57, event: 239,
	io: [4][]ioVal{
		{{239, []byte{1}}, {240, []byte{0}}, {32, []byte{0xF6}}, {31, []byte{45}}, {48, []byte{73}}},
		{{66, be(2, 12780)}, {36, be(2, 2150)}, {182, be(2, 12)}},
		{{16, be(4, 123456789)}},
		{{78, be(8, 0xFFFF_FFFF_FFFF_FFFE)}},
	},
}

func newSession(t *testing.T, cfg plugins.SessionConfig) *Session {
	t.Helper()
	s, ok := (&Decoder{}).NewSession(cfg).(*Session)
	if !ok {
		t.Fatal("NewSession did not return *Session")
	}
	return s
}

func mustDecode(t *testing.T, s *Session, frame []byte) plugins.Result {
	t.Helper()
	if s.cfg.Transport != plugins.UDP {
		n, err := s.Frame(frame)
		if err != nil || n != len(frame) {
			t.Fatalf("Frame = %d, %v; want %d", n, err, len(frame))
		}
	}
	res, err := s.Decode(frame, recv)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return res
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCRC16(t *testing.T) {
	// CRC-16/ARC check value from the CRC catalogue.
	if got := CRC16([]byte("123456789")); got != 0xBB3D {
		t.Fatalf("CRC16(123456789) = %#04x, want 0xbb3d", got)
	}
	// The worked codec 8 example of Teltonika's documentation.
	data, _ := hex.DecodeString("08010000016B40D8EA30010000000000000000000000000000000105021503010101425E0F01F10000601A014E0000000000000000" + "01")
	if got := CRC16(data); got != 0xC7CF {
		t.Fatalf("CRC16(doc example) = %#04x, want 0xc7cf", got)
	}
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name      string
		allow     func(string) bool
		wantAck   byte
		wantClose bool
		wantIMEI  string
	}{
		{"no allow-list", nil, 0x01, false, testIMEI},
		{"allowed", func(id string) bool { return id == testIMEI }, 0x01, false, testIMEI},
		{"refused", func(string) bool { return false }, 0x00, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, plugins.SessionConfig{AllowDevice: tc.allow})
			res := mustDecode(t, s, loginFrame(testIMEI))
			if !bytes.Equal(res.Ack, []byte{tc.wantAck}) || res.Close != tc.wantClose || res.DeviceID != testIMEI {
				t.Fatalf("login result = ack %x close %v device %q; want ack %02x close %v device %q", res.Ack, res.Close, res.DeviceID, tc.wantAck, tc.wantClose, testIMEI)
			}
			if s.DeviceID() != tc.wantIMEI {
				t.Fatalf("session device = %q, want %q", s.DeviceID(), tc.wantIMEI)
			}
			_, err := s.Decode(tcpFrame(avlData(Codec8, []rec{sampleRecord})), recv)
			if tc.wantIMEI == "" && !errors.Is(err, plugins.ErrNoDevice) {
				t.Fatalf("data after refused login: err %v, want ErrNoDevice", err)
			}
			if tc.wantIMEI != "" && err != nil {
				t.Fatalf("data after login: %v", err)
			}
		})
	}
}

func TestDecodeCodec8(t *testing.T) {
	s := newSession(t, plugins.SessionConfig{})
	mustDecode(t, s, loginFrame(testIMEI))
	second := sampleRecord
	second.ts += 1000
	second.sats = 0
	frame := tcpFrame(avlData(Codec8, []rec{sampleRecord, second}))
	res := mustDecode(t, s, frame)
	if !bytes.Equal(res.Ack, []byte{0, 0, 0, 2}) {
		t.Fatalf("ack = %x, want 00000002", res.Ack)
	}
	if len(res.Signals) != 2 {
		t.Fatalf("%d signals, want 2", len(res.Signals))
	}
	g := res.Signals[0]
	checks := []struct {
		name      string
		got, want float64
	}{
		{"lat", g.Lat, 54.6708533}, {"lon", g.Lon, 25.2545883}, {"alt", g.Alt, 141},
		{"heading", g.Heading, 275}, {"sats", g.Sats, 9}, {"speed", g.Speed, 57},
		{"rpm", g.RPM, 2150}, {"coolant", g.Coolant, -10}, {"engine_load", g.EngineLoad, 45},
		{"fuel", g.Fuel, 73}, {"voltage", g.Voltage, 12.78}, {"odometer", g.Odometer, 123456.789},
		{"hdop", g.HDOP, 1.2},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !g.TS.Equal(time.UnixMilli(1700000000123)) || g.TS.Location() != time.UTC {
		t.Errorf("ts = %v, want 1700000000123 ms UTC", g.TS)
	}
	if g.DeviceID != testIMEI || g.Protocol != Name || !g.Recv.Equal(recv) || !bytes.Equal(g.Frame, frame) {
		t.Errorf("device %q protocol %q recv %v frame-equal %v", g.DeviceID, g.Protocol, g.Recv, bytes.Equal(g.Frame, frame))
	}
	if g.Valid != signal.True || res.Signals[1].Valid != signal.False {
		t.Errorf("valid = %v / %v, want true (9 sats) / false (0 sats)", g.Valid, res.Signals[1].Valid)
	}
	wantAttrs := map[string]any{
		"io239": int64(1), "io240": int64(0), "io32": int64(0xF6), "io66": int64(12780),
		"io16": int64(123456789), "io78": int64(-2), "ignition": true, "motion": false,
		"event": int64(239), "priority": int64(1),
	}
	for k, v := range wantAttrs {
		if g.Attrs[k] != v {
			t.Errorf("attr %s = %#v, want %#v", k, g.Attrs[k], v)
		}
	}
	// The frame copy must not alias the input.
	frame[20] ^= 0xFF
	if bytes.Equal(g.Frame, frame) {
		t.Error("Signal.Frame aliases the input frame")
	}
}

func TestDecodeCodec8EAnd16(t *testing.T) {
	r := sampleRecord
	r.event = 385
	r.io = [4][]ioVal{{{1000, []byte{7}}}, {{66, be(2, 24100)}}, nil, nil}
	r.nx = []ioVal{{281, []byte("P0301,P0420")}, {10828, []byte{0xde, 0xad}}}
	for _, tc := range []struct {
		codec byte
		attrs map[string]any
	}{
		{Codec8E, map[string]any{"io1000": int64(7), "io281": hex.EncodeToString([]byte("P0301,P0420")), "io10828": "dead", "event": int64(385)}},
		{Codec16, map[string]any{"io1000": int64(7), "generation_type": int64(5), "event": int64(385)}},
	} {
		t.Run(hex.EncodeToString([]byte{tc.codec}), func(t *testing.T) {
			rr := r
			rr.gen = 5
			if tc.codec == Codec16 {
				rr.nx = nil
			}
			s := newSession(t, plugins.SessionConfig{})
			mustDecode(t, s, loginFrame(testIMEI))
			res := mustDecode(t, s, tcpFrame(avlData(tc.codec, []rec{rr})))
			if len(res.Signals) != 1 {
				t.Fatalf("%d signals", len(res.Signals))
			}
			g := res.Signals[0]
			for k, v := range tc.attrs {
				if g.Attrs[k] != v {
					t.Errorf("attr %s = %#v, want %#v", k, g.Attrs[k], v)
				}
			}
			if !near(g.Voltage, 24.1) {
				t.Errorf("voltage = %v, want 24.1", g.Voltage)
			}
		})
	}
}

func TestRejects(t *testing.T) {
	good := tcpFrame(avlData(Codec8, []rec{sampleRecord}))
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 1
	crcHigh := append([]byte(nil), good...)
	crcHigh[len(crcHigh)-4] = 1
	countMismatch := avlData(Codec8, []rec{sampleRecord})
	countMismatch[len(countMismatch)-1] = 2
	extra := avlData(Codec8, []rec{sampleRecord})
	extra = append(extra[:len(extra)-1], 0, 0, 1)
	short := avlData(Codec8, []rec{sampleRecord})
	short = append(short[:len(short)-6], 1)
	tests := []struct {
		name  string
		login bool
		frame []byte
		want  error
	}{
		{"bad CRC", true, badCRC, plugins.ErrChecksum},
		{"CRC high bytes set", true, crcHigh, plugins.ErrChecksum},
		{"record counts differ", true, tcpFrame(countMismatch), plugins.ErrMalformed},
		{"bytes after records", true, tcpFrame(extra), plugins.ErrMalformed},
		{"records cut short", true, tcpFrame(short), plugins.ErrMalformed},
		{"zero records", true, tcpFrame([]byte{Codec8, 0, 0}), plugins.ErrMalformed},
		{"unknown codec", true, tcpFrame(append([]byte{0x42}, avlData(Codec8, []rec{sampleRecord})[1:]...)), plugins.ErrUnsupported},
		{"data before login", false, good, plugins.ErrNoDevice},
		{"login with control bytes", false, []byte{0, 3, '1', 0, '2'}, plugins.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, plugins.SessionConfig{})
			if tc.login {
				mustDecode(t, s, loginFrame(testIMEI))
			}
			res, err := s.Decode(tc.frame, recv)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Fatalf("rejected frame gave %d signals, ack %x", len(res.Signals), res.Ack)
			}
			if tc.login && res.DeviceID != testIMEI {
				t.Fatalf("rejection labelled with device %q, want %q", res.DeviceID, testIMEI)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	good := tcpFrame(avlData(Codec8, []rec{sampleRecord}))
	huge := []byte{0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF}
	tests := []struct {
		name string
		buf  []byte
		max  int
		want int
		err  error
	}{
		{"empty", nil, 0, 0, nil},
		{"ping", []byte{0xFF, 0x00}, 0, 1, nil},
		{"login", append(loginFrame(testIMEI), 0, 0), 0, 17, nil},
		{"login partial", loginFrame(testIMEI)[:9], 0, 0, nil},
		{"login length absurd", []byte{0x40, 0x00, '1'}, 0, 0, plugins.ErrMalformed},
		{"data whole", append(append([]byte(nil), good...), good...), 0, len(good), nil},
		{"data partial", good[:len(good)-1], 0, 0, nil},
		{"preamble broken", []byte{0, 0, 1, 0, 0, 0, 0, 10}, 0, 0, plugins.ErrMalformed},
		{"data length zero", []byte{0, 0, 0, 0, 0, 0, 0, 0}, 0, 0, plugins.ErrMalformed},
		{"data length above MaxFrame", huge, 0, 0, plugins.ErrTooLarge},
		{"frame just above MaxFrame", good, len(good) - 1, 0, plugins.ErrTooLarge},
		{"frame at MaxFrame", good, len(good), len(good), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, plugins.SessionConfig{MaxFrame: tc.max})
			n, err := s.Frame(tc.buf)
			if n != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Frame = %d, %v; want %d, %v", n, err, tc.want, tc.err)
			}
		})
	}
	s := newSession(t, plugins.SessionConfig{MaxFrame: 1 << 20})
	if a := testing.AllocsPerRun(100, func() { _, _ = s.Frame(good) }); a != 0 {
		t.Errorf("Frame allocates %v times per call, want 0", a)
	}
}

func TestUDP(t *testing.T) {
	data := avlData(Codec8, []rec{sampleRecord, sampleRecord})
	d := udpDatagram(0xCAFE, 0x22, testIMEI, data)
	s := newSession(t, plugins.SessionConfig{Transport: plugins.UDP})
	res := mustDecode(t, s, d)
	if want := []byte{0x00, 0x05, 0xCA, 0xFE, 0x01, 0x22, 0x02}; !bytes.Equal(res.Ack, want) {
		t.Fatalf("ack = %x, want %x", res.Ack, want)
	}
	if len(res.Signals) != 2 || res.Signals[0].DeviceID != testIMEI || res.DeviceID != testIMEI {
		t.Fatalf("%d signals, device %q", len(res.Signals), res.DeviceID)
	}
	bad := append([]byte(nil), d...)
	bad[1]++
	tests := []struct {
		name  string
		d     []byte
		allow func(string) bool
		max   int
		want  error
	}{
		{"length field wrong", bad, nil, 0, plugins.ErrMalformed},
		{"truncated", d[:len(d)-3], nil, 0, plugins.ErrMalformed},
		{"too large", d, nil, len(d) - 1, plugins.ErrTooLarge},
		{"refused device", d, func(string) bool { return false }, 0, plugins.ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, plugins.SessionConfig{Transport: plugins.UDP, AllowDevice: tc.allow, MaxFrame: tc.max})
			res, err := s.Decode(tc.d, recv)
			if !errors.Is(err, tc.want) || res.Ack != nil || len(res.Signals) != 0 {
				t.Fatalf("err = %v (ack %x, %d signals), want %v", err, res.Ack, len(res.Signals), tc.want)
			}
		})
	}
}

func TestGPRSMessages(t *testing.T) {
	ts := []byte{0x64, 0x2b, 0x3a, 0xd1}
	imei8, _ := hex.DecodeString("0356307042441013")
	tests := []struct {
		name   string
		data   []byte
		result string // "" = no signal
		ts     time.Time
	}{
		{"codec 12 response", gprsData(Codec12, msgResponse, []byte("DOUT1:1 \r\n")), "DOUT1:1", recv},
		{"codec 12 binary", gprsData(Codec12, msgResponse, []byte{1, 2, 0xff}), "0102ff", recv},
		{"codec 12 empty", gprsData(Codec12, msgResponse, []byte("\r\n")), "", time.Time{}},
		{"codec 12 camera", gprsData(Codec12, msgCamera, []byte{1, 0, 0, 0, 5}), "", time.Time{}},
		{"codec 13", gprsData(Codec13, msgResponse, append(ts, "hello"...)), "hello", time.Unix(0x642b3ad1, 0)},
		{"codec 14", gprsData(Codec14, msgResponse, append(imei8, "ok"...)), "ok", recv},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, plugins.SessionConfig{})
			mustDecode(t, s, loginFrame(testIMEI))
			res := mustDecode(t, s, tcpFrame(tc.data))
			if res.Ack != nil {
				t.Errorf("GPRS message acked with %x", res.Ack)
			}
			if tc.result == "" {
				if len(res.Signals) != 0 {
					t.Fatalf("%d signals, want none", len(res.Signals))
				}
				return
			}
			if len(res.Signals) != 1 {
				t.Fatalf("%d signals, want 1", len(res.Signals))
			}
			g := res.Signals[0]
			if g.Attrs["result"] != tc.result || !g.TS.Equal(tc.ts) || g.DeviceID != testIMEI {
				t.Fatalf("result %#v ts %v device %q; want %q at %v", g.Attrs["result"], g.TS, g.DeviceID, tc.result, tc.ts)
			}
			if !math.IsNaN(g.Lat) {
				t.Errorf("GPRS message has a position: %v", g.Lat)
			}
		})
	}
	s := newSession(t, plugins.SessionConfig{})
	mustDecode(t, s, loginFrame(testIMEI))
	_, err := s.Decode(tcpFrame(gprsData(Codec13, msgResponse, []byte{1, 2})), recv)
	if !errors.Is(err, plugins.ErrMalformed) {
		t.Fatalf("codec 13 without timestamp: err %v, want ErrMalformed", err)
	}
}

// readHex reads one hex frame per line, skipping blanks and # comments.
func readHex(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExtendedIOSection(t *testing.T) {
	// Codec 8 frames from an FMB130 with the 16-byte IO section: decoded
	// by the fallback without options, and with extended=true directly.
	frames := readHex(t, "testdata/traccar-tcp.hex")
	frame := frames[len(frames)-1]
	for _, opts := range []map[string]string{nil, {"extended": "true"}} {
		s := newSession(t, plugins.SessionConfig{Options: plugins.MustDecodeOptions(&Decoder{}, opts)})
		mustDecode(t, s, loginFrame(testIMEI))
		res := mustDecode(t, s, frame)
		if len(res.Signals) != 11 || !bytes.Equal(res.Ack, []byte{0, 0, 0, 11}) {
			t.Fatalf("options %v: %d signals, ack %x; want 11", opts, len(res.Signals), res.Ack)
		}
	}
	// Forcing the extended layout onto a standard frame fails cleanly.
	s := newSession(t, plugins.SessionConfig{Options: plugins.MustDecodeOptions(&Decoder{}, map[string]string{"extended": "true"})})
	mustDecode(t, s, loginFrame(testIMEI))
	if _, err := s.Decode(tcpFrame(avlData(Codec8, []rec{sampleRecord})), recv); !errors.Is(err, plugins.ErrMalformed) {
		t.Fatalf("standard frame with extended=true: err %v, want ErrMalformed", err)
	}
}

// TestGolden replays the Traccar captures through `fleetcore decode`'s
// engine and compares with the reviewed output under testdata/.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		in string
		tr plugins.Transport
	}{
		{"traccar-tcp", plugins.TCP},
		{"traccar-photo", plugins.TCP},
		{"traccar-udp", plugins.UDP},
	} {
		t.Run(tc.in, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.in+".hex"))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = replay.Run(&Decoder{}, bytes.NewReader(in), &out, replay.Options{
				Hex: true, Transport: tc.tr, Now: func() time.Time { return recv },
			})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.in+".golden.jsonl")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("output differs from %s; run go test -run TestGolden -update and review the diff", golden)
			}
		})
	}
}

func TestConformanceTCP(t *testing.T) {
	frames := [][]byte{loginFrame(testIMEI)}
	for _, f := range readHex(t, "testdata/traccar-tcp.hex") {
		// Valid data frames only (codec 12 replies included: the suite
		// replays them in fresh sessions at a later receive time, and they
		// keep the time of their first copy).
		if len(f) > 12 && f[0] == 0 && CRC16(f[8:len(f)-4]) == uint16(binary.BigEndian.Uint32(f[len(f)-4:])) && len(f) == int(binary.BigEndian.Uint32(f[4:8]))+12 {
			frames = append(frames, f)
		}
	}
	frames = append(frames, []byte{0xFF}, tcpFrame(avlData(Codec8, []rec{sampleRecord})))
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames: frames,
		Oversized: [][]byte{
			{0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF},
			{0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00, Codec8},
			{0x7F, 0xFF, '3', '5'},
		},
	})
}

func TestConformanceUDP(t *testing.T) {
	frames := readHex(t, "testdata/traccar-udp.hex")
	frames = append(frames, udpDatagram(7, 8, testIMEI, avlData(Codec8E, []rec{sampleRecord})))
	plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Transport: plugins.UDP})
}

func TestRegistered(t *testing.T) {
	d, ok := plugins.Decoders.Lookup(Name)
	if !ok {
		t.Fatal("teltonika is not registered")
	}
	if info := d.Info(); info.DefaultPort != 5027 || len(info.Transports) != 2 {
		t.Fatalf("info = %+v", info)
	}
}

func BenchmarkDecodeCodec8(b *testing.B) {
	// A typical FMB codec 8 frame: 4 records with ~10 IO elements each.
	recs := []rec{sampleRecord, sampleRecord, sampleRecord, sampleRecord}
	frame := tcpFrame(avlData(Codec8, recs))
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	if _, err := s.Decode(loginFrame(testIMEI), recv); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n, err := s.Frame(frame)
		if err != nil || n != len(frame) {
			b.Fatal(n, err)
		}
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}
