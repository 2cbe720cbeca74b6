package wasmrule

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

const gpsRangeMeta = `{"name":"gps.range","version":"1.0.0","dimension":"validity","severity":"critical",` +
	`"fields":["lat","lon"],"attrs":[],"reasons":{"1":"latitude outside [-90, 90]","2":"longitude outside [-180, 180]"}}`

func TestParseMeta(t *testing.T) {
	rep := func(old, new string) string { return strings.Replace(gpsRangeMeta, old, new, 1) }
	cases := []struct {
		name string
		json string
		err  string // "" = valid
	}{
		{"valid", gpsRangeMeta, ""},
		{"prerelease version", rep(`"1.0.0"`, `"2.1.0-rc.1"`), ""},
		{"every field", rep(`["lat","lon"]`, `["ts","recv","lat","lon","alt","speed","heading","sats","hdop","rpm","coolant","fuel","voltage","odometer","engine_load","throttle","prev_ts","prev_lat","prev_lon","prev_odometer"]`), ""},
		{"attrs", rep(`"attrs":[]`, `"attrs":["ignition","io239"]`), ""},
		{"with tests", rep(`}}`, `},"tests":[{"name":"a","in":{"lat":91},"want":"fail","reason":1}]}`), ""},
		{"uppercase name", rep(`gps.range`, `GPS.range`), "name"},
		{"empty name", rep(`"gps.range"`, `""`), "name"},
		{"bad version", rep(`"1.0.0"`, `"v1"`), "version"},
		{"bad dimension", rep(`validity`, `accuracy`), "dimension"},
		{"bad severity", rep(`critical`, `high`), "severity"},
		{"unknown field", rep(`"lon"]`, `"longitude"]`), "not a canonical field"},
		{"duplicate field", rep(`["lat","lon"]`, `["lat","lat"]`), "twice"},
		{"duplicate attr", rep(`"attrs":[]`, `"attrs":["a","a"]`), "twice"},
		{"reason 0", rep(`"1":`, `"0":`), "reason code"},
		{"reason not a number", rep(`"1":`, `"one":`), "reason code"},
		{"reason too big", rep(`"1":`, `"70000":`), "reason code"},
		{"reason without text", rep(`"latitude outside [-90, 90]"`, `""`), "no text"},
		{"unknown key", rep(`"attrs"`, `"attributes"`), "unknown field"},
		{"trailing data", gpsRangeMeta + `{}`, "trailing"},
		{"not JSON", `{"name":`, "decoding"},
		{"test with unknown field", rep(`}}`, `},"tests":[{"name":"a","in":{"latitude":1},"want":"pass"}]}`), "not a canonical field"},
		{"test with bad want", rep(`}}`, `},"tests":[{"name":"a","in":{},"want":"ok"}]}`), "want"},
		{"test with undeclared reason", rep(`}}`, `},"tests":[{"name":"a","in":{},"want":"fail","reason":7}]}`), "reason 7"},
		{"test with undeclared attr", rep(`}}`, `},"tests":[{"name":"a","in":{},"attrs":{"x":1},"want":"pass"}]}`), "attr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMeta([]byte(tc.json))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if m.Mask() == 0 || len(m.FieldIndexes()) != len(m.Fields) {
					t.Errorf("mask %#x fields %v", m.Mask(), m.FieldIndexes())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.err)
			}
		})
	}
}

func TestMetaJSONRoundTrip(t *testing.T) {
	m, err := ParseMeta([]byte(gpsRangeMeta))
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseMeta(b)
	if err != nil {
		t.Fatalf("re-parsing %s: %v", b, err)
	}
	if m2.Name != m.Name || m2.Mask() != m.Mask() || m2.ReasonText(2) != "longitude outside [-180, 180]" {
		t.Errorf("round trip changed the metadata: %s", b)
	}
}

