package gl200

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// No binary capture exists: these frames are built field by field from the
// layout in binary.go (Traccar's Gl200BinaryProtocolDecoder).

// binFix is one 32-byte fix.
type binFix struct {
	hdop          byte
	speed10       uint32 // 0.1 km/h, 24 bits
	azimuth       uint16
	alt           int16
	lonE6, latE6  int32
	ts            time.Time
	mcc, mnc      uint16
	lac, cell     uint16
	year          uint16 // overrides ts's year when non-zero (bad dates)
	month, day    byte   // override when non-zero
	overrideClock bool
}

func (f binFix) bytes() []byte {
	b := make([]byte, 0, binFixLen)
	b = append(b, f.hdop)                                                   // 0: accuracy
	b = append(b, byte(f.speed10>>16), byte(f.speed10>>8), byte(f.speed10)) // 1-3: speed
	b = binary.BigEndian.AppendUint16(b, f.azimuth)                         // 4-5: azimuth
	b = binary.BigEndian.AppendUint16(b, uint16(f.alt))                     // 6-7: altitude
	b = binary.BigEndian.AppendUint32(b, uint32(f.lonE6))                   // 8-11: longitude
	b = binary.BigEndian.AppendUint32(b, uint32(f.latE6))                   // 12-15: latitude
	y, mo, d := uint16(f.ts.Year()), byte(f.ts.Month()), byte(f.ts.Day())   // 16-22: UTC time
	if f.overrideClock {
		y, mo, d = f.year, f.month, f.day
	}
	b = binary.BigEndian.AppendUint16(b, y)
	b = append(b, mo, d, byte(f.ts.Hour()), byte(f.ts.Minute()), byte(f.ts.Second()))
	for _, v := range []uint16{f.mcc, f.mnc, f.lac, f.cell} { // 23-30: cell
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return append(b, 0) // 31: reserved
}

const binIMEI = 135790246811220

// binHeader builds bytes 0-26 (the length at 9-10 is set by binMsg).
func binHeader(head string, typ byte) []byte {
	b := []byte(head)                                // 0-3
	b = append(b, typ)                               // 4: message type
	b = binary.BigEndian.AppendUint32(b, 0x0000BFFF) // 5-8: report mask
	b = append(b, 0, 0)                              // 9-10: length
	b = append(b, 0x1A)                              // 11: device type
	b = binary.BigEndian.AppendUint16(b, 0x0401)     // 12-13: protocol version
	b = binary.BigEndian.AppendUint16(b, 0x0102)     // 14-15: firmware version
	b = binary.BigEndian.AppendUint64(b, binIMEI)    // 16-23: IMEI
	b = append(b, 87)                                // 24: battery %
	return binary.BigEndian.AppendUint16(b, 12345)   // 25-26: power mV
}

func binMsg(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[9:], uint16(len(b)))
	return b
}

var fixA = binFix{hdop: 1, speed10: 432, azimuth: 92, alt: -12, lonE6: 121354335, latE6: -31222073,
	ts: time.Date(2017, 2, 14, 1, 32, 54, 0, time.UTC), mcc: 460, mnc: 1, lac: 0x18d8, cell: 0x6141}
var fixB = binFix{hdop: 0, speed10: 0, azimuth: 359, alt: 70, lonE6: -73985130, latE6: 40758896,
	ts: time.Date(2017, 2, 14, 1, 33, 24, 0, time.UTC), mcc: 310, mnc: 260, lac: 1, cell: 2}

// rspFRI: a fixed report (type 1): motion 0x21, 9 satellites, index 5, two fixes.
func rspFRI(head string) []byte {
	return binMsg(binHeader(head, 1), []byte{0x21, 9, 5, 2}, fixA.bytes(), fixB.bytes())
}

// sameHDOP: a fix without accuracy (0) leaves HDOP unset (NaN).
func sameHDOP(got, want float64) bool {
	if want == 0 {
		return math.IsNaN(got)
	}
	return got == want
}

// infMsg is a 29-byte +INF message (length u16 at 7), framed but not decoded.
func infMsg() []byte {
	b := append([]byte("+INF\x02\x00\x00\x00\x00"), make([]byte, 20)...)
	binary.BigEndian.PutUint16(b[7:], uint16(len(b)))
	return b
}

