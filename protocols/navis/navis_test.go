package navis

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

var recvTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newSession(dec *Decoder, allow func(string) bool) *Session {
	return dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10, AllowDevice: allow, Logger: hclog.NewNullLogger()}).(*Session)
}

// conversation reads testdata/<name>/input.hex.
func conversation(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name, "input.hex"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var frames [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
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

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ntcbMsg wraps data in an NTCB header from device 0 to server 1.
func ntcbMsg(data []byte) []byte {
	h := []byte("@NTC")
	h = binary.LittleEndian.AppendUint32(h, 1)
	h = binary.LittleEndian.AppendUint32(h, 0)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(data)))
	h = append(h, XOR(data))
	h = append(h, XOR(h))
	return append(h, data...)
}

func flexMsg(b []byte) []byte { return append(append([]byte(nil), b...), CRC8(b)) }

// run feeds frames through Frame and Decode in one session and returns the
// results; any error fails the test.
func run(t *testing.T, s *Session, frames [][]byte) []plugins.Result {
	t.Helper()
	var out []plugins.Result
	for i, f := range frames {
		n, err := s.Frame(f)
		if err != nil || n != len(f) {
			t.Fatalf("frame %d: Frame = %d, %v; want %d", i, n, err, len(f))
		}
		res, err := s.Decode(f, recvTime)
		if err == nil {
			err = plugins.CheckSignals(res.Signals)
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		out = append(out, res)
	}
	return out
}

func TestChecksums(t *testing.T) {
	// *>S of the NTCB capture: data XOR 0x44, header XOR 0x34.
	f := mustHex(t, "404e5443010000007b000000130044342a3e533a383631373835303035323035303739")
	if got := XOR(f[16:]); got != 0x44 {
		t.Errorf("data XOR = %#x, want 0x44", got)
	}
	if got := XOR(f[:15]); got != 0x34 {
		t.Errorf("header XOR = %#x, want 0x34", got)
	}
	// CRC-8/EGTS check value of "123456789".
	if got := CRC8([]byte("123456789")); got != 0xF7 {
		t.Errorf("CRC8(123456789) = %#x, want 0xf7", got)
	}
}

// TestPositions checks the three exact fixes of the Traccar captures.
func TestPositions(t *testing.T) {
	for _, tc := range []struct {
		conv     string
		frame    int
		ts       string
		lat, lon float64
	}{
		{"ntcb", 2, "2016-11-11T21:00:04Z", 53.74336, 87.14437},
		{"ntcb", 6, "2019-01-16T22:22:36Z", 56.31800, 44.01523},
		{"flex10", 2, "2019-01-17T10:23:20Z", 56.33996, 43.80762},
	} {
		t.Run(tc.conv, func(t *testing.T) {
			res := run(t, newSession(&Decoder{}, nil), conversation(t, tc.conv)[:tc.frame+1])
			sigs := res[tc.frame].Signals
			if len(sigs) != 1 {
				t.Fatalf("%d signals, want 1", len(sigs))
			}
			s := sigs[0]
			if got := s.TS.Format(time.RFC3339); got != tc.ts {
				t.Errorf("ts = %s, want %s", got, tc.ts)
			}
			if math.Abs(s.Lat-tc.lat) > 1e-5 || math.Abs(s.Lon-tc.lon) > 1e-5 || s.Valid != signal.True {
				t.Errorf("lat, lon, valid = %v, %v, %v; want %v, %v, true", s.Lat, s.Lon, s.Valid, tc.lat, tc.lon)
			}
			if s.Protocol != Name || s.DeviceID == "" || !s.Recv.Equal(recvTime) || len(s.Frame) == 0 {
				t.Errorf("incomplete signal %+v", s)
			}
		})
	}
}

// TestFields checks the mapping of one NTCB F6.0 record and one FLEX 1.0
// record field by field.
func TestFields(t *testing.T) {
	res := run(t, newSession(&Decoder{}, nil), conversation(t, "ntcb"))
	s := res[6].Signals[0] // *>T F6.0
	if s.Attrs["format"] != int64(6) || s.Attrs["index"] != int64(6058) || s.Sats != 10 || s.Alt != 141.1 {
		t.Errorf("format, index, sats, alt = %v, %v, %v, %v", s.Attrs["format"], s.Attrs["index"], s.Sats, s.Alt)
	}
	if math.Abs(s.Voltage-27.545) > 1e-9 || s.Attrs["battery_v"] != 4.136 {
		t.Errorf("voltage %v, battery %v", s.Voltage, s.Attrs["battery_v"])
	}
	// 0xFFFF is the "no value" of the RPM field: absent, the raw value kept.
	if !math.IsNaN(s.RPM) || s.Attrs["rpm_raw"] != int64(0xFFFF) {
		t.Errorf("rpm %v, rpm_raw %v", s.RPM, s.Attrs["rpm_raw"])
	}
	flex := run(t, newSession(&Decoder{}, nil), conversation(t, "flex10"))
	f := flex[2].Signals[0]
	if f.Attrs["index"] != int64(4) || math.IsNaN(f.Alt) || math.IsNaN(f.Speed) || math.IsNaN(f.Heading) || math.IsNaN(f.Voltage) {
		t.Errorf("FLEX record %+v", f)
	}
	if _, ok := f.Attrs["engine_hours"]; !ok {
		t.Errorf("FLEX field 37 (engine hours) not decoded: %v", f.Attrs)
	}
}

func TestAcks(t *testing.T) {
	flex := conversation(t, "flex10")
	s := newSession(&Decoder{}, nil)
	res := run(t, s, flex)
	want := []string{
		"404e5443c9b5f60201000000030045d62a3c53",             // *<S
		"404e5443aaecf602010000000900b1122a3c464c4558b00a0a", // *<FLEX b0 0a 0a
		"7e540400000017", // ~T event index 4
		"7e4101df",       // ~A 1 record
	}
	for i, w := range want {
		if got := hex.EncodeToString(res[i].Ack); got != w {
			t.Errorf("frame %d: ack %s, want %s", i, got, w)
		}
	}
	if s.flex == nil || s.flex.size != 73 || len(s.flex.fields) != 31 {
		t.Errorf("negotiated field set %+v, want 31 fields of 73 bytes", s.flex)
	}
	ntcb := run(t, newSession(&Decoder{}, nil), conversation(t, "ntcb"))
	for i, w := range map[int]string{
		0: "404e54437b00000001000000030045252a3c53",         // *<S
		2: "404e544300000000010000000700425d2a3c5400000000", // *<T index 0
	} {
		if got := hex.EncodeToString(ntcb[i].Ack); got != w {
			t.Errorf("ntcb frame %d: ack %s, want %s", i, got, w)
		}
	}
	if a := ntcb[3].Ack; string(a[16:19]) != "*<A" || a[19] != 1 {
		t.Errorf("*>A ack %x, want *<A with count 1", a)
	}
}

// TestRenegotiation: a second *>FLEX replaces the field set, FLEX 3.0
// selects fields beyond 122, and a *@ command reply is kept as a record.
func TestRenegotiation(t *testing.T) {
	s := newSession(&Decoder{}, nil)
	frames := conversation(t, "flex30")
	res := run(t, s, frames)
	if got := s.flex.size; got != 56 {
		t.Errorf("field set after the last renegotiation: %d bytes, want 56", got)
	}
	if n := len(res[3].Signals); n != 4 {
		t.Errorf("~A: %d records, want 4", n)
	}
	cmd := res[2].Signals
	if len(cmd) != 1 || cmd[0].Attrs["result"] != "*@CNCT_DRC OK" || cmd[0].Attrs["time_source"] != "server" {
		t.Errorf("command reply: %+v", cmd)
	}
}

func TestRejections(t *testing.T) {
	ntcb := conversation(t, "ntcb")
	flex := conversation(t, "flex10")
	login := ntcb[0]
	corrupt := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name  string
		setup [][]byte
		frame []byte
		want  error
	}{
		{"header XOR", nil, corrupt(login, 15), plugins.ErrChecksum},
		{"data XOR", nil, corrupt(login, 20), plugins.ErrChecksum},
		{"FLEX CRC", flex[:2], corrupt(flex[2], 10), plugins.ErrChecksum},
		{"record before handshake", nil, ntcb[2], plugins.ErrNoDevice},
		{"FLEX before handshake", nil, flex[2], plugins.ErrNoDevice},
		{"FLEX before negotiation", flex[:1], flex[2], plugins.ErrUnsupported},
		{"unknown command", nil, ntcbMsg([]byte("*>Q")), plugins.ErrUnsupported},
		{"unknown format", ntcb[:1], ntcbMsg(append([]byte("*>T"), 0x09, 0, 0, 0, 0)), plugins.ErrUnsupported},
		{"truncated record", ntcb[:1], ntcbMsg(ntcb[2][16 : len(ntcb[2])-1]), plugins.ErrMalformed},
		{"trailing bytes", ntcb[:1], ntcbMsg(append(append([]byte(nil), ntcb[2][16:]...), 0)), plugins.ErrMalformed},
		{"length field", nil, login[:len(login)-1], plugins.ErrMalformed},
		{"handshake without IMEI", nil, ntcbMsg([]byte("*>S:")), plugins.ErrMalformed},
		{"handshake with control bytes", nil, ntcbMsg([]byte("*>S:12\x0034")), plugins.ErrMalformed},
		{"bad FLEX version", ntcb[:1], ntcbMsg([]byte("*>FLEX\xb0\x0a\x0a\x50\xff")), plugins.ErrMalformed},
		{"FLEX too many fields", ntcb[:1], ntcbMsg([]byte("*>FLEX\xb0\x0a\x0a\x7a\xff")), plugins.ErrMalformed},
		{"FLEX other protocol", ntcb[:1], ntcbMsg([]byte("*>FLEX\xb1\x0a\x0a\x08\xff")), plugins.ErrUnsupported},
		{"FLEX ~A length", flex[:2], flexMsg(flex[3][:len(flex[3])-2]), plugins.ErrMalformed},
		{"garbage", nil, []byte{0x01, 0x02}, plugins.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(&Decoder{}, nil)
			for _, f := range tc.setup {
				if _, err := s.Decode(f, recvTime); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.Decode(tc.frame, recvTime)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(res.Signals) > 0 || res.Ack != nil {
				t.Errorf("a refused frame gave %d signals, ack %x", len(res.Signals), res.Ack)
			}
		})
	}
	t.Run("allow list", func(t *testing.T) {
		s := newSession(&Decoder{}, func(id string) bool { return id != "861785005205079" })
		if _, err := s.Decode(login, recvTime); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
		if s.DeviceID() != "" {
			t.Errorf("refused device kept: %q", s.DeviceID())
		}
	})
	t.Run("unknown FLEX version offered 3.0", func(t *testing.T) {
		s := newSession(&Decoder{}, nil)
		run(t, s, ntcb[:1])
		res, err := s.Decode(ntcbMsg([]byte("*>FLEX\xb0\x28\x28\x08\xff")), recvTime)
		if err != nil || !strings.HasSuffix(string(res.Ack), "*<FLEX\xb0\x1e\x1e") || s.flex != nil {
			t.Errorf("ack %q, err %v, field set %+v", res.Ack, err, s.flex)
		}
	})
}