// docBlock returns the bytes of the hex dump that follows marker in ABI.md.
func docBlock(t *testing.T, doc []byte, marker string) (offset int, data []byte) {
	t.Helper()
	i := bytes.Index(doc, []byte(marker))
	if i < 0 {
		t.Fatalf("ABI.md has no %s block", marker)
	}
	sc := bufio.NewScanner(bytes.NewReader(doc[i:]))
	inBlock := false
	offset = -1
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if inBlock {
				break
			}
			inBlock = true
			continue
		}
		if !inBlock {
			continue
		}
		// "0040  00 00 00 00 00 80 46 40   comment"
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Fatalf("short dump line %q", line)
		}
		if offset < 0 {
			off, err := hex.DecodeString(f[0])
			if err != nil || len(off) != 2 {
				t.Fatalf("bad offset in %q", line)
			}
			offset = int(off[0])<<8 | int(off[1])
		}
		b, err := hex.DecodeString(strings.Join(f[1:9], ""))
		if err != nil {
			t.Fatalf("bad bytes in %q: %v", line, err)
		}
		data = append(data, b...)
	}
	return offset, data
}

// TestABIWorkedExample checks that the byte dump in checks-wasm/ABI.md is
// what the host encodes.
func TestABIWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../../checks-wasm/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMeta([]byte(gpsRangeMeta))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := signal.New("d", now), signal.New("d", now)
	a.Lat, a.Lon = 45, 120
	b.Lat, b.Lon = 90.0001, 0
	got := EncodeBatch(&m, []Input{{Signal: a}, {Signal: b}}, now)
	off, want := docBlock(t, doc, "<!-- batch:gps.range -->")
	if off != 0 || !bytes.Equal(got, want) {
		t.Fatalf("ABI.md batch differs from the encoder:\n got %x\nwant %x", got, want)
	}
	voff, verdicts := docBlock(t, doc, "<!-- verdicts:gps.range -->")
	if voff != len(got)-8 || len(verdicts) != 8 {
		t.Fatalf("verdict block at %#x (%d bytes), want at %#x", voff, len(verdicts), len(got)-8)
	}
	out := make([]Verdict, 2)
	bad, kind, msg := decodeVerdicts(verdicts, &m, out)
	if kind != 0 || bad != 1 || out[0] != (Verdict{}) || out[1] != (Verdict{Status: StatusFail, Reason: 1}) {
		t.Fatalf("decoding documented verdicts: %v %v %s %+v", bad, kind, msg, out)
	}
}

func TestEncodeAbsentAndAttrs(t *testing.T) {
	m, err := ParseMeta([]byte(`{"name":"x","version":"1.0.0","dimension":"validity","severity":"info",` +
		`"fields":["prev_ts","ts","lat","prev_odometer"],"attrs":["ignition","level","name","missing"],"reasons":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := signal.New("d", time.UnixMilli(1500))
	s.SetAttr("ignition", true)
	s.SetAttr("level", int64(7))
	s.SetAttr("name", "2.5")
	b := EncodeBatch(&m, []Input{{Signal: s}}, time.UnixMilli(9))
	le := func(off int) uint64 {
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(b[off+i])
		}
		return v
	}
	// columns in index order: ts(0), lat(2), prev_ts(16), prev_odometer(19)
	want := []uint64{1500, canonicalNaN, 1 << 63, canonicalNaN,
		0x3ff0000000000000, 0x401c000000000000, 0x4004000000000000, canonicalNaN}
	if le(8) != 1<<0|1<<2|1<<16|1<<19 || le(16) != 9 || b[24] != 4 {
		t.Fatalf("header %x", b[:64])
	}
	for i, w := range want {
		if got := le(64 + 8*i); got != w {
			t.Errorf("column %d = %#x, want %#x", i, got, w)
		}
	}
	if len(b) != 64+8*8+4 {
		t.Errorf("size %d", len(b))
	}
}

func TestChain(t *testing.T) {
	a1 := signal.New("a", t0)
	b1 := signal.New("b", t0)
	a2 := signal.New("a", t0.Add(time.Second))
	in := Chain([]signal.Signal{a1, b1, a2}, t0)
	if in[0].Prev != nil || in[1].Prev != nil || in[2].Prev == nil || in[2].Prev.DeviceID != "a" || !in[2].Prev.TS.Equal(t0) {
		t.Fatalf("chain %+v", in)
	}
}
