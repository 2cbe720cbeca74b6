package jt808

import (
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

var update = flag.Bool("update", false, "rewrite the golden files")

var recvTime = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

// phone is the BCD terminal phone 013912345678 (device id 13912345678).
var phone = []byte{0x01, 0x39, 0x12, 0x34, 0x56, 0x78}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// msg builds a terminal message of the 2013 layout (Response builds any
// message: the framing is the same in both directions).
func msg(id, serial uint16, body []byte) []byte { return Response(id, -1, phone, serial, body) }

func bcd(t time.Time) []byte {
	t = t.In(time.FixedZone("GMT+8", 8*3600))
	var out []byte
	for _, v := range []int{t.Year() % 100, int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()} {
		out = append(out, byte(v/10)<<4|byte(v%10))
	}
	return out
}

// location builds a 0x0200 body: alarm, status, position, altitude,
// speed, course, time, then extra items.
func location(alarm, status uint32, lat, lon float64, alt int16, speed, course float64, ts time.Time, extra ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, alarm)
	b = binary.BigEndian.AppendUint32(b, status)
	b = binary.BigEndian.AppendUint32(b, uint32(math.Round(math.Abs(lat)*1e6)))
	b = binary.BigEndian.AppendUint32(b, uint32(math.Round(math.Abs(lon)*1e6)))
	b = binary.BigEndian.AppendUint16(b, uint16(alt))
	b = binary.BigEndian.AppendUint16(b, uint16(math.Round(speed*10)))
	b = binary.BigEndian.AppendUint16(b, uint16(course))
	b = append(b, bcd(ts)...)
	return append(b, extra...)
}

var fixTime = time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)

// conversation is a device's session: register, auth, heartbeat, a
// location with standard and OBD items (its latitude holds a 0x7E byte,
// so the frame is escaped), a batch of two, transparent OBD data.
func conversation() [][]byte {
	reg := append([]byte{0, 44, 1, 0x2c}, "FLEET"...)
	reg = append(reg, []byte("MODEL-X\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")...)
	reg = append(reg, "1234567"...)
	reg = append(reg, 1)
	reg = append(reg, "TEST123"...)
	loc := location(0, 0x03, 22.5435, 114.0579, 42, 61.3, 270, fixTime,
		0x01, 4, 0, 0, 0x30, 0x39, // mileage 1234.5 km
		0x30, 1, 25, // rssi
		0x31, 1, 9, // satellites
		0x81, 2, 0x0b, 0xb8, // rpm 3000
		0x84, 1, 130, // coolant 90 °C
		0x8e, 1, 55, // fuel 55 %
		0x99, 2, 0x7d, 0x7e, // unknown item, kept as x99
	)
	binary.BigEndian.PutUint32(loc[8:], 22543486) // 0x0157FD7E: holds 0x7E
	item := func(ts time.Time, lat float64) []byte {
		b := location(0, 0x02, lat, 114.06, 10, 0, 0, ts)
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	batch := append([]byte{0, 2, 1}, item(fixTime.Add(-time.Minute), 22.54)...)
	batch = append(batch, item(fixTime.Add(-30*time.Second), 22.541)...)
	obd := append([]byte{0xf0}, bcd(fixTime)...)
	obd = append(obd, 0, 2, 0x01, 3,
		0x05, 0x36, 2, 0x0a, 0x28, // rpm 2600
		0x05, 0x2d, 1, 125, // coolant 85 °C
		0x05, 0x46, 4, 0, 0, 0x30, 0x39, // odometer 1234.5 km
	)
	obd = binary.BigEndian.AppendUint32(obd, 0x03)
	obd = binary.BigEndian.AppendUint32(obd, 22543500)
	obd = binary.BigEndian.AppendUint32(obd, 114057900)
	return [][]byte{
		msg(msgRegister, 1, reg),
		msg(msgAuth, 2, []byte("13912345678")),
		msg(msgHeartbeat, 3, nil),
		msg(msgLocation, 4, loc),
		msg(msgLocationBatch, 5, batch),
		msg(msgTransparent, 6, obd),
	}
}

func newSession(opts map[string]string) plugins.Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, Options: plugins.MustDecodeOptions(&Decoder{}, opts)})
}