func TestFrame(t *testing.T) {
	ntcb := conversation(t, "ntcb")
	flex := conversation(t, "flex10")
	s := newSession(&Decoder{}, nil)
	stream := append(append([]byte{keepAlive}, ntcb[0]...), ntcb[2]...)
	for i := 1; i < len(ntcb[0]); i++ {
		if n, err := s.Frame(ntcb[0][:i]); n != 0 || err != nil {
			t.Fatalf("prefix of %d bytes: Frame = %d, %v", i, n, err)
		}
	}
	for _, want := range []int{1, len(ntcb[0]), len(ntcb[2])} {
		n, err := s.Frame(stream)
		if err != nil || n != want {
			t.Fatalf("Frame = %d, %v; want %d", n, err, want)
		}
		stream = stream[n:]
	}
	if _, err := s.Frame([]byte("@NTX")); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("bad preamble: %v", err)
	}
	if _, err := s.Frame([]byte("GET / HTTP/1.1")); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
	// A length field over the cap, with a valid header XOR.
	big := ntcbMsg(make([]byte, 0))
	binary.LittleEndian.PutUint16(big[12:], 0xFFFF)
	big[15] = XOR(big[:15])
	small := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 1024})
	if _, err := small.Frame(big); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("length 65535 with cap 1024: %v", err)
	}
	// FLEX: framed by the negotiated field set, ~A by its count.
	fs := newSession(&Decoder{}, nil)
	run(t, fs, flex[:2])
	for _, f := range flex[2:] {
		if n, err := fs.Frame(append(append([]byte(nil), f...), 0x7e)); n != len(f) || err != nil {
			t.Errorf("FLEX %q: Frame = %d, %v; want %d", f[:2], n, err, len(f))
		}
	}
	hugeA := []byte{'~', 'A', 0xFF}
	if _, err := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 1024}).(*Session).flexFrameWith(fs.flex, hugeA); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("~A of 255 records of 73 bytes with cap 1024: %v", err)
	}
}

