package acme

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

var update = flag.Bool("update", false, "rewrite testdata/<case>/expected.jsonl")

var recvTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// TestGolden runs every testdata/<case>/input.hex through the same engine
// as `fleetcore decode -protocol acme -hex` and compares the output with
// testdata/<case>/expected.jsonl. After a deliberate change, run
// `go test ./protocols/acme -run TestGolden -update` and review the diff.
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
			err = replay.Run(&Decoder{}, f, &out, replay.Options{Hex: true, Now: func() time.Time { return recvTime }})
			if err != nil {
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

func TestCRC16(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x29B1 { // CRC-16/CCITT-FALSE check value
		t.Fatalf("CRC16 = %04x, want 29b1", got)
	}
}

// record builds one 22-byte record.
func record(ts uint32, lat, lon float64, alt int16, speed, heading float64, sats, flags byte, mv uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, ts)
	b = binary.BigEndian.AppendUint32(b, uint32(int32(math.Round(lat*1e7))))
	b = binary.BigEndian.AppendUint32(b, uint32(int32(math.Round(lon*1e7))))
	b = binary.BigEndian.AppendUint16(b, uint16(alt))
	b = binary.BigEndian.AppendUint16(b, uint16(math.Round(speed*10)))
	b = binary.BigEndian.AppendUint16(b, uint16(math.Round(heading*10)))
	return binary.BigEndian.AppendUint16(append(b, sats, flags), mv)
}

func batch(seq uint16, recs ...[]byte) []byte {
	p := binary.BigEndian.AppendUint16(nil, seq)
	p = append(p, byte(len(recs)))
	for _, r := range recs {
		p = append(p, r...)
	}
	return AppendFrame(nil, TypeRecords, p)
}

var hello = AppendFrame(nil, TypeHello, []byte("356307042441013"))

