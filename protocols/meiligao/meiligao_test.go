package meiligao

import (
	"bufio"
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

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite golden files")

var recv = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newSession(dec *Decoder, allow func(string) bool) *Session {
	return dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, AllowDevice: allow, Logger: hclog.NewNullLogger()}).(*Session)
}

func decode(t *testing.T, frame []byte) plugins.Result {
	t.Helper()
	res, err := newSession(&Decoder{}, nil).Decode(frame, recv)
	if err != nil {
		t.Fatalf("Decode(%x): %v", frame, err)
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatalf("Decode(%x): %v", frame, err)
	}
	return res
}

// conversation reads testdata/conversation/input.hex.
func conversation(t testing.TB) [][]byte {
	f, err := os.Open(filepath.Join("testdata", "conversation", "input.hex"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var frames [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	return frames
}

var id = []byte{0x67, 0x14, 0x40, 0x25, 0x88, 0x55, 0x40}

// build frames a command and its data with a valid length and CRC.
func build(cmd uint16, data string) []byte {
	b := response(id, cmd, []byte(data))
	b[0], b[1] = '$', '$'
	crc := crcCCITT(b[:len(b)-4])
	binary.BigEndian.PutUint16(b[len(b)-4:], crc)
	return b
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5 }

func TestCRC(t *testing.T) {
	// The check values of both CRC-16 variants over "123456789".
	if got := crcCCITT([]byte("123456789")); got != 0x29B1 {
		t.Errorf("CCITT-FALSE = %04x, want 29b1", got)
	}
	if got := crcX25([]byte("123456789")); got != 0x906E {
		t.Errorf("X-25 = %04x, want 906e", got)
	}
}

func TestPositions(t *testing.T) {
	frames := conversation(t)
	s := decode(t, frames[2]).Signals[0]
	if s.DeviceID != "67965020791089" || s.TS.Format(time.RFC3339) != "2015-09-30T11:31:18Z" || !near(s.Lat, 10.6328) || !near(s.Lon, -61.359465) || s.Valid != signal.True {
		t.Errorf("device %s ts %v pos %v,%v valid %v", s.DeviceID, s.TS, s.Lat, s.Lon, s.Valid)
	}
	if !near(s.Speed, 0.54*1.852) || !near(s.Heading, 2.42) || !near(s.HDOP, 0.77) || !near(s.Alt, 9.9) || !near(s.Odometer, 1187.127) || s.Attrs["adc2"] != int64(0x1a2) || s.Attrs["in1"] != false {
		t.Errorf("speed %v heading %v hdop %v alt %v odo %v attrs %v", s.Speed, s.Heading, s.HDOP, s.Alt, s.Odometer, s.Attrs)
	}
	r := decode(t, frames[len(frames)-1]).Signals[0]
	if r.TS.Format(time.RFC3339) != "2006-06-28T12:03:40Z" || r.Lat != 24 || r.Lon != 121 || r.Attrs["driver_id"] != "0010362751" {
		t.Errorf("rfid: ts %v pos %v,%v attrs %v", r.TS, r.Lat, r.Lon, r.Attrs)
	}
}

func TestCellTail(t *testing.T) {
	f := build(cmdPosition, "030330.000,A,1516.8099,N,10452.8855,E,0.00,33,081220,,*36|0.8|123|2100|0000,0000,020E,02AA|02080005089E00E1CF84|1C|172C582C|0B")
	s := decode(t, f).Signals[0]
	if s.Sats != 11 || s.Attrs["rssi"] != int64(0x1c) || !near(s.Odometer, 0x172C582C/1000.0) || s.Attrs["cell"] != "02080005089E00E1CF84" || s.Attrs["adc4"] != int64(0x2aa) || s.Attrs["in6"] != nil || s.Attrs["in1"] != true || s.Attrs["out1"] != false {
		t.Errorf("sats %v odo %v attrs %v", s.Sats, s.Odometer, s.Attrs)
	}
}

func TestAcks(t *testing.T) {
	frames := conversation(t)
	res := decode(t, frames[0])
	want := "40400012671440258855404000" // @@, length 18, id, 0x4000
	if len(res.Signals) != 0 || !strings.HasPrefix(hex.EncodeToString(res.Ack), want+"01") || len(res.Ack) != 18 {
		t.Errorf("login ack %x, %d signals", res.Ack, len(res.Signals))
	}
	if crc := binary.BigEndian.Uint16(res.Ack[14:16]); crc != crcCCITT(res.Ack[:14]) {
		t.Errorf("ack CRC %04x", crc)
	}
	hb := decode(t, frames[1])
	if len(hb.Signals) != 0 || binary.BigEndian.Uint16(hb.Ack[11:13]) != cmdHeartbeat {
		t.Errorf("heartbeat ack %x", hb.Ack)
	}
}

func TestAlarmOBDDTC(t *testing.T) {
	frames := conversation(t)
	a := decode(t, frames[3]).Signals[0]
	if a.Attrs["alarm"] != "sos" || a.TS.Format(time.RFC3339) != "2015-09-30T11:31:18Z" {
		t.Errorf("alarm attrs %v", a.Attrs)
	}
	o := decode(t, frames[4]).Signals[0]
	if !near(o.Voltage, 14.1) || o.RPM != 2687 || o.Speed != 90 || !near(o.Throttle, 21.57) || !near(o.EngineLoad, 4.7) || o.Coolant != 87 || !near(o.Odometer, 12345.6) || o.Attrs["time_source"] != "server" || !o.TS.Equal(recv) {
		t.Errorf("obd: voltage %v rpm %v speed %v throttle %v load %v coolant %v odo %v ts %v attrs %v", o.Voltage, o.RPM, o.Speed, o.Throttle, o.EngineLoad, o.Coolant, o.Odometer, o.TS, o.Attrs)
	}
	d := decode(t, frames[5]).Signals[0]
	if strings.Join(d.DTCs, " ") != "P0101 P0300" {
		t.Errorf("dtcs %v", d.DTCs)
	}
}

func TestRetransmission(t *testing.T) {
	s1 := "113118.000,A,1037.9678,N,06121.5679,W,0.54,2.42,300915,,,A*70|0.77|9.9|0000|0000,01a2|001187127"
	s2 := "113218.000,A,1037.9778,N,06121.5779,W,1.54,3.42,300915,,,A*70|0.77|9.9|0000|0000,01a2|001187200"
	res := decode(t, build(cmdRetransmission, "\x02\x00"+s1+"\\\x01"+s2))
	if len(res.Signals) != 2 || res.Signals[1].Attrs["alarm"] != "sos" || res.Signals[1].TS.Format(time.RFC3339) != "2015-09-30T11:32:18Z" {
		t.Errorf("%d signals: %v", len(res.Signals), res.Signals)
	}
}

func TestServerTimedResend(t *testing.T) {
	dec := &Decoder{}
	f := conversation(t)[4]
	a, err := newSession(dec, nil).Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSession(dec, nil).Decode(f, recv.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Signals[0].Key() != b.Signals[0].Key() {
		t.Errorf("keys differ")
	}
}

func TestRejections(t *testing.T) {
	good := conversation(t)[2]
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-3] ^= 1
	badLen := append([]byte(nil), good...)
	badLen[3]++
	tests := []struct {
		name  string
		frame []byte
		want  error
		field string
	}{
		{"crc", badCRC, plugins.ErrChecksum, "CRC"},
		{"length", badLen, plugins.ErrMalformed, "length"},
		{"latitude", build(cmdPosition, "113118.000,A,10x7.9678,N,06121.5679,W,0.54,2.42,300915,,,A*70"), plugins.ErrMalformed, "latitude"},
		{"date", build(cmdPosition, "113118.000,A,1037.9678,N,06121.5679,W,0.54,2.42,301315,,,A*70"), plugins.ErrMalformed, "date"},
		{"speed", build(cmdPosition, "113118.000,A,1037.9678,N,06121.5679,W,fast,2.42,300915,,,A*70"), plugins.ErrMalformed, "speed"},
		{"state", build(cmdPosition, "113118.000,A,1037.9678,N,06121.5679,W,0.54,2.42,300915,,,A*70|0.77|9.9|00z0"), plugins.ErrMalformed, "io state"},
		{"validity", build(cmdPosition, "113118.000,X,1037.9678,N,06121.5679,W,0.54,2.42,300915,,,A*70"), plugins.ErrMalformed, "validity"},
		{"obd", build(cmdOBD, "14.1,2687"), plugins.ErrMalformed, "OBD"},
		{"photo", build(cmdPhotoData, "\x01\x00\x00\x01\x00"), plugins.ErrUnsupported, "photo"},
		{"unknown", build(0x1234, ""), plugins.ErrUnsupported, "1234"},
		{"truncated retransmission", build(cmdRetransmission, "\x03\x00"), plugins.ErrMalformed, "record 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession(&Decoder{}, nil).Decode(tt.frame, recv)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) || len(res.Signals) > 0 {
				t.Errorf("err %v, %d signals; want %v naming %q", err, len(res.Signals), tt.want, tt.field)
			}
		})
	}
	t.Run("not allowed", func(t *testing.T) {
		s := newSession(&Decoder{}, func(id string) bool { return id == "1" })
		if _, err := s.Decode(good, recv); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Errorf("err %v, want ErrUnauthorized", err)
		}
	})
	t.Run("id not BCD", func(t *testing.T) {
		f := build(cmdPosition, "x")
		f[5] = 0xab
		binary.BigEndian.PutUint16(f[len(f)-4:], crcCCITT(f[:len(f)-4]))
		if _, err := newSession(&Decoder{}, nil).Decode(f, recv); !errors.Is(err, plugins.ErrMalformed) {
			t.Errorf("err %v", err)
		}
	})
}