func TestEscaping(t *testing.T) {
	tests := []struct {
		name, wire, content string
		err                 error
	}{
		{"plain", "0102", "0102", nil},
		{"7e", "7d02", "7e", nil},
		{"7d", "7d01", "7d", nil},
		{"both", "307d02087d0155", "307e087d55", nil},
		{"bad escape", "7d03", "", plugins.ErrMalformed},
		{"trailing 7d", "017d", "", plugins.ErrMalformed},
		{"raw 7e", "017e02", "", plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unescape(mustHex(tt.wire))
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("Unescape error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if hex.EncodeToString(got) != tt.content {
				t.Errorf("Unescape = %x, want %s", got, tt.content)
			}
			if back := Escape(nil, got); hex.EncodeToString(back) != tt.wire {
				t.Errorf("Escape = %x, want %s", back, tt.wire)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	loc := conversation()[3]
	tests := []struct {
		name string
		in   []byte
		max  int
		want int
		err  error
	}{
		{"complete", loc, 0, len(loc), nil},
		{"two messages", append(append([]byte(nil), loc...), loc...), 0, len(loc), nil},
		{"prefix", loc[:len(loc)-1], 0, 0, nil},
		{"one byte", loc[:1], 0, 0, nil},
		{"garbage", []byte("$$\x7e"), 0, 0, plugins.ErrMalformed},
		{"empty message", []byte{0x7e, 0x7e}, 0, 0, plugins.ErrMalformed},
		{"too large", append([]byte{0x7e}, make([]byte, 100)...), 64, 0, plugins.ErrTooLarge},
		{"text reply", []byte("(123,ELOCK)x"), 0, 11, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: tt.max})
			n, err := s.Frame(tt.in)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) || n != tt.want {
				t.Fatalf("Frame = %d, %v; want %d, %v", n, err, tt.want, tt.err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := conversation()[3]
	badXOR := append([]byte(nil), good...)
	badXOR[len(badXOR)-2] ^= 0x01
	if badXOR[len(badXOR)-2] == 0x7e || badXOR[len(badXOR)-2] == 0x7d {
		badXOR[len(badXOR)-2] ^= 0x03
	}
	m, _ := Unescape(good[1 : len(good)-1])
	m[3]++ // body length one more than the body
	m[len(m)-1] = Checksum(m[:len(m)-1])
	badLen := append(Escape([]byte{0x7e}, m), 0x7e)
	enc := msg(msgLocation, 9, location(0, 2, 1, 1, 0, 0, 0, fixTime))
	encM, _ := Unescape(enc[1 : len(enc)-1])
	encM[2] |= 0x04 // RSA flag
	encM[len(encM)-1] = Checksum(encM[:len(encM)-1])
	encrypted := append(Escape([]byte{0x7e}, encM), 0x7e)
	tests := []struct {
		name  string
		frame []byte
		allow func(string) bool
		err   error
	}{
		{"checksum", badXOR, nil, plugins.ErrChecksum},
		{"length", badLen, nil, plugins.ErrMalformed},
		{"short", []byte{0x7e, 1, 2, 3, 0x7e}, nil, plugins.ErrMalformed},
		{"no delimiter", good[:len(good)-1], nil, plugins.ErrMalformed},
		{"encrypted", encrypted, nil, plugins.ErrUnsupported},
		{"not allowed", good, func(string) bool { return false }, plugins.ErrUnauthorized},
		{"bad time", msg(msgLocation, 9, location(0, 2, 1, 1, 0, 0, 0, fixTime)[:22]), nil, plugins.ErrMalformed},
		{"time not BCD", msg(msgLocation, 9, append(location(0, 2, 1, 1, 0, 0, 0, fixTime)[:22], 0x2a, 0x11, 0x30, 1, 2, 3)), nil, plugins.ErrMalformed},
		{"latitude out of range", msg(msgLocation, 9, location(0, 2, 91, 1, 0, 0, 0, fixTime)), nil, signal.ErrInvalid},
		{"text before any message", []byte("(1,2)"), nil, plugins.ErrNoDevice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{AllowDevice: tt.allow})
			res, err := s.Decode(tt.frame, recvTime)
			if err != nil && len(res.Ack) != 0 {
				t.Errorf("ack %x for a rejected frame", res.Ack)
			}
			if err == nil {
				// What the gateway checks before it submits (and acks).
				err = plugins.CheckSignals(res.Signals)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
		})
	}
}

func TestConversation(t *testing.T) {
	s := newSession(nil)
	c := conversation()
	type want struct {
		signals int
		ack     string
	}
	wants := []want{
		{0, hex.EncodeToString(RegisterResponse(-1, phone, 0, 1, "13912345678"))},
		{0, hex.EncodeToString(GeneralResponse(-1, phone, 1, 2, msgAuth))},
		{0, hex.EncodeToString(GeneralResponse(-1, phone, 2, 3, msgHeartbeat))},
		{1, hex.EncodeToString(GeneralResponse(-1, phone, 3, 4, msgLocation))},
		{2, hex.EncodeToString(GeneralResponse(-1, phone, 4, 5, msgLocationBatch))},
		{1, hex.EncodeToString(GeneralResponse(-1, phone, 5, 6, msgTransparent))},
	}
	var sigs []signal.Signal
	for i, f := range c {
		res, err := s.Decode(f, recvTime)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if err := plugins.CheckSignals(res.Signals); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(res.Signals) != wants[i].signals || hex.EncodeToString(res.Ack) != wants[i].ack {
			t.Errorf("frame %d: %d signals, ack %x; want %d, %s", i, len(res.Signals), res.Ack, wants[i].signals, wants[i].ack)
		}
		if res.DeviceID != "13912345678" {
			t.Errorf("frame %d: device %q", i, res.DeviceID)
		}
		sigs = append(sigs, res.Signals...)
	}
	loc := sigs[0]
	checks := []struct {
		name      string
		got, want float64
	}{
		{"lat", loc.Lat, 22.543486}, {"lon", loc.Lon, 114.0579}, {"alt", loc.Alt, 42},
		{"speed", loc.Speed, 61.3}, {"heading", loc.Heading, 270}, {"sats", loc.Sats, 9},
		{"odometer", loc.Odometer, 1234.5}, {"rpm", loc.RPM, 3000}, {"coolant", loc.Coolant, 90},
		{"fuel", loc.Fuel, 55},
		{"obd rpm", sigs[3].RPM, 2600}, {"obd coolant", sigs[3].Coolant, 85}, {"obd odometer", sigs[3].Odometer, 1234.5},
		{"obd lat", sigs[3].Lat, 22.5435},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !loc.TS.Equal(fixTime) || loc.Valid != signal.True {
		t.Errorf("ts %v valid %v, want %v true", loc.TS, loc.Valid, fixTime)
	}
	if loc.Attrs["rssi"] != int64(25) || loc.Attrs["x99"] != "7d7e" || loc.Attrs["ignition"] != true {
		t.Errorf("attrs %v", loc.Attrs)
	}
	if !sigs[1].TS.Equal(fixTime.Add(-time.Minute)) || sigs[2].Attrs["archive"] != true {
		t.Errorf("batch: %v %v", sigs[1].TS, sigs[2].Attrs)
	}
}

func TestVersion2019(t *testing.T) {
	phone19 := mustHex("00000356307042441013")
	f := Response(msgLocation, 1, phone19, 7, location(0, 0x02|0x04|0x08, -33.9, -70.6, 500, 10, 5, fixTime))
	s := newSession(nil)
	res, err := s.Decode(f, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	sg := res.Signals[0]
	if sg.DeviceID != "356307042441013" || math.Abs(sg.Lat+33.9) > 1e-6 || math.Abs(sg.Lon+70.6) > 1e-6 {
		t.Errorf("signal %s %v,%v", sg.DeviceID, sg.Lat, sg.Lon)
	}
	if want := GeneralResponse(1, phone19, 0, 7, msgLocation); !bytes.Equal(res.Ack, want) {
		t.Errorf("ack %x, want %x", res.Ack, want)
	}
}

func TestTimeOffset(t *testing.T) {
	f := msg(msgLocation, 1, location(0, 2, 1, 1, 0, 0, 0, fixTime))
	for _, tt := range []struct {
		offset string
		want   time.Time
	}{
		{"8h", fixTime},
		{"0s", fixTime.Add(8 * time.Hour)}, // the BCD time read as UTC
	} {
		t.Run(tt.offset, func(t *testing.T) {
			res, err := newSession(map[string]string{"time_offset": tt.offset}).Decode(f, recvTime)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Signals[0].TS.Equal(tt.want) {
				t.Errorf("ts %v, want %v", res.Signals[0].TS, tt.want)
			}
		})
	}
}

func TestDeviceID(t *testing.T) {
	tests := []struct{ phone, want string }{
		{"013912345678", "13912345678"},
		{"000000000000", "0"},
		{"00000356307042441013", "356307042441013"},
		{"4eb6fb4ad628", "865478070001047"}, // not BCD: a binary IMEI and its Luhn digit
	}
	for _, tt := range tests {
		t.Run(tt.phone, func(t *testing.T) {
			if got := DeviceID(mustHex(tt.phone)); got != tt.want {
				t.Errorf("DeviceID = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNoTime(t *testing.T) {
	// A location with an all-zero time (no fix since boot) is stamped
	// with the receive time of its first copy, and keeps it on a resend.
	f := msg(msgLocation, 1, location(0, 0, 0, 0, 0, 0, 0, time.Time{}))
	copy(f[len(f)-8:], []byte{0, 0, 0, 0, 0, 0}) // zero BCD time
	m, _ := Unescape(f[1 : len(f)-1])
	m[len(m)-1] = Checksum(m[:len(m)-1])
	f = append(Escape([]byte{0x7e}, m), 0x7e)
	dec := &Decoder{}
	a, err := dec.NewSession(plugins.SessionConfig{}).Decode(f, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dec.NewSession(plugins.SessionConfig{}).Decode(f, recvTime.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := a.Signals[0], b.Signals[0]
	if !sa.TS.Equal(recvTime) || sa.Key() != sb.Key() || !math.IsNaN(sa.Lat) || sa.Attrs["time_source"] != "server" {
		t.Errorf("first %v %v, resend %v", sa.TS, sa.Lat, sb.TS)
	}
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    conversation(),
		Oversized: [][]byte{append([]byte{0x7e}, bytes.Repeat([]byte{1}, 70000)...)},
	})
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "input.hex"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out bytes.Buffer
			if err := replay.Run(&Decoder{}, f, &out, replay.Options{Hex: true, Now: func() time.Time { return recvTime }}); err != nil {
				t.Fatal(err)
			}
			exp := filepath.Join(dir, "expected.jsonl")
			if *update {
				if err := os.WriteFile(exp, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(exp)
			if err != nil {
				t.Fatalf("reading %s (run with -update to create): %v", exp, err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from %s:\n got:\n%s\nwant:\n%s", exp, out.Bytes(), want)
			}
		})
	}
}

// TestWriteConversation keeps testdata/conversation/input.hex equal to
// conversation() (rewritten with -update).
func TestWriteConversation(t *testing.T) {
	var b strings.Builder
	b.WriteString("# register, auth, heartbeat, location (escaped), batch of 2, transparent OBD data\n")
	for _, f := range conversation() {
		b.WriteString(hex.EncodeToString(f) + "\n")
	}
	path := filepath.Join("testdata", "conversation", "input.hex")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != b.String() {
		t.Errorf("%s differs from conversation() (run with -update): %v", path, err)
	}
}

func BenchmarkDecode(b *testing.B) {
	frames := conversation()[3:]
	s := newSession(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Decode(frames[i%len(frames)], recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// TestLocation2 decodes a JT701 lock's blind-area report (0x5502) from
// Traccar's tests: 16.07.20 02:39:27 UTC, 06°13.2126' N, 075°36.1086' W
// (flags 0x63: fix, north, west); property bit 15 asks for the vendor
// response 0x4401 (message id, result 0).
func TestLocation2(t *testing.T) {
	f := mustHex("7e55028436740190311185091607200239270613212607536108630000170a000000014600005ded05e203000000000b010d0c06005b003e00ab0a0302dc65100100a37e")
	res, err := newSession(nil).Decode(f, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 || hex.EncodeToString(res.Ack) != "7e4401000374019031118500550200517e" {
		t.Fatalf("%d signals, ack %x", len(res.Signals), res.Ack)
	}
	sg := res.Signals[0]
	want := time.Date(2020, 7, 16, 2, 39, 27, 0, time.UTC)
	if sg.DeviceID != "740190311185" || !sg.TS.Equal(want) || sg.Valid != signal.True ||
		math.Abs(sg.Lat-(6+13.2126/60)) > 1e-9 || math.Abs(sg.Lon+(75+36.1086/60)) > 1e-9 {
		t.Errorf("signal %s %v %v,%v valid %v", sg.DeviceID, sg.TS, sg.Lat, sg.Lon, sg.Valid)
	}
	if sg.Attrs["tilt"] != "[91,62,171]" || sg.Attrs["archive"] != true || sg.Sats != 0x0a {
		t.Errorf("attrs %v sats %v", sg.Attrs, sg.Sats)
	}
}
