package sdk

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

func TestFieldNumberingMatchesSignal(t *testing.T) {
	if NumFields != int(signal.NumFields) {
		t.Fatalf("sdk has %d fields, signal %d", NumFields, signal.NumFields)
	}
	for i, n := range FieldNames {
		if signal.Field(i).String() != n {
			t.Errorf("field %d: sdk %q, signal %q", i, n, signal.Field(i))
		}
	}
	if NoTime != signal.NoTime {
		t.Error("NoTime differs")
	}
}

var testMeta = Meta{Name: "sdk.test", Version: "1.0.0", Dimension: "consistency", Severity: "info",
	Fields: []string{"ts", "speed", "prev_odometer"}, Attrs: []string{"ignition", "io9"},
	Reasons: map[uint16]string{1: "odd \"quoted\"\ttext", 2: "two"}}

// batch encodes inputs with the host's encoder for testMeta.
func batch(t *testing.T, in []wasmrule.Input, now time.Time) []byte {
	t.Helper()
	m, err := wasmrule.ParseMeta([]byte(testMeta.JSON()))
	if err != nil {
		t.Fatal(err)
	}
	return wasmrule.EncodeBatch(&m, in, now)
}

func verdicts(b []byte, n int) []Verdict {
	out := make([]Verdict, n)
	base := len(b) - 4*n
	for i := range out {
		w := binary.LittleEndian.Uint32(b[base+4*i:])
		out[i] = Verdict{Status: Status(w), Reason: uint16(w >> 16)}
	}
	return out
}

func inputs() []wasmrule.Input {
	t0 := time.UnixMilli(1_000_000).UTC()
	a := signal.New("d", t0)
	a.Speed = 10
	a.SetAttr("ignition", true)
	b := signal.New("d", t0.Add(time.Second))
	b.SetAttr("io9", 2.5)
	prev := signal.New("d", t0)
	prev.Odometer = 77
	return []wasmrule.Input{{Signal: a}, {Signal: b, Prev: &prev}}
}

func TestProcessDecodesColumns(t *testing.T) {
	var seen []Signal
	Register(Rule{Meta: testMeta, Check: func(s Signal) Verdict {
		seen = append(seen, s)
		if Has(s.Speed) {
			return Fail(2)
		}
		return Pass()
	}})
	b := batch(t, inputs(), time.UnixMilli(5_000_000))
	if got := Process(b, 2); got != 1 {
		t.Fatalf("Process returned %d, want 1", got)
	}
	if v := verdicts(b, 2); v[0] != Fail(2) || v[1] != Pass() {
		t.Fatalf("verdicts %+v", v)
	}
	a, s := seen[0], seen[1]
	if a.NowMs != 5_000_000 || a.TS != 1_000_000 || a.Speed != 10 || a.Attr(0) != 1 || Has(a.Attr(1)) || a.PrevOdometer == a.PrevOdometer {
		t.Errorf("signal 0: %+v", a)
	}
	if s.TS != 1_001_000 || Has(s.Speed) || s.PrevOdometer != 77 || s.Attr(1) != 2.5 || Has(s.Attr(0)) {
		t.Errorf("signal 1: %+v", s)
	}
	// Undeclared fields stay absent, whatever the signal had.
	if a.Recv != NoTime || Has(a.Lat) || a.PrevTS != NoTime || Has(a.Attr(2)) {
		t.Errorf("undeclared values leak: %+v", a)
	}
}

func TestProcessBatchForm(t *testing.T) {
	Register(Rule{Meta: testMeta, CheckBatch: func(in []Signal, out []Verdict) {
		for i := 1; i < len(in); i++ {
			if in[i].TS > in[i-1].TS {
				out[i] = Warn(1)
			}
		}
	}})
	b := batch(t, inputs(), time.UnixMilli(0))
	if got := Process(b, 2); got != 1 {
		t.Fatalf("Process returned %d", got)
	}
	if v := verdicts(b, 2); v[0] != Pass() || v[1] != Warn(1) {
		t.Fatalf("verdicts %+v", v)
	}
}

func TestProcessErrors(t *testing.T) {
	registered = nil
	good := func() []byte { return batch(t, inputs(), time.UnixMilli(0)) }
	if got := Process(good(), 2); got != ErrNoRule {
		t.Errorf("no rule: %d", got)
	}
	Register(Rule{Meta: testMeta, Check: func(Signal) Verdict { return Pass() }})
	cases := []struct {
		name string
		edit func([]byte) []byte
		n    int
		want int32
	}{
		{"ok", func(b []byte) []byte { return b }, 2, 0},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, 2, ErrBadHeader},
		{"n mismatch", func(b []byte) []byte { return b }, 1, ErrBadHeader},
		{"unknown field bit", func(b []byte) []byte { b[8+2] |= 0x10; return b }, 2, ErrBadHeader},
		{"too many attrs", func(b []byte) []byte { b[24] = MaxAttrs + 1; return b }, 2, ErrTooManyAtt},
		{"short buffer", func(b []byte) []byte { return b[:len(b)-1] }, 2, ErrBadSize},
		{"header only", func(b []byte) []byte { return b[:40] }, 2, ErrBadHeader},
	}
	for _, tc := range cases {
		if got := Process(tc.edit(good()), tc.n); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMetaJSON(t *testing.T) {
	m := testMeta
	m.Tests = []Test{{Name: "t", NowMs: 5, In: map[string]float64{"speed": 1, "ts": 2, "prev_odometer": math.NaN()},
		Attrs: map[string]float64{"io9": 0.5}, Want: StatusWarn, Reason: 1}}
	pm, err := wasmrule.ParseMeta([]byte(m.JSON()))
	if err != nil {
		t.Fatalf("%v\n%s", err, m.JSON())
	}
	if pm.ReasonText(1) != "odd \"quoted\"\ttext" || len(pm.Tests) != 1 || pm.Tests[0].In["speed"] != 1 ||
		len(pm.Tests[0].In) != 2 || pm.Tests[0].Want != "warn" || pm.Tests[0].NowMs != 5 {
		t.Errorf("round trip: %+v", pm)
	}
}

// TestProcessDoesNotAllocate: the per-signal path reuses its scratch.
func TestProcessDoesNotAllocate(t *testing.T) {
	Register(Rule{Meta: testMeta, Check: func(s Signal) Verdict { return Pass() }})
	b := batch(t, inputs(), time.UnixMilli(0))
	if n := testing.AllocsPerRun(100, func() { Process(b, 2) }); n != 0 {
		t.Errorf("%v allocations per batch", n)
	}
}
