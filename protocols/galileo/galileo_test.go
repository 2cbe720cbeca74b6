package galileo

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var recv = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func readHex(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func conversation(t testing.TB) [][]byte { return readHex(t, "testdata/conversation/input.hex") }

// packet builds a packet of header h around data: length (LE, archive
// bit), data, CRC-16/Modbus (LE).
func packet(h byte, archive bool, data []byte) []byte {
	n := uint16(len(data))
	if archive {
		n |= archiveBit
	}
	b := binary.LittleEndian.AppendUint16([]byte{h}, n)
	b = append(b, data...)
	return binary.LittleEndian.AppendUint16(b, CRC16(b))
}

const imei = "861230043907626"

func imeiTag() []byte { return append([]byte{0x03}, imei...) }

func TestCRC16Modbus(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x4B37 {
		t.Errorf("CRC16(123456789) = %04x, want 4b37", got)
	}
}

func TestTagPacket(t *testing.T) {
	data := imeiTag()
	data = append(data, 0x20)
	data = binary.LittleEndian.AppendUint32(data, 1700000000)
	data = append(data, 0x30, 0x07) // valid, 7 satellites
	data = binary.LittleEndian.AppendUint32(data, uint32(54687157))
	data = binary.LittleEndian.AppendUint32(data, uint32(0x100000000-25279652))
	data = append(data, 0x33, 0xf4, 0x01, 0x10, 0x0e) // 50.0 km/h, 360.0° → 0x0e10 = 3600
	data = append(data, 0x34, 0x9c, 0xff)             // −100 m
	data = append(data, 0x41, 0x10, 0x32)             // 12.816 V
	data = append(data, 0xc1, 250, 130, 0x40, 0x1f)   // fuel 100 %, coolant 90 °C, 1000 rpm
	data = append(data, 0xd4, 0x40, 0xe2, 0x01, 0x00) // 123456 m
	p := packet(HeaderMain, false, data)
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	res, err := s.Decode(p, recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 || res.DeviceID != imei {
		t.Fatalf("%d signals, device %q", len(res.Signals), res.DeviceID)
	}
	g := res.Signals[0]
	if !g.TS.Equal(time.Unix(1700000000, 0)) || g.Lat != 54.687157 || g.Lon != -25.279652 || g.Sats != 7 || !g.Valid.Known() {
		t.Errorf("fix %v %v,%v sats %v valid %v", g.TS, g.Lat, g.Lon, g.Sats, g.Valid)
	}
	if g.Speed != 50 || g.Heading != 360 || g.Alt != -100 || g.Voltage != 12.816 || g.Fuel != 100 || g.Coolant != 90 || g.RPM != 1000 || g.Odometer != 123.456 {
		t.Errorf("values %+v", g)
	}
	// The ack is 0x02 and the packet's checksum as sent.
	if want := []byte{0x02, p[len(p)-2], p[len(p)-1]}; string(res.Ack) != string(want) {
		t.Errorf("ack %x, want %x", res.Ack, want)
	}
}

func TestArchiveRecords(t *testing.T) {
	// Two records in one archive packet: a repeated tag starts the next.
	var data []byte
	data = append(data, imeiTag()...)
	for _, ts := range []uint32{1700000000, 1700000060} {
		data = append(data, 0x20)
		data = binary.LittleEndian.AppendUint32(data, ts)
		data = append(data, 0x30, 0xf0, 1, 0, 0, 0, 2, 0, 0, 0) // not valid
	}
	res, err := (&Decoder{}).NewSession(plugins.SessionConfig{}).Decode(packet(HeaderMain, true, data), recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 2 || res.Signals[1].TS.Sub(res.Signals[0].TS) != time.Minute {
		t.Fatalf("signals %+v", res.Signals)
	}
	for _, g := range res.Signals {
		if v, ok := g.Valid.Bool(); !ok || v || g.Attrs["archive"] != true {
			t.Errorf("valid %v archive %v", g.Valid, g.Attrs["archive"])
		}
	}
}

func TestCompressed(t *testing.T) {
	// Minimal data set: 25 bits of seconds since New Year, the validity
	// bit, 22 bits of longitude, 21 of latitude, the alarm bit.
	secs := uint64(86400 * 10)
	lonF, latF := (25.0+180)/360*4194304, (54.5+90)/180*2097152
	lon, lat := uint64(lonF), uint64(latF)
	// 80 bits do not fit in a uint64: build the bytes bit by bit.
	buf := make([]byte, 10)
	set := func(from, n int, v uint64) {
		for i := 0; i < n; i++ {
			if v>>(n-1-i)&1 == 1 {
				buf[(from+i)/8] |= 0x80 >> ((from + i) % 8)
			}
		}
	}
	set(1, 25, secs)
	set(27, 22, lon)
	set(49, 21, lat)
	set(70, 1, 1)
	rec := append(append([]byte(nil), buf...), 2, 0x41, 0x35, 0x10, 0x32, 9) // tags 0x41, 0x35
	d := &Decoder{}
	s := d.NewSession(plugins.SessionConfig{})
	if _, err := s.Decode(packet(HeaderCompressed, false, rec), recv); !errors.Is(err, plugins.ErrNoDevice) {
		t.Fatalf("compressed before IMEI: %v", err)
	}
	if _, err := s.Decode(packet(HeaderMain, false, imeiTag()), recv); err != nil {
		t.Fatal(err)
	}
	res, err := s.Decode(packet(HeaderCompressed, false, rec), recv)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Signals[0]
	if !g.TS.Equal(time.Date(2026, 1, 11, 0, 0, 0, 0, time.UTC)) || math.Abs(g.Lon-25) > 1e-4 || math.Abs(g.Lat-54.5) > 1e-4 || g.Attrs["alarm"] != "general" {
		t.Errorf("minimal set: %v %v,%v %v", g.TS, g.Lat, g.Lon, g.Attrs)
	}
	if g.Voltage != 12.816 || g.HDOP != 0.9 || g.DeviceID != imei {
		t.Errorf("tags: %+v", g)
	}
	// Seconds that would put the record a day past the receive time
	// belong to the year before.
	buf = make([]byte, 10)
	set(1, 25, 86400*360)
	set(27, 22, lon)
	set(49, 21, lat)
	res, err = s.Decode(packet(HeaderCompressed, false, append(buf, 0)), recv.AddDate(0, -10, 0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Signals[0].TS.Year() != 2025 {
		t.Errorf("year: %v", res.Signals[0].TS)
	}
}

func TestIridium(t *testing.T) {
	f := readHex(t, "testdata/iridium/input.hex")[0]
	res, err := (&Decoder{}).NewSession(plugins.SessionConfig{}).Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Signals[0]
	if res.DeviceID != "300234069604590" || res.Ack != nil || math.Abs(g.Lat+33.733818) > 1e-6 || g.Attrs["momsn"] != int64(18) {
		t.Errorf("iridium: %q ack %x %+v", res.DeviceID, res.Ack, g)
	}
}

func TestReplyServerTime(t *testing.T) {
	f := conversation(t)[2] // IMEI, device number, request 0, reply text
	d := &Decoder{}
	a, err := d.NewSession(plugins.SessionConfig{}).Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.NewSession(plugins.SessionConfig{}).Decode(f, recv.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Signals[0].Attrs["result"].(string), "INALL:") || !a.Signals[0].TS.Equal(recv) || !b.Signals[0].TS.Equal(recv) {
		t.Errorf("reply %v at %v, resend at %v", a.Signals[0].Attrs, a.Signals[0].TS, b.Signals[0].TS)
	}
}

func TestRejects(t *testing.T) {
	good := conversation(t)[1]
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	for _, c := range []struct {
		name  string
		frame []byte
		cfg   plugins.SessionConfig
		want  error
	}{
		{"crc", bad, plugins.SessionConfig{}, plugins.ErrChecksum},
		{"short", good[:len(good)-1], plugins.SessionConfig{}, plugins.ErrMalformed},
		{"header", append([]byte{0x55}, good[1:]...), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"too large", good, plugins.SessionConfig{MaxFrame: 100}, plugins.ErrTooLarge},
		{"not allowed", good, plugins.SessionConfig{AllowDevice: func(string) bool { return false }}, plugins.ErrUnauthorized},
		{"no IMEI", packet(HeaderMain, false, []byte{0x10, 1, 0}), plugins.SessionConfig{}, plugins.ErrNoDevice},
		{"unknown tag", packet(HeaderMain, false, append(imeiTag(), 0x07, 1)), plugins.SessionConfig{}, plugins.ErrUnsupported},
		{"truncated tag", packet(HeaderMain, false, append(imeiTag(), 0x20, 1)), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"photo", packet(HeaderPhoto, false, []byte{0}), plugins.SessionConfig{}, plugins.ErrUnsupported},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := (&Decoder{}).NewSession(c.cfg).Decode(c.frame, recv)
			if !errors.Is(err, c.want) || len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("Decode = %d signals, ack %x, %v; want %v", len(res.Signals), res.Ack, err, c.want)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	for _, f := range append(conversation(t), readHex(t, "testdata/iridium/input.hex")...) {
		for i := 0; i < len(f); i++ {
			if n, err := s.Frame(f[:i]); n != 0 || err != nil {
				t.Fatalf("Frame(prefix %d of %d) = %d, %v", i, len(f), n, err)
			}
		}
		if n, err := s.Frame(append(append([]byte(nil), f...), 1, 2, 3)); n != len(f) || err != nil {
			t.Fatalf("Frame = %d, %v; want %d", n, err, len(f))
		}
	}
	if _, err := s.Frame([]byte{0x42}); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("bad header: %v", err)
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 66, Bad: 0},
		plugintest.GoldenCase{In: "iridium/input.hex", Golden: "iridium/expected.jsonl", Hex: true, OK: 1, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    conversation(t),
		Oversized: [][]byte{{0x01, 0xff, 0x7f, 0x03}, {0x08, 0xff, 0xff}},
		MaxFrame:  4096,
	})
}

func TestRegistered(t *testing.T) {
	if d, ok := plugins.Decoders.Lookup(Name); !ok || d.Info().DefaultPort != DefaultPort {
		t.Fatal("galileo not registered")
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := conversation(b)[1]
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
