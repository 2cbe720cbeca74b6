package ruptela

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

// readHex reads one frame per line (# comments).
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

// packet builds a packet: length, IMEI, command, data, CRC.
func packet(imei uint64, cmd byte, data []byte) []byte {
	body := binary.BigEndian.AppendUint64(nil, imei)
	body = append(append(body, cmd), data...)
	b := binary.BigEndian.AppendUint16(nil, uint16(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint16(b, CRC16(body))
}

func session(t testing.TB) *Session {
	t.Helper()
	return (&Decoder{}).NewSession(plugins.SessionConfig{}).(*Session)
}

func TestCRC16Kermit(t *testing.T) {
	// The check value of CRC-16/Kermit, and Ruptela's records ack.
	if got := CRC16([]byte("123456789")); got != 0x2189 {
		t.Errorf("CRC16(123456789) = %04x, want 2189", got)
	}
	if got := ack(cmdRecordsAck, 1); hex.EncodeToString(got) != "0002640113bc" {
		t.Errorf("records ack = %x, want 0002640113bc", got)
	}
	if got := ack(ackOffset+CmdDTCs, 1); hex.EncodeToString(got) != "00026d01c4a4" {
		t.Errorf("DTC ack = %x, want 00026d01c4a4", got)
	}
}

func TestRecords(t *testing.T) {
	frames := conversation(t)
	s := session(t)
	// frames[2]: command 1 from 863071016796572, one record.
	res, err := s.Decode(frames[2], recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 || res.DeviceID != "863071016796572" {
		t.Fatalf("got %d signals for %q", len(res.Signals), res.DeviceID)
	}
	g := res.Signals[0]
	if !g.TS.Equal(time.Date(2015, 10, 6, 14, 21, 33, 0, time.UTC)) {
		t.Errorf("ts = %v", g.TS)
	}
	if math.Abs(g.Lat-5.6292216) > 1e-7 || math.Abs(g.Lon+0.067495) > 1e-7 || g.Alt != 48.7 || g.Sats != 9 || g.HDOP != 1.3 {
		t.Errorf("position %v,%v alt %v sats %v hdop %v", g.Lat, g.Lon, g.Alt, g.Sats, g.HDOP)
	}
	if g.Voltage != 13.286 || g.Odometer != 30.714 || g.Attrs["battery_v"] != 4.097 || g.Attrs["device_temp"] != int64(44) {
		t.Errorf("voltage %v odometer %v attrs %v", g.Voltage, g.Odometer, g.Attrs)
	}
	if string(res.Ack) != string(ack(cmdRecordsAck, 1)) {
		t.Errorf("ack %x", res.Ack)
	}
	if g.Protocol != Name || len(g.Frame) != len(frames[2]) || !g.Recv.Equal(recv) {
		t.Errorf("signal not finished: %+v", g)
	}
}

func TestExtendedRecordsAndDriver(t *testing.T) {
	frames := conversation(t)
	s := session(t)
	// frames[6]: command 68 with the driver card in IO 34.
	res, err := s.Decode(frames[6], recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) == 0 {
		t.Fatal("no signals")
	}
	if got := res.Signals[0].Attrs["driver_id"]; got != "01d042f31d000030" {
		t.Errorf("driver_id = %v, want 01d042f31d000030 (Traccar's assertion)", got)
	}
	// frames[7]: extended records whose second part (record extension 0x31)
	// continues the first (0x30): merged into one record per moment.
	res, err = s.Decode(frames[7], recv)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(res.Signals); i++ {
		if res.Signals[i].TS.Equal(res.Signals[i-1].TS) {
			t.Errorf("records %d and %d share ts %v: continuation not merged", i-1, i, res.Signals[i].TS)
		}
	}
}

func TestFMSValues(t *testing.T) {
	// One extended-free record with RPM (IO 94, 0.25 rpm/bit), fuel level
	// (98, 100/255 %), odometer (65, m), ignition (251), and an unknown
	// IO; then the FMS "not available" RPM.
	rec := func(io2 []byte) []byte {
		r := binary.BigEndian.AppendUint32(nil, 1700000000)
		r = append(r, 0, 0)                                // ts ext, priority
		r = binary.BigEndian.AppendUint32(r, 250000000)    // lon 25°
		r = binary.BigEndian.AppendUint32(r, 546000000)    // lat 54.6°
		r = append(r, 0x00, 0x64, 0x2e, 0xe0, 7, 0, 50, 9) // alt 10 m, course 120°, 7 sats, 50 km/h, hdop 0.9
		r = append(r, 3)                                   // event
		r = append(r, 2, 251, 1, 98, 0xff)                 // 1-byte IO: ignition, fuel 255 (n/a)
		r = append(r, io2...)                              // 2-byte IO
		r = append(r, 1, 65, 0, 0x01, 0xe2, 0x40)          // 4-byte IO: odometer 123456 m
		return append(r, 0)                                // no 8-byte IO
	}
	data := append([]byte{0, 1}, rec([]byte{2, 94, 0x2e, 0xe0, 7, 0x01, 0x02})...)
	s := session(t)
	res, err := s.Decode(packet(123456789012345, CmdRecords, data), recv)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Signals[0]
	if g.RPM != 3000 || g.Odometer != 123.456 || g.Attrs["ignition"] != true || !math.IsNaN(g.Fuel) || g.Attrs["io98"] != int64(255) || g.Attrs["io7"] != int64(0x0102) {
		t.Errorf("rpm %v odometer %v fuel %v attrs %v", g.RPM, g.Odometer, g.Fuel, g.Attrs)
	}
	if g.Heading != 120 || g.Speed != 50 || g.Alt != 10 || g.HDOP != 0.9 || g.DeviceID != "123456789012345" {
		t.Errorf("position fields %+v", g)
	}
	// 0xFFFF engine speed is "not available": absent, kept raw.
	data = append([]byte{0, 1}, rec([]byte{1, 94, 0xff, 0xff})...)
	res, err = s.Decode(packet(123456789012345, CmdRecords, data), recv)
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Signals[0]; !math.IsNaN(g.RPM) || g.Attrs["io94"] != int64(0xffff) {
		t.Errorf("n/a rpm: %v %v", g.RPM, g.Attrs["io94"])
	}
}

func TestNoFix(t *testing.T) {
	// lon/lat 0x80000000: Ruptela's "no fix"; the position stays absent.
	r := binary.BigEndian.AppendUint32(nil, 1700000000)
	r = append(r, 0, 0)
	r = append(r, 0x80, 0, 0, 0, 0x80, 0, 0, 0)
	r = append(r, 0, 0, 0, 0, 0, 0, 0, 0) // alt, course, sats, speed, hdop
	r = append(r, 1, 0, 0, 0, 0)          // event, no IOs
	res, err := session(t).Decode(packet(1, CmdRecords, append([]byte{0, 1}, r...)), recv)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Signals[0]
	if v, known := g.Valid.Bool(); !known || v || !math.IsNaN(g.Lat) || !math.IsNaN(g.Lon) || !math.IsNaN(g.Speed) || !math.IsNaN(g.Sats) {
		t.Errorf("no-fix record: valid %v, %v,%v speed %v sats %v", g.Valid, g.Lat, g.Lon, g.Speed, g.Sats)
	}
}

func TestDTCs(t *testing.T) {
	var d []byte
	d = append(d, 2)
	for _, code := range []string{"P0301", "U0100"} {
		d = append(d, 0)
		d = binary.BigEndian.AppendUint32(d, 1700000000)
		d = binary.BigEndian.AppendUint32(d, 250000000)
		d = binary.BigEndian.AppendUint32(d, 546000000)
		d = append(d, 2)
		d = append(d, code...)
	}
	res, err := session(t).Decode(packet(1, CmdDTCs, d), recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 2 || res.Signals[0].DTCs[0] != "P0301" || res.Signals[1].DTCs[0] != "U0100" || res.Signals[0].Attrs["archive"] != true {
		t.Fatalf("signals %+v", res.Signals)
	}
	if res.Signals[0].DeviceID != "000000000000001" || res.Signals[0].Lat != 54.6 {
		t.Errorf("device %q lat %v", res.Signals[0].DeviceID, res.Signals[0].Lat)
	}
	if hex.EncodeToString(res.Ack) != "00026d01c4a4" {
		t.Errorf("ack %x", res.Ack)
	}
}

func TestIdentificationAndHeartbeat(t *testing.T) {
	s := session(t)
	res, err := s.Decode(conversation(t)[0], recv)
	if err != nil || len(res.Signals) != 0 {
		t.Fatalf("identification: %v, %d signals", err, len(res.Signals))
	}
	if want := ack(ackOffset+CmdIdentification, 1); string(res.Ack) != string(want) {
		t.Errorf("ack %x, want %x", res.Ack, want)
	}
	res, err = s.Decode(packet(1, CmdHeartbeat, nil), recv)
	if err != nil || string(res.Ack) != string(ack(ackOffset+CmdHeartbeat, 1)) {
		t.Errorf("heartbeat: %v, ack %x", err, res.Ack)
	}
}

func TestReplyServerTime(t *testing.T) {
	d := &Decoder{}
	f := packet(1, CmdSMSResponse, []byte("DIN1=1,DOUT1=0\x00\x00"))
	a, err := d.NewSession(plugins.SessionConfig{}).Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.NewSession(plugins.SessionConfig{}).Decode(f, recv.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Signals[0].Attrs["result"] != "DIN1=1,DOUT1=0" || !a.Signals[0].TS.Equal(b.Signals[0].TS) || !a.Signals[0].TS.Equal(recv) {
		t.Errorf("reply %v at %v, resend at %v", a.Signals[0].Attrs, a.Signals[0].TS, b.Signals[0].TS)
	}
	if a.Ack != nil {
		t.Errorf("a reply is not acked: %x", a.Ack)
	}
}

func TestRejects(t *testing.T) {
	good := conversation(t)[2]
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 1
	short := append([]byte{0, 3}, good[2:]...)
	for _, c := range []struct {
		name  string
		frame []byte
		cfg   plugins.SessionConfig
		want  error
	}{
		{"crc", badCRC, plugins.SessionConfig{}, plugins.ErrChecksum},
		{"length below IMEI and command", short, plugins.SessionConfig{}, plugins.ErrMalformed},
		{"length mismatch", good[:len(good)-1], plugins.SessionConfig{}, plugins.ErrMalformed},
		{"too large", good, plugins.SessionConfig{MaxFrame: 40}, plugins.ErrTooLarge},
		{"not allowed", good, plugins.SessionConfig{AllowDevice: func(string) bool { return false }}, plugins.ErrUnauthorized},
		{"unsupported command", packet(1, 5, []byte{1}), plugins.SessionConfig{}, plugins.ErrUnsupported},
		{"no records", packet(1, CmdRecords, []byte{0, 0}), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"truncated record", packet(1, CmdRecords, []byte{0, 1, 1, 2, 3}), plugins.SessionConfig{}, plugins.ErrMalformed},
		{"empty", nil, plugins.SessionConfig{}, plugins.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(c.cfg)
			res, err := s.Decode(c.frame, recv)
			if !errors.Is(err, c.want) || len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("Decode = %d signals, ack %x, %v; want %v", len(res.Signals), res.Ack, err, c.want)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	s := session(t)
	f := conversation(t)[2]
	buf := append(append([]byte(nil), f...), f[:5]...)
	if n, err := s.Frame(buf); n != len(f) || err != nil {
		t.Errorf("Frame = %d, %v; want %d", n, err, len(f))
	}
	for i := 0; i < len(f); i++ {
		if n, err := s.Frame(f[:i]); n != 0 || err != nil {
			t.Fatalf("Frame(prefix %d) = %d, %v", i, n, err)
		}
	}
	if _, err := s.Frame([]byte{0xff, 0xff}); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("huge length: %v", err)
	}
	if _, err := s.Frame([]byte{0, 1}); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("length 1: %v", err)
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 44, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    conversation(t),
		Oversized: [][]byte{{0xff, 0xff, 1, 2, 3}, {0x00, 0x02}},
	})
}

func TestRegistered(t *testing.T) {
	if d, ok := plugins.Decoders.Lookup(Name); !ok || d.Info().DefaultPort != DefaultPort {
		t.Fatal("ruptela not registered")
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := conversation(b)[2]
	s := session(b)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
