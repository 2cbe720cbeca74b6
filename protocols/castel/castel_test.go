package castel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
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

var update = flag.Bool("update", false, "rewrite testdata/<case>/expected.jsonl")

var recvTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Captures from Traccar's CastelProtocolDecoderTest, by their corpus seq
// in testdata/traccar/input.hex.
var (
	capHeartbeat = capture(49)
	capLogin     = capture(40)
	capAlarm     = capture(4)
	capGPS       = capture(36)
	capDTCComm   = capture(6)
	capDTC       = capture(7)
	capVIN       = capture(8)
	capComp      = capture(3)
	capOBD       = capture(25)
	capCCBeat    = capture(41)
	capMPIPLogin = capture(30)
	capMPIPGPS   = capture(14)
	capSupported = capture(24)
	// seq 19: the server's 0x9001 login response, sent by a device.
	capServerAck = mustHex("404029000432313345503230313630303035383500000000009001ffffffff0000b4fc1c582b6e0d0a")
)

// capture returns the frame after "# seq n" in testdata/traccar/input.hex.
func capture(n int) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "traccar", "input.hex"))
	if err != nil {
		panic(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == fmt.Sprintf("# seq %d", n) && i+1 < len(lines) {
			return mustHex(strings.TrimSpace(lines[i+1]))
		}
	}
	panic(fmt.Sprintf("no seq %d", n))
}

func session() plugins.Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096})
}

func decodeOne(t *testing.T, frame []byte) plugins.Result {
	t.Helper()
	res, err := session().Decode(frame, recvTime)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatalf("CheckSignals: %v", err)
	}
	return res
}