func TestFrame(t *testing.T) {
	s := newSession(&Decoder{}, nil)
	good := conversation(t)[2]
	tests := []struct {
		in   []byte
		n    int
		want error
	}{
		{append(append([]byte(nil), good...), '$'), len(good), nil},
		{good[:10], 0, nil},
		{[]byte("$"), 0, nil},
		{[]byte("$x"), 0, plugins.ErrMalformed},
		{[]byte{'$', '$', 0, 5}, 0, plugins.ErrMalformed},
		{[]byte{'$', '$', 0xff, 0xff}, 0, plugins.ErrTooLarge},
		{append(good[:len(good)-2:len(good)-2], 'x', 'y'), 0, plugins.ErrMalformed},
	}
	for i, tt := range tests {
		n, err := s.Frame(tt.in)
		if n != tt.n || !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("case %d: Frame = %d, %v; want %d, %v", i, n, err, tt.n, tt.want)
		}
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "traccar.hex", Golden: "traccar.golden.jsonl", Hex: true, OK: 18, Bad: 15},
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 5, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	frames := conversation(t)
	oversized := [][]byte{{'$', '$', 0xff, 0xff, 1, 2, 3}}
	t.Run("tcp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Oversized: oversized, MaxFrame: 4096})
	})
	t.Run("udp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Transport: plugins.UDP, Frames: frames})
	})
}

func BenchmarkDecode(b *testing.B) {
	frames := conversation(b)
	for _, c := range []struct {
		name  string
		frame []byte
	}{{"position", frames[2]}, {"obd", frames[4]}} {
		b.Run(c.name, func(b *testing.B) {
			s := newSession(&Decoder{}, nil)
			b.SetBytes(int64(len(c.frame)))
			for b.Loop() {
				if _, err := s.Decode(c.frame, recv); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
