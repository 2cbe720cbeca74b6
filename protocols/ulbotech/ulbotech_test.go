package ulbotech

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/signal"
)

var recvTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// capture is one line of testdata/traccar-ulbotech.jsonl (the Ulbotech
// frames of Traccar's decoder test, see /work/shared/testdata/README.md).
type capture struct {
	Encoding string `json:"encoding"`
	Payload  string `json:"payload"`
	Check    string `json:"check"`
	Seq      int    `json:"seq"`
}

func (c capture) bytes(t testing.TB) []byte {
	if c.Encoding == "hex" {
		b, err := hex.DecodeString(c.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []byte(c.Payload)
}

func loadCaptures(t testing.TB) []capture {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "traccar-ulbotech.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []capture
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c capture
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func bySeq(t testing.TB, seq int) []byte {
	for _, c := range loadCaptures(t) {
		if c.Seq == seq {
			return c.bytes(t)
		}
	}
	t.Fatalf("no capture seq %d", seq)
	return nil
}

func newSession() *Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096}).(*Session)
}

func decodeOne(t *testing.T, frame []byte) plugins.Result {
	t.Helper()
	res, err := newSession().Decode(frame, recvTime)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return res
}

// escape applies the device's escaping to the bytes between the marks.
func escape(inner []byte) []byte {
	var out []byte
	for _, c := range inner {
		switch c {
		case escapeMark:
			out = append(out, escapeMark, 0x00)
		case frameMark:
			out = append(out, escapeMark, 0x0F)
		default:
			out = append(out, c)
		}
	}
	return out
}

// build makes a wire frame (escaped, CRC) from a header and TLV bytes.
func build(imei string, secs uint32, tlvs []byte) []byte {
	body := []byte{0x01, 0x01}
	id, _ := hex.DecodeString("0" + imei)
	body = append(body, id...)
	body = binary.BigEndian.AppendUint32(body, secs)
	body = append(body, tlvs...)
	body = binary.BigEndian.AppendUint16(body, CRC16XModem(body))
	return append(append([]byte{frameMark}, escape(body)...), frameMark)
}