func TestCRC(t *testing.T) {
	if got := CRC([]byte("123456789")); got != 0x906E { // CRC-16/X-25 check value
		t.Fatalf("CRC = %04x, want 906e", got)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestAcks pins the exact bytes of every reply Traccar sends.
func TestAcks(t *testing.T) {
	id := func(f []byte, off int) []byte { return f[off : off+20] }
	loginContent := append([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0}, binary.LittleEndian.AppendUint32(nil, uint32(recvTime.Unix()))...)
	tests := []struct {
		name  string
		frame []byte
		want  []byte
	}{
		{"heartbeat 0x1003 → 0x9003", capHeartbeat, mustHex("40401f0004" + hex.EncodeToString(id(capHeartbeat, 5)) + "9003" + "")},
		{"login 0x1001 → 0x9001", capLogin, nil},
		{"alarm 0x4007 → 0xC007 with the alarm index", capAlarm, nil},
		{"CC heartbeat 0x4206 → 0x8206", capCCBeat, nil},
		{"MPIP login 0x2001 → short 0x1001", capMPIPLogin, nil},
		{"MPIP location 0x4001 → echo", capMPIPGPS, nil},
		{"GPS 0x4001: no reply", capGPS, nil},
	}
	// Build the expected replies by hand from the layout in README.md.
	build := func(version byte, id []byte, typ uint16, content []byte) []byte {
		n := 31 + len(content)
		b := []byte{'@', '@', byte(n), byte(n >> 8), version}
		b = append(b, id...)
		b = append(b, byte(typ>>8), byte(typ))
		b = append(b, content...)
		c := CRC(b)
		return append(b, byte(c), byte(c>>8), '\r', '\n')
	}
	tests[0].want = build(4, id(capHeartbeat, 5), 0x9003, nil)
	tests[1].want = build(4, id(capLogin, 5), 0x9001, loginContent)
	tests[2].want = build(4, id(capAlarm, 5), 0xC007, []byte{1, 0, 0, 0})
	tests[3].want = build(12, id(capCCBeat, 5), 0x8206, nil)
	short := []byte{'@', '@', 42, 0}
	short = append(short, id(capMPIPLogin, 4)...)
	short = append(short, 0x10, 0x01, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	c := CRC(short)
	tests[4].want = append(short, byte(c), byte(c>>8), '\r', '\n')
	tests[5].want = build(0xFF, id(capMPIPGPS, 4), 0x4001, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := decodeOne(t, tc.frame)
			if !bytes.Equal(res.Ack, tc.want) {
				t.Fatalf("ack\n got %x\nwant %x", res.Ack, tc.want)
			}
			if tc.want != nil {
				if n, err := frameLen(tc.want, 0); err != nil || n != len(tc.want) {
					t.Fatalf("the ack does not frame: %d, %v", n, err)
				}
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		check func(t *testing.T, sigs []signal.Signal)
	}{
		{"GPS record", capGPS, func(t *testing.T, s []signal.Signal) {
			if len(s) != 1 {
				t.Fatalf("%d signals", len(s))
			}
			g := s[0]
			if !g.TS.Equal(time.Date(2013, 10, 25, 4, 18, 4, 0, time.UTC)) { // 19 0a 0d 04 12 04
				t.Errorf("ts %v", g.TS)
			}
			if !near(g.Lat, 0x04d68014/3600000.0) || !near(g.Lon, 0x1872c588/3600000.0) {
				t.Errorf("position %v,%v", g.Lat, g.Lon)
			}
			if v, ok := g.Valid.Bool(); !ok || !v {
				t.Errorf("valid %v", g.Valid)
			}
			if g.Odometer != 0x0011919c/1000.0 {
				t.Errorf("odometer %v", g.Odometer)
			}
		}},
		{"commercial DTC", capDTCComm, func(t *testing.T, s []signal.Signal) {
			if strings.Join(s[0].DTCs, " ") != "P0326" {
				t.Errorf("dtcs %v", s[0].DTCs)
			}
			if !s[0].TS.Equal(time.Unix(0x5d3a72ef, 0)) {
				t.Errorf("ts %v, want the stat block's UTC time", s[0].TS)
			}
		}},
		{"passenger DTC", capDTC, func(t *testing.T, s []signal.Signal) {
			if strings.Join(s[0].DTCs, " ") != "P1351" {
				t.Errorf("dtcs %v", s[0].DTCs)
			}
		}},
		{"VIN query response", capVIN, func(t *testing.T, s []signal.Signal) {
			if s[0].Attrs["vin"] != "MALC381CMKM567148" || s[0].Attrs["time_source"] != "server" {
				t.Errorf("attrs %v", s[0].Attrs)
			}
			if !s[0].TS.Equal(recvTime) {
				t.Errorf("ts %v, want the receive time", s[0].TS)
			}
		}},
		{"comprehensive 0x401F", capComp, func(t *testing.T, s []signal.Signal) {
			if s[0].Attrs["battery_v"] != 0.6 || s[0].Attrs["device_temp_c"] != 25.5 {
				t.Errorf("attrs %v", s[0].Attrs)
			}
		}},
		{"OBD data through obd2", capOBD, func(t *testing.T, s []signal.Signal) {
			g := s[0]
			if g.RPM != 1238 || g.Coolant != 91 || !near(g.Voltage, 14.56) {
				t.Errorf("rpm %v coolant %v voltage %v", g.RPM, g.Coolant, g.Voltage)
			}
		}},
		{"alarm", capAlarm, func(t *testing.T, s []signal.Signal) {
			if s[0].Attrs["alarm"] != "power_on" || s[0].Attrs["ignition"] != true {
				t.Errorf("attrs %v", s[0].Attrs)
			}
		}},
		{"supported PIDs: nothing to store", capSupported, func(t *testing.T, s []signal.Signal) {
			if len(s) != 0 {
				t.Errorf("%d signals", len(s))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := decodeOne(t, tc.frame)
			if len(res.Signals) == 0 && tc.name != "supported PIDs: nothing to store" {
				t.Fatal("no signals")
			}
			for _, s := range res.Signals {
				if s.DeviceID == "" || s.Protocol != Name || !bytes.Equal(s.Frame, tc.frame) {
					t.Fatalf("incomplete signal %+v", s)
				}
			}
			tc.check(t, res.Signals)
		})
	}
}

func TestRejects(t *testing.T) {
	badCRC := bytes.Clone(capGPS)
	badCRC[40] ^= 0x01
	badStop := bytes.Clone(capHeartbeat)
	badStop[len(badStop)-1] = 'x'
	tooLong := bytes.Clone(capHeartbeat)
	tooLong[3] = 0x10
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"bad CRC", badCRC, plugins.ErrChecksum},
		{"bad stop bytes", badStop, plugins.ErrMalformed},
		{"length beyond MaxFrame", append(tooLong, make([]byte, 300)...), plugins.ErrTooLarge},
		{"length below the minimum", mustHex("40401000"), plugins.ErrMalformed},
		{"wrong start", []byte("##"), plugins.ErrMalformed},
		{"trailing bytes", append(bytes.Clone(capHeartbeat), '@'), plugins.ErrMalformed},
		{"server ack sent by a device", capServerAck, plugins.ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 256})
			_, err := s.Decode(tc.frame, recvTime)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	s := (&Decoder{}).NewSession(plugins.SessionConfig{AllowDevice: func(string) bool { return false }})
	if _, err := s.Decode(capGPS, recvTime); !errors.Is(err, plugins.ErrUnauthorized) {
		t.Fatalf("err %v", err)
	}
}

func TestFrameSplitsTwoFrames(t *testing.T) {
	two := append(bytes.Clone(capHeartbeat), capGPS...)
	n, err := session().Frame(two)
	if err != nil || n != len(capHeartbeat) {
		t.Fatalf("Frame = %d, %v", n, err)
	}
	for i := range len(capHeartbeat) {
		if n, err := session().Frame(capHeartbeat[:i]); n != 0 || err != nil {
			t.Fatalf("prefix %d: %d, %v", i, n, err)
		}
	}
}

func TestConformance(t *testing.T) {
	frames := [][]byte{capLogin, capHeartbeat, capGPS, capAlarm, capOBD, capDTCComm, capVIN, capCCBeat, capMPIPLogin, capMPIPGPS}
	oversized := [][]byte{{'@', '@', 0xFF, 0xFF, 4}, {'$', '$', 0xFF, 0xFF}}
	for _, tr := range []plugins.Transport{plugins.TCP, plugins.UDP} {
		t.Run(string(tr), func(t *testing.T) {
			plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Oversized: oversized, Transport: tr, MaxFrame: 4096})
		})
	}
}

// TestGolden replays testdata/<case>/input.hex as `fleetcore decode
// -protocol castel -hex` does; -update rewrites expected.jsonl.
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

func goldenFrames(tb testing.TB) [][]byte {
	f, err := os.Open(filepath.Join("testdata", "traccar", "input.hex"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, mustHex(line))
	}
	return out
}

// BenchmarkDecode decodes a GPS record, an OBD PID message and an alarm.
func BenchmarkDecode(b *testing.B) {
	frames := [][]byte{capGPS, capOBD, capAlarm}
	s := session()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := frames[i%len(frames)]
		if _, err := s.Decode(f, recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