func TestDecode(t *testing.T) {
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	res, err := s.Decode(hello, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Ack, AppendFrame(nil, 0x81, nil)) || res.DeviceID != "356307042441013" || len(res.Signals) != 0 {
		t.Fatalf("hello: %+v", res)
	}
	frame := batch(7,
		record(1764072000, -33.8688197, 151.2092955, -12, 43.5, 359.9, 11, 0b11, 13850),
		record(1764072030, 0, 0, 0, 0, 0, 0, 0, 0xFFFF))
	res, err = s.Decode(frame, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	if want := AppendFrame(nil, 0x82, []byte{0, 7}); !bytes.Equal(res.Ack, want) {
		t.Errorf("ack = %x, want %x", res.Ack, want)
	}
	if len(res.Signals) != 2 {
		t.Fatalf("%d signals, want 2", len(res.Signals))
	}
	a, b := res.Signals[0], res.Signals[1]
	checks := []struct {
		name      string
		got, want float64
	}{
		{"lat", a.Lat, -33.8688197}, {"lon", a.Lon, 151.2092955}, {"alt", a.Alt, -12}, {"speed", a.Speed, 43.5},
		{"heading", a.Heading, 359.9}, {"sats", a.Sats, 11}, {"voltage", a.Voltage, 13.85},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if v, _ := a.Valid.Bool(); !v || a.Attrs["ignition"] != true || !a.TS.Equal(time.Unix(1764072000, 0)) {
		t.Errorf("valid/ignition/ts: %v %v %v", a.Valid, a.Attrs["ignition"], a.TS)
	}
	if v, ok := b.Valid.Bool(); v || !ok || !math.IsNaN(b.Voltage) || b.Attrs["ignition"] != false {
		t.Errorf("second record: valid %v voltage %v ignition %v", b.Valid, b.Voltage, b.Attrs["ignition"])
	}
	for _, sg := range res.Signals {
		if sg.DeviceID != "356307042441013" || sg.Protocol != Name || !bytes.Equal(sg.Frame, frame) || !sg.Recv.Equal(recvTime) {
			t.Errorf("device/protocol/frame/recv not set: %+v", sg)
		}
	}
}

func TestErrors(t *testing.T) {
	good := batch(1, record(1764072000, 1, 2, 3, 4, 5, 6, 1, 7))
	badCRC := bytes.Clone(good)
	badCRC[10] ^= 0xFF
	tests := []struct {
		name    string
		login   bool
		allow   func(string) bool
		max     int
		frame   []byte
		wantErr error
	}{
		{"records before hello", false, nil, 0, good, plugins.ErrNoDevice},
		{"heartbeat before hello", false, nil, 0, AppendFrame(nil, TypeHeartbeat, nil), plugins.ErrNoDevice},
		{"CRC mismatch", true, nil, 0, badCRC, plugins.ErrChecksum},
		{"unknown type", true, nil, 0, AppendFrame(nil, 0x09, nil), plugins.ErrUnsupported},
		{"count and payload disagree", true, nil, 0, AppendFrame(nil, TypeRecords, []byte{0, 1, 2}), plugins.ErrMalformed},
		{"IMEI not digits", false, nil, 0, AppendFrame(nil, TypeHello, []byte("35630704244101X")), plugins.ErrMalformed},
		{"IMEI refused", false, func(string) bool { return false }, 0, hello, plugins.ErrUnauthorized},
		{"trailing bytes", true, nil, 0, append(bytes.Clone(good), 0), plugins.ErrMalformed},
		{"beyond MaxFrame", true, nil, 32, good, plugins.ErrTooLarge},
		{"not a frame", true, nil, 0, []byte("hello"), plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{AllowDevice: tt.allow, MaxFrame: tt.max})
			if tt.login {
				if _, err := s.Decode(hello, recvTime); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.Decode(tt.frame, recvTime)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if res.Ack != nil || len(res.Signals) != 0 {
				t.Errorf("a rejected frame must not be acked: %+v", res)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	two := append(bytes.Clone(hello), AppendFrame(nil, TypeHeartbeat, nil)...)
	tests := []struct {
		name    string
		in      []byte
		want    int
		wantErr error
	}{
		{"empty", nil, 0, nil},
		{"partial header", hello[:4], 0, nil},
		{"partial payload", hello[:len(hello)-1], 0, nil},
		{"exact", hello, len(hello), nil},
		{"two frames", two, len(hello), nil},
		{"wrong start", []byte{0xAC, 0x00}, 0, plugins.ErrMalformed},
		{"wrong version", []byte{0xAC, 0x3E, 2}, 0, plugins.ErrMalformed},
		{"length beyond cap", []byte{0xAC, 0x3E, 1, 2, 0xFF, 0xFF}, 0, plugins.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 1024}).Frame(tt.in)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if n != tt.want {
				t.Errorf("Frame = %d, want %d", n, tt.want)
			}
		})
	}
}

// TestConformance runs the shared suite every decoder passes: framing,
// partial reads, garbage, oversized lengths, resend idempotency.
func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames: [][]byte{
			hello,
			batch(1, record(1764072000, 52.52, 13.405, 34, 0, 0, 9, 1, 12600), record(1764072030, 52.521, 13.407, 35, 43.5, 61.2, 10, 3, 13850)),
			AppendFrame(nil, TypeHeartbeat, nil),
			batch(2, record(1764072060, 52.523, 13.41, 36, 50, 90, 0, 2, 0xFFFF)),
		},
		Oversized: [][]byte{{0xAC, 0x3E, 1, 2, 0xFF, 0xFF}},
	})
}

func BenchmarkDecode(b *testing.B) {
	recs := make([][]byte, 10)
	for i := range recs {
		recs[i] = record(1764072000+uint32(i), 52.52, 13.405, 34, 50, 90, 9, 3, 12600)
	}
	frame := batch(1, recs...)
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	if _, err := s.Decode(hello, recvTime); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(frame, recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "signals/s")
}

// ExampleAppendFrame shows the bytes of a hello, as a vendor's firmware
// sends it.
func ExampleAppendFrame() {
	f := AppendFrame(nil, TypeHello, []byte("356307042441013"))
	os.Stdout.WriteString(hex.EncodeToString(f) + "\n")
	// Output: ac3e0101000f3335363330373034323434313031332898
}