// flexFrameWith frames buf with a given field set (test helper).
func (s *Session) flexFrameWith(set *flexSet, buf []byte) (int, error) {
	s.flex = set
	return s.Frame(buf)
}

// TestServerTimedResend: a command reply (no device time) keeps its ts
// when the same bytes come again on a new connection.
func TestServerTimedResend(t *testing.T) {
	dec := &Decoder{}
	frames := conversation(t, "flex30")[:3]
	a := run(t, newSession(dec, nil), frames)[2].Signals[0]
	s := newSession(dec, nil)
	var b signal.Signal
	for i, f := range frames {
		res, err := s.Decode(f, recvTime.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			b = res.Signals[0]
		}
	}
	if !a.TS.Equal(b.TS) || a.Key() != b.Key() {
		t.Errorf("resend: ts %v key %v, first %v key %v", b.TS, b.Key(), a.TS, a.Key())
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recvTime, *update,
		plugintest.GoldenCase{In: "ntcb/input.hex", Golden: "ntcb/expected.jsonl", Hex: true, OK: 6, Bad: 0},
		plugintest.GoldenCase{In: "flex10/input.hex", Golden: "flex10/expected.jsonl", Hex: true, OK: 2, Bad: 0},
		plugintest.GoldenCase{In: "flex30/input.hex", Golden: "flex30/expected.jsonl", Hex: true, OK: 5, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	big := ntcbMsg(nil)
	binary.LittleEndian.PutUint16(big[12:], 0xFFFF)
	big[15] = XOR(big[:15])
	for _, name := range []string{"ntcb", "flex10", "flex30"} {
		t.Run(name, func(t *testing.T) {
			plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: conversation(t, name), Oversized: [][]byte{big}})
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"ntcb", "flex30"} {
		b.Run(name, func(b *testing.B) {
			frames := conversation(b, name)
			s := newSession(&Decoder{}, nil)
			for _, f := range frames {
				if _, err := s.Decode(f, recvTime); err != nil {
					b.Fatal(err)
				}
			}
			data := frames[len(frames)-1]
			if name == "flex30" {
				data = frames[3]
				_, _ = s.Decode(frames[1], recvTime) // back to the 171-byte field set
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := s.Decode(data, recvTime); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