func TestCRC16XModem(t *testing.T) {
	// The check value of CRC-16/XMODEM.
	if got := CRC16XModem([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("CRC16XModem(123456789) = %04X, want 31C3", got)
	}
}

func TestDecodeCaptures(t *testing.T) {
	tests := []struct {
		name  string
		seq   int
		check func(t *testing.T, s signal.Signal)
	}{
		{"position without fix (hdop 9999), event", 4, func(t *testing.T, s signal.Signal) {
			want := time.Date(2019, 9, 25, 11, 49, 39, 0, time.UTC)
			if !s.TS.Equal(want) || math.Abs(s.Lat-62.205432) > 1e-9 || math.Abs(s.Lon+6.685211) > 1e-9 {
				t.Errorf("got %v %v,%v", s.TS, s.Lat, s.Lon)
			}
			if v, ok := s.Valid.Bool(); !ok || v {
				t.Errorf("valid = %v, want false", s.Valid)
			}
			if !math.IsNaN(s.HDOP) || s.Attrs["hdop_raw"] != int64(9999) || s.Attrs["event"] != int64(1) {
				t.Errorf("hdop %v attrs %v", s.HDOP, s.Attrs)
			}
		}},
		{"OBD PIDs, monitor status, DTC", 1, func(t *testing.T, s signal.Signal) {
			// 31 05 53: coolant 0x53-40; 41 0c 0c9e: rpm 0x0c9e/4;
			// 61 01 81 0f 80 00: MIL on, 1 DTC; 33 20 15: P2015.
			if s.Coolant != 43 || s.RPM != 807.5 {
				t.Errorf("coolant %v rpm %v", s.Coolant, s.RPM)
			}
			if s.Attrs["obd_01_mil"] != true || s.Attrs["obd_01_dtc_count"] != 1.0 {
				t.Errorf("monitor status attrs %v", s.Attrs)
			}
			if !reflect.DeepEqual(s.DTCs, []string{"P2015"}) {
				t.Errorf("DTCs %v", s.DTCs)
			}
			if v, ok := s.Valid.Bool(); !ok || !v {
				t.Errorf("valid %v", s.Valid)
			}
		}},
		{"three DTCs, odometer, ignition", 13, func(t *testing.T, s signal.Signal) {
			if !reflect.DeepEqual(s.DTCs, []string{"P2029", "P0082", "U0021"}) {
				t.Errorf("DTCs %v", s.DTCs)
			}
			if s.Odometer != 71.166 || s.Attrs["ignition"] != true {
				t.Errorf("odometer %v attrs %v", s.Odometer, s.Attrs)
			}
		}},
		{"raw 0xF7 in an unescaped capture", 15, func(t *testing.T, s signal.Signal) {
			if s.Odometer != 2.551 {
				t.Errorf("odometer %v", s.Odometer)
			}
		}},
		{"cell (4-byte cid) without GPS", 10, func(t *testing.T, s signal.Signal) {
			if !math.IsNaN(s.Lat) || s.Attrs["cid"] != int64(0x0128b561) || s.Attrs["rssi"] != int64(-0x61) {
				t.Errorf("lat %v attrs %v", s.Lat, s.Attrs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeOne(t, bySeq(t, tt.seq))
			if len(res.Signals) != 1 {
				t.Fatalf("%d signals", len(res.Signals))
			}
			s := res.Signals[0]
			if err := plugins.CheckSignals([]signal.Signal{s}); err != nil {
				t.Fatalf("CheckSignals: %v", err)
			}
			tt.check(t, s)
		})
	}
}

func TestAck(t *testing.T) {
	res := decodeOne(t, bySeq(t, 1))
	body := []byte{0x01, 0xFE, 0xF8, 0x01}
	want := append([]byte{0xF8}, body...)
	want = binary.BigEndian.AppendUint16(want, CRC16XModem(body))
	want = append(want, 0xF8)
	if !reflect.DeepEqual(res.Ack, want) {
		t.Errorf("ack %x, want %x", res.Ack, want)
	}
	text := decodeOne(t, []byte("*TS01,353323081464660#"))
	if len(text.Signals) != 0 || text.DeviceID != "353323081464660" {
		t.Errorf("keep-alive: %+v", text)
	}
	if want := "*TS01,ACK:" + hexUpper(CRC16XModem([]byte("TS01,353323081464660"))) + "#"; string(text.Ack) != want {
		t.Errorf("text ack %q, want %q", text.Ack, want)
	}
}

func hexUpper(v uint16) string {
	const d = "0123456789ABCDEF"
	return string([]byte{d[v>>12], d[v>>8&0xF], d[v>>4&0xF], d[v&0xF]})
}

func TestText(t *testing.T) {
	res := decodeOne(t, []byte("*TS01,868323025245751,134955140317,WFE:0#"))
	if len(res.Signals) != 1 {
		t.Fatalf("%d signals", len(res.Signals))
	}
	s := res.Signals[0]
	if !s.TS.Equal(time.Date(2017, 3, 14, 13, 49, 55, 0, time.UTC)) || s.Attrs["result"] != "WFE:0" {
		t.Errorf("got %v %v", s.TS, s.Attrs)
	}
}

func TestRejects(t *testing.T) {
	good := bySeq(t, 1)
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-2] ^= 1
	badTLV := build("353323083177450", 1, []byte{0x01, 0x0e, 0x00})
	badIMEI := build("35332308317745a", 1, nil)
	for _, tt := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"bad CRC", badCRC, plugins.ErrChecksum},
		{"TLV longer than the frame", badTLV, plugins.ErrMalformed},
		{"IMEI not BCD", badIMEI, plugins.ErrMalformed},
		{"no end mark", good[:len(good)-1], plugins.ErrMalformed},
		{"bad escape", []byte{0xF8, 0xF7, 0x05, 0xF8}, plugins.ErrMalformed},
		{"text without #", []byte("*TS01,353323081464660"), plugins.ErrMalformed},
		{"text id not 15 digits", []byte("*TS01,35332308146466#"), plugins.ErrMalformed},
		{"text bad time", []byte("*TS01,868323025245751,996055140317,X#"), plugins.ErrMalformed},
		{"text bad date", []byte("*TS01,868323025245751,134955310217,X#"), plugins.ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession().Decode(tt.frame, recvTime)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("rejected frame gave %+v", res)
			}
		})
	}
}