func TestBinaryValues(t *testing.T) {
	type want struct {
		ts                         time.Time
		lat, lon, alt, speed, head float64
		hdop                       float64
		valid                      bool
		attrs                      map[string]any
	}
	common := map[string]any{"battery_level": int64(87), "device_type": "1A", "protocol_version": "1A0401",
		"firmware": "258", "report_mask": "0000BFFF", "time_source": "gnss"}
	wA := want{fixA.ts, -31.222073, 121.354335, -12, 43.2, 92, 1, true, map[string]any{"mcc": int64(460), "mnc": int64(1), "lac": int64(0x18d8), "cell_id": int64(0x6141)}}
	wB := want{fixB.ts, 40.758896, -73.98513, 70, 0, 359, 0, false, map[string]any{"mcc": int64(310), "mnc": int64(260), "lac": int64(1), "cell_id": int64(2)}}
	tests := []struct {
		name  string
		msg   []byte
		want  []want
		attrs map[string]any
		gone  []string
	}{
		{"RSP fixed report, two fixes", rspFRI("+RSP"), []want{wA, wB}, map[string]any{"binary_type": int64(1)}, []string{"buffered", "report"}},
		{"BSP buffered", rspFRI("+BSP"), []want{wA, wB}, map[string]any{"buffered": true}, nil},
		{"RSP GEO: two reserved bytes", binMsg(binHeader("+RSP", rspGEO), []byte{0xAA, 0xBB, 0x21, 9, 5, 1}, fixA.bytes()), []want{wA}, map[string]any{"report": "GTGEO"}, nil},
		{"RSP LCB: phone number BCD up to an F nibble", binMsg(binHeader("+RSP", rspLCB), []byte{0x21, 9, 5, 4, 0x13, 0x57, 0x90, 0x2F, 1}, fixA.bytes()), []want{wA}, map[string]any{"report": "GTLCB"}, nil},
		{"EVT VGN: 7 event bytes", binMsg(binHeader("+EVT", 45), []byte{0x21, 9, 0, 0, 1, 0, 0, 0x0E, 0x10, 1}, fixA.bytes()), []want{wA}, map[string]any{"report": "GTVGN", "ignition": true}, nil},
		{"EVT BPL: backup voltage", binMsg(binHeader("+EVT", 6), []byte{0x21, 9, 0x0F, 0xA0, 1}, fixB.bytes()), []want{wB}, map[string]any{"report": "GTBPL", "alarm": "low_battery"}, nil},
		{"BVT CRA buffered", binMsg(binHeader("+BVT", 23), []byte{0x21, 9, 3, 1}, fixA.bytes()), []want{wA}, map[string]any{"report": "GTCRA", "alarm": "accident", "buffered": true}, nil},
		{"EVT unknown code: no extra bytes", binMsg(binHeader("+EVT", 99), []byte{0x21, 9, 1}, fixA.bytes()), []want{wA}, map[string]any{"binary_type": int64(99)}, []string{"report"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession(plugins.TCP, nil).Decode(tt.msg, recv)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if res.DeviceID != "135790246811220" || len(res.Signals) != len(tt.want) || res.Ack != nil {
				t.Fatalf("device %q, %d signals, ack %q; want %d signals, no ack", res.DeviceID, len(res.Signals), res.Ack, len(tt.want))
			}
			for i, w := range tt.want {
				sg := res.Signals[i]
				if !sg.TS.Equal(w.ts) || !near(sg.Lat, w.lat) || !near(sg.Lon, w.lon) || sg.Alt != w.alt || !near(sg.Speed, w.speed) || sg.Heading != w.head || !sameHDOP(sg.HDOP, w.hdop) || sg.Valid != signal.FlagOf(w.valid) {
					t.Errorf("fix %d: %v %v,%v alt %v speed %v head %v hdop %v valid %v; want %+v", i, sg.TS, sg.Lat, sg.Lon, sg.Alt, sg.Speed, sg.Heading, sg.HDOP, sg.Valid, w)
				}
				if sg.Sats != 9 || !near(sg.Voltage, 12.345) || sg.DeviceID != res.DeviceID || sg.Protocol != Name || string(sg.Frame) != string(tt.msg) || !sg.Recv.Equal(recv) {
					t.Errorf("fix %d: sats %v voltage %v device %q protocol %q", i, sg.Sats, sg.Voltage, sg.DeviceID, sg.Protocol)
				}
				for _, m := range []map[string]any{common, w.attrs, tt.attrs} {
					for k, v := range m {
						if sg.Attrs[k] != v {
							t.Errorf("fix %d: %s = %v (%T), want %v (%T)", i, k, sg.Attrs[k], sg.Attrs[k], v, v)
						}
					}
				}
				for _, k := range tt.gone {
					if _, ok := sg.Attrs[k]; ok {
						t.Errorf("fix %d: %s set to %v", i, k, sg.Attrs[k])
					}
				}
			}
		})
	}
}

