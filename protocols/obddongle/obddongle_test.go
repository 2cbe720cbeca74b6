package obddongle

import (
	"bytes"
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

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	// Traccar's ObdDongleProtocolDecoderTest, seq 1 (CONNECT).
	capConnect = mustHex("55550003383634383637303232353131303135010009010011023402010201abaaaa")
	// Seq 2 (PUBLISH) as in the corpus: its length field says 1.
	capPublishCorpus = mustHex("5555000338363438363730323235313130313503000100010355aabbcc184f1abc614e21c1fa08712a84abaaaa")
	// The same PUBLISH with the length field of its 20 content bytes.
	capPublish = mustHex("5555000338363438363730323235313130313503001400010355aabbcc184f1abc614e21c1fa08712a84abaaaa")
	imei       = []byte("864867022511015")
)

func session() plugins.Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{})
}

// TestDecodeFixedLength: the corrected capture decodes to the fix Traccar's
// test asserts (2015-07-18 20:49:16, valid, 22.12346, -123.45678), with a
// PUBACK echoing the message type.
func TestDecodeFixedLength(t *testing.T) {
	res, err := session().Decode(capPublish, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 {
		t.Fatalf("%d signals", len(res.Signals))
	}
	s := res.Signals[0]
	if !s.TS.Equal(time.Date(2015, 7, 18, 20, 49, 16, 0, time.UTC)) || math.Abs(s.Lat-22.12346) > 1e-9 || math.Abs(s.Lon+123.45678) > 1e-9 {
		t.Errorf("fix %v %v,%v", s.TS, s.Lat, s.Lon)
	}
	if v, ok := s.Valid.Bool(); !ok || !v {
		t.Errorf("valid %v", s.Valid)
	}
	if s.DeviceID != string(imei) || s.Protocol != Name || !bytes.Equal(s.Frame, capPublish) {
		t.Errorf("signal %+v", s)
	}
	want := append(append(mustHex("55550003"), imei...), mustHex("0400020001"+"00aaaa")...)
	if !bytes.Equal(res.Ack, want) {
		t.Errorf("ack\n got %x\nwant %x", res.Ack, want)
	}
}

func TestConnectAck(t *testing.T) {
	res, err := session().Decode(capConnect, recvTime)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(mustHex("55550003"), imei...), mustHex("020007"+"01000000000000"+"00aaaa")...)
	if len(res.Signals) != 0 || !bytes.Equal(res.Ack, want) {
		t.Fatalf("%d signals, ack %x, want %x", len(res.Signals), res.Ack, want)
	}
}

// TestCorpusCaptureRejected: the corpus's PUBLISH, whose length field is
// wrong, is refused (Traccar decodes it because its test skips the framer).
func TestCorpusCaptureRejected(t *testing.T) {
	if _, err := session().Decode(capPublishCorpus, recvTime); !errors.Is(err, plugins.ErrMalformed) {
		t.Fatalf("err %v, want ErrMalformed", err)
	}
	if _, err := session().Frame(capPublishCorpus); !errors.Is(err, plugins.ErrMalformed) {
		t.Fatalf("Frame err %v, want ErrMalformed", err)
	}
}

func TestRejects(t *testing.T) {
	bad := bytes.Clone(capPublish)
	bad[5] = 'x'
	short := bytes.Clone(capConnect)
	short[21] = 2 // 2 content bytes: too few for anything but the framer
	short = append(short[:22+2], 0, 0xAA, 0xAA)
	pub := bytes.Clone(capPublish[:22])
	pub[21] = 3
	pub = append(pub, 1, 2, 3, 0, 0xAA, 0xAA)
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"IMEI not digits", bad, plugins.ErrMalformed},
		{"wrong header", []byte{0x55, 0x54}, plugins.ErrMalformed},
		{"short PUBLISH", pub, plugins.ErrMalformed},
		{"unknown type", func() []byte { b := bytes.Clone(short); b[19] = 0x07; return b }(), plugins.ErrUnsupported},
		{"too large", append(mustHex("5555000338363438363730323235313130313503ffff"), make([]byte, 10)...), plugins.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := session().Decode(tc.frame, recvTime)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    [][]byte{capConnect, capPublish},
		Oversized: [][]byte{mustHex("5555000338363438363730323235313130313503ffff")},
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

func BenchmarkDecode(b *testing.B) {
	s := session()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(capPublish, recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