func TestEscapedFrame(t *testing.T) {
	// A position whose bytes hold 0xF8 and 0xF7, escaped as a device
	// sends them; framed at the true end and decoded.
	gps := []byte{0x01, 0x0e, 0x03, 0xb5, 0x2d, 0xf8, 0xff, 0x99, 0xfd, 0xf7, 0, 0x10, 0, 0x5a, 0, 0x64}
	frame := build("868323028799515", 622727379, gps)
	stream := append(append([]byte(nil), frame...), frame...)
	s := newSession()
	n, err := s.Frame(stream)
	if err != nil || n != len(frame) {
		t.Fatalf("Frame = %d, %v; want %d", n, err, len(frame))
	}
	res, err := s.Decode(stream[:n], recvTime)
	if err != nil {
		t.Fatal(err)
	}
	sig := res.Signals[0]
	if math.Abs(sig.Lat-62.205432) > 1e-9 || math.Abs(sig.Lon-(-6.685193)) > 1e-9 || sig.Speed != 16 || sig.Heading != 90 || sig.HDOP != 1 {
		t.Errorf("got %v,%v speed %v heading %v hdop %v", sig.Lat, sig.Lon, sig.Speed, sig.Heading, sig.HDOP)
	}
}

func TestFrame(t *testing.T) {
	good := bySeq(t, 1)
	for _, tt := range []struct {
		name string
		in   []byte
		n    int
		err  error
	}{
		{"empty", nil, 0, nil},
		{"start only", []byte{0xF8}, 0, nil},
		{"partial", good[:20], 0, nil},
		{"whole", good, len(good), nil},
		{"text", []byte("*TS01,353323081464660#*TS"), 22, nil},
		{"garbage", []byte{0x00, 0xF8}, 0, plugins.ErrMalformed},
		{"empty frame", []byte{0xF8, 0xF8}, 0, plugins.ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, err := newSession().Frame(tt.in)
			if n != tt.n || !errors.Is(err, tt.err) {
				t.Fatalf("Frame = %d, %v; want %d, %v", n, err, tt.n, tt.err)
			}
		})
	}
	long := append([]byte{0xF8}, make([]byte, 5000)...)
	if _, err := newSession().Frame(long); !errors.Is(err, plugins.ErrTooLarge) {
		t.Fatalf("Frame(5001 bytes without end) err = %v, want ErrTooLarge", err)
	}
}

func TestAllowDevice(t *testing.T) {
	s := (&Decoder{}).NewSession(plugins.SessionConfig{AllowDevice: func(id string) bool { return id == "1" }})
	if _, err := s.Decode(bySeq(t, 1), recvTime); !errors.Is(err, plugins.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if _, err := s.Decode([]byte("*TS01,353323081464660#"), recvTime); !errors.Is(err, plugins.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
}

func conversation(t testing.TB) [][]byte {
	var frames [][]byte
	// Not seq 4: it holds a bare 0xF8 (a capture after unescaping), which
	// no device sends; TestEscapedFrame covers its wire form.
	for _, seq := range []int{2, 3, 1, 5, 6, 7, 13, 15} {
		frames = append(frames, bySeq(t, seq))
	}
	return frames
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    conversation(t),
		Oversized: [][]byte{append([]byte{0xF8}, make([]byte, 70<<10)...)},
	})
}

func TestConformanceUDP(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: conversation(t), Transport: plugins.UDP})
}

func BenchmarkDecode(b *testing.B) {
	frame := bySeq(b, 1)
	s := newSession()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(frame, recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