func TestBinaryRejected(t *testing.T) {
	badDate := fixA
	badDate.overrideClock, badDate.year, badDate.month, badDate.day = true, 2017, 2, 30
	badLat := fixA
	badLat.latE6 = 91000000
	full := rspFRI("+RSP")
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"header only", binMsg(binHeader("+RSP", 1)), plugins.ErrMalformed},
		{"truncated header", binMsg([]byte("+RSP\x01\x00\x00\x00\x00\x00\x0d\x00\x00")), plugins.ErrMalformed},
		{"fix count beyond the message", binMsg(binHeader("+RSP", 1), []byte{0x21, 9, 5, 3}, fixA.bytes(), fixB.bytes()), plugins.ErrMalformed},
		{"length field longer than the message", full[:len(full)-1], plugins.ErrMalformed},
		{"impossible GNSS date", binMsg(binHeader("+RSP", 1), []byte{0x21, 9, 5, 1}, badDate.bytes()), plugins.ErrMalformed},
		{"latitude out of range", binMsg(binHeader("+EVT", 23), []byte{0x21, 9, 3, 1}, badLat.bytes()), plugins.ErrMalformed},
		{"LCB phone number without its end", binMsg(binHeader("+RSP", rspLCB), []byte{0x21, 9, 5, 4, 0x13, 0x57}), plugins.ErrMalformed},
		{"no fix", binMsg(binHeader("+RSP", 1), []byte{0x21, 9, 5, 0}), plugins.ErrUnsupported},
		{"compressed report", binMsg(binHeader("+RSP", rspComp), []byte{0x21, 9, 0, 0}), plugins.ErrUnsupported},
		{"binary heartbeat", []byte("+HBD\x01\x07\x00"), plugins.ErrUnsupported},
		{"binary information", infMsg(), plugins.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tr := range []plugins.Transport{plugins.TCP, plugins.UDP} {
				res, err := newSession(tr, nil).Decode(tt.msg, recv)
				if !errors.Is(err, tt.want) || len(res.Signals) != 0 {
					t.Errorf("%v: err %v with %d signals, want %v", tr, err, len(res.Signals), tt.want)
				}
			}
		})
	}
	t.Run("device not allowed", func(t *testing.T) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096, AllowDevice: func(string) bool { return false }, Options: plugins.MustDecodeOptions(&Decoder{}, nil)})
		if _, err := s.Decode(rspFRI("+RSP"), recv); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Errorf("err %v, want ErrUnauthorized", err)
		}
	})
}

// TestBinaryFrame frames binary reports back to back with text.
func TestBinaryFrame(t *testing.T) {
	a, b := rspFRI("+RSP"), binMsg(binHeader("+EVT", 6), []byte{0x21, 9, 0x0F, 0xA0, 1}, fixB.bytes())
	buf := append(append(append([]byte{}, a...), b...), hbd...)
	s := newSession(plugins.TCP, nil)
	for i, want := range []int{len(a), len(b), len(hbd)} {
		n, err := s.Frame(buf)
		if err != nil || n != want {
			t.Fatalf("frame %d: %d, %v; want %d", i, n, err, want)
		}
		buf = buf[n:]
	}
	if n, err := s.Frame(a[:len(a)-1]); n != 0 || err != nil {
		t.Errorf("partial: %d, %v; want 0, nil", n, err)
	}
}

// binarySeeds are well-formed binary reports for the fuzz targets and the
// conformance suite.
func binarySeeds() [][]byte {
	return [][]byte{
		rspFRI("+RSP"),
		rspFRI("+BSP"),
		binMsg(binHeader("+RSP", rspLCB), []byte{0x21, 9, 5, 4, 0x13, 0x57, 0x90, 0x2F, 1}, fixA.bytes()),
		binMsg(binHeader("+EVT", 45), []byte{0x21, 9, 0, 0, 1, 0, 0, 0x0E, 0x10, 1}, fixA.bytes()),
		binMsg(binHeader("+BVT", 23), []byte{0x21, 9, 3, 1}, fixB.bytes()),
	}
}
