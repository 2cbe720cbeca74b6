package sdk_test

import (
	"math"
	"testing"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// benchDecoder writes what a typical Teltonika AVL frame produces: four
// records of eight fields, 24 attributes (ints, a float, bools, a hex
// string), an OBD item, and a 4-byte ack.
type benchDecoder struct{}

var ioNames = func() (t [24]string) {
	for i := range t {
		t[i] = "io" + string(rune('a'+i))
	}
	return t
}()

func (benchDecoder) Frame(_ *sdk.Call, buf []byte) (int, error) { return len(buf), nil }

func (benchDecoder) Decode(c *sdk.Call, frame []byte, out *sdk.Output) error {
	for i := 0; i < 4; i++ {
		r := out.Record().Time(c.RecvMs() + int64(i)).Lat(54.1).Lon(25.2).Alt(120).Speed(50).Heading(270).Sats(9).Valid(true)
		r.HDOP(0.9)
		for j, n := range ioNames[:20] {
			r.I64(n, int64(j))
		}
		r.F64("ext_v", 12.5).Bool("ignition", true).Bool("motion", false).Hex("io385", frame[:16])
		r.OBDScaled(0x0C, 1800)
	}
	out.Ack([]byte{0, 0, 0, 4})
	return nil
}

// BenchmarkEncode measures the SDK's cost per frame natively: parsing the
// input block (cached options), running the decoder's setters and
// encoding the output block. Compare with BenchmarkEncodeMapBaseline, the
// same content built as a native decoder builds it (a map of attrs per
// record), in the same run.
func BenchmarkEncode(b *testing.B) {
	m, err := sdk.NewModule(sdk.Meta{Name: "bench_go", Version: "1.0.0", Transports: []sdk.Transport{sdk.TCP}, DefaultPort: 1,
		Options: []sdk.Option{sdk.BoolOption{Name: "x", Help: "unused"}}}, benchDecoder{})
	if err != nil {
		b.Fatal(err)
	}
	in := sdk.Input{Transport: sdk.TCP, RecvMs: 1767225600000, MaxFrame: 1 << 16, Options: []byte(`{"x":false}`), Data: make([]byte, 600)}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for range b.N {
		n += len(m.Decode(in))
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}

type nativeSignal struct {
	ts                                  int64
	lat, lon, alt, speed, heading, sats float64
	hdop                                float64
	valid                               int8
	attrs                               map[string]any
}

var sink []nativeSignal

func BenchmarkEncodeMapBaseline(b *testing.B) {
	frame := make([]byte, 600)
	b.ReportAllocs()
	for range b.N {
		sigs := make([]nativeSignal, 0, 4)
		for i := 0; i < 4; i++ {
			s := nativeSignal{ts: 1767225600000 + int64(i), lat: 54.1, lon: 25.2, alt: 120, speed: 50, heading: 270, sats: 9, hdop: 0.9, valid: 2,
				attrs: make(map[string]any, 28)}
			for j, n := range ioNames[:20] {
				s.attrs[n] = int64(j)
			}
			s.attrs["ext_v"] = 12.5
			s.attrs["ignition"] = true
			s.attrs["motion"] = false
			s.attrs["io385"] = hexString(frame[:16])
			s.attrs["obd_0c"] = math.Float64frombits(0)
			sigs = append(sigs, s)
		}
		sink = sigs
	}
}

func hexString(v []byte) string {
	const d = "0123456789abcdef"
	b := make([]byte, 2*len(v))
	for i, c := range v {
		b[2*i], b[2*i+1] = d[c>>4], d[c&15]
	}
	return string(b)
}
