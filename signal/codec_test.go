package signal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"reflect"
	"testing"
	"time"
)

func sameSignal(t *testing.T, got, want *Signal) {
	t.Helper()
	gf, wf := got.floats(), want.floats()
	for i := range gf {
		if math.IsNaN(wf[i]) != math.IsNaN(gf[i]) || (!math.IsNaN(wf[i]) && math.Float64bits(gf[i]) != math.Float64bits(wf[i])) {
			t.Errorf("float field %d: got %v, want %v", i, gf[i], wf[i])
		}
	}
	g, w := *got, *want
	g.setFloats([14]float64{})
	w.setFloats([14]float64{})
	if !g.TS.Equal(w.TS) || !g.Recv.Equal(w.Recv) || g.TS.IsZero() != w.TS.IsZero() {
		t.Errorf("times: got %v/%v, want %v/%v", g.TS, g.Recv, w.TS, w.Recv)
	}
	g.TS, w.TS, g.Recv, w.Recv = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(g.Frame) == 0 && len(w.Frame) == 0 {
		g.Frame, w.Frame = nil, nil
	}
	for k, v := range w.Attrs {
		if f, ok := v.(float64); ok && math.IsNaN(f) {
			if gf, ok := g.Attrs[k].(float64); !ok || !math.IsNaN(gf) {
				t.Errorf("attr %s: got %v, want NaN", k, g.Attrs[k])
			}
			g.Attrs, w.Attrs = clone(g.Attrs), clone(w.Attrs)
			delete(g.Attrs, k)
			delete(w.Attrs, k)
		}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %#v\nwant %#v", g, w)
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func codecCases() []Signal {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	frame := []byte{0, 0, 0, 0, 0, 0, 0, 5, 8, 1, 2, 3, 4}
	full := New("356307042441013", t0)
	full.Recv = t0.Add(1500 * time.Millisecond)
	full.Lat, full.Lon, full.Alt, full.Speed, full.Heading = 54.68, 25.2, 120, 50.5, 90
	full.Sats, full.HDOP, full.Valid = 9, 0.8, True
	full.RPM, full.Coolant, full.Fuel, full.Voltage = 2100, 88, 55.5, 12.6
	full.Odometer, full.EngineLoad, full.Throttle = 123456.7, 33, math.Inf(1)
	full.DTCs = []string{"P0301", "C0035"}
	full.SetAttr("io239", 1)
	full.SetAttr("big", int64(math.MaxInt64))
	full.SetAttr("neg", int64(-7))
	full.SetAttr("ratio", 0.25)
	full.SetAttr("whole", 5.0)
	full.SetAttr("nanattr", math.NaN())
	full.SetAttr("name", "ünïcode")
	full.SetAttr("empty", "")
	full.SetAttr("on", true)
	full.SetAttr("off", false)
	full.Attrs["null"] = nil
	full.Protocol, full.Path, full.Frame = "teltonika", PathFailover, frame
	full.DecoderVersion = "builtin:1.4.0"
	second := full
	second.DecoderVersion = "1.2.0+sha256:abcdef123456"
	second.TS = t0.Add(time.Second)
	second.Attrs = nil
	second.DTCs = nil
	sparse := New("gt06:1", time.Time{})
	sparse.Valid = False
	sparse.Protocol = "gt06"
	old := New("x", time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC))
	old.Lat = math.Copysign(0, -1)
	return []Signal{full, second, sparse, old, {DeviceID: "zero-value"}}
}

func TestBatchCodecRoundTrip(t *testing.T) {
	cases := codecCases()
	tests := []struct {
		name  string
		batch []Signal
	}{
		{"empty", nil},
		{"one", cases[:1]},
		{"shared frame", cases[:2]},
		{"all", cases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendBatch(nil, tc.batch)
			got, err := DecodeBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.batch) {
				t.Fatalf("%d signals, want %d", len(got), len(tc.batch))
			}
			for i := range got {
				sameSignal(t, &got[i], &tc.batch[i])
				if got[i].RecordHash() != tc.batch[i].RecordHash() {
					t.Errorf("signal %d: record hash changed", i)
				}
				if _, ok := got[i].Attrs["big"]; ok {
					if _, isInt := got[i].Attrs["big"].(int64); !isInt {
						t.Errorf("int64 attr came back as %T", got[i].Attrs["big"])
					}
				}
			}
		})
	}
}

func TestBatchCodecFrameStoredOnce(t *testing.T) {
	cases := codecCases()
	other := cases[1]
	other.Frame = make([]byte, len(cases[0].Frame))
	shared := len(AppendBatch(nil, cases[:2]))
	distinct := len(AppendBatch(nil, []Signal{cases[0], other}))
	if distinct-shared != len(other.Frame)+1 {
		t.Fatalf("shared frame batch %d bytes, distinct frames %d: want exactly one frame (+length) less", shared, distinct)
	}
}

func TestBatchCodecRejectsCorruption(t *testing.T) {
	good := AppendBatch(nil, codecCases())
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong magic", append([]byte("XYZ"), good[3:]...)},
		{"future version", append([]byte("FCS\x03"), good[4:]...)},
		{"version 0", append([]byte("FCS\x00"), good[4:]...)},
		// A version 2 body read as version 1: the decoder version's
		// length is taken for the frame index.
		{"version 2 body as version 1", append([]byte("FCS\x01"), good[4:]...)},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"huge count", []byte("FCS\x01\x00\xff\xff\xff\xff\x0f")},
	}
	for i := 4; i < len(good); i += 7 {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"truncated", good[:i]})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeBatch(tc.b); !errors.Is(err, ErrCodec) {
				t.Fatalf("error %v, want ErrCodec", err)
			}
		})
	}
}

// TestBatchCodecReadsVersion1 decodes a batch written by the version 1
// codec (before decoder_version: testdata/batch_v1.hex is codecCases
// encoded by that build), as failover messages, spool segments and
// rejected records of an older build are: every field as before, an empty
// DecoderVersion, the same record hashes; re-encoded it is version 2.
func TestBatchCodecReadsVersion1(t *testing.T) {
	v1 := readHexFixture(t, "testdata/batch_v1.hex")
	if v1[3] != 1 {
		t.Fatalf("fixture is version %d, want 1", v1[3])
	}
	got, err := DecodeBatch(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := codecCases()
	if len(got) != len(want) {
		t.Fatalf("%d signals, want %d", len(got), len(want))
	}
	for i := range got {
		w := want[i]
		w.DecoderVersion = ""
		sameSignal(t, &got[i], &w)
		if got[i].RecordHash() != want[i].RecordHash() {
			t.Errorf("signal %d: record hash %d, want %d", i, got[i].RecordHash(), want[i].RecordHash())
		}
	}
	again := AppendBatch(nil, got)
	if again[3] != CodecVersion {
		t.Fatalf("re-encoded as version %d, want %d", again[3], CodecVersion)
	}
	if bytes.Equal(again, v1) {
		t.Fatal("version 2 encoding equals the version 1 one")
	}
	back, err := DecodeBatch(again)
	if err != nil || len(back) != len(got) {
		t.Fatalf("decoding the re-encoding: %d signals, %v", len(back), err)
	}
}

func readHexFixture(t *testing.T, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, codecCases()))
	f.Add([]byte("FCS\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sigs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		again, err := DecodeBatch(AppendBatch(nil, sigs))
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if len(again) != len(sigs) {
			t.Fatalf("%d signals after re-encoding, want %d", len(again), len(sigs))
		}
	})
}
