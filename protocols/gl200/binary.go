package gl200

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// The binary (HEX) form of @Track, as Traccar's Gl200BinaryProtocolDecoder
// reads it (big-endian throughout). Header of +RSP/+BSP/+EVT/+BVT:
//
//	0  4  "+RSP" | "+BSP" | "+EVT" | "+BVT"
//	4  1  message type (RSP: 3 LCB, 8 GEO, 100 compressed, else a fixed report; EVT: event code)
//	5  4  report mask (read, not used to select fields: the layout below is fixed)
//	9  2  length of the whole message
//	11 1  device type
//	12 2  protocol version
//	14 2  firmware version
//	16 8  IMEI as an unsigned integer (printed with 15 digits)
//	24 1  backup battery, %
//	25 2  external power, mV
//
// then, for +RSP/+BSP: two reserved bytes (GEO only), motion status (1),
// satellites (1), index (1), for LCB a phone number (length byte and BCD
// digits ending in an F nibble), the fix count (1) and count fixes; for
// +EVT/+BVT: motion status (1), satellites (1), event-specific bytes
// (evtExtra), a count byte and one fix. A fix is 32 bytes:
//
//	0  1  GNSS accuracy (HDOP; 0 = no fix)
//	1  3  speed, 0.1 km/h
//	4  2  azimuth, degrees
//	6  2  altitude, m, signed
//	8  4  longitude, 1e-6 degrees, signed
//	12 4  latitude, 1e-6 degrees, signed
//	16 7  GNSS UTC time: year u16, month, day, hour, minute, second
//	23 8  MCC, MNC, LAC, cell id (u16 each)
//	31 1  reserved
const (
	binHeaderLen = 27
	binFixLen    = 32
	rspLCB       = 3
	rspGEO       = 8
	rspComp      = 100
)

// evtExtra is the number of event-specific bytes before the fix count of
// an +EVT message, by event code (Traccar's MSG_EVT_* constants).
var evtExtra = map[byte]int{
	6:  2,  // BPL: backup battery voltage
	45: 7,  // VGN: reserved u16, report type, ignition duration u32
	46: 7,  // VGF: likewise
	15: 3,  // UPD: code u16, retry
	17: 4,  // IDF: idling duration
	21: 5,  // GSS: GPS signal status, reserved u32
	26: 12, // GES: geo id u16, enable, mode, radius u32, check interval u32
	31: 2,  // GPJ: CW jamming value, GPS jamming state
	35: 1,  // RMD: roaming state
	33: 1,  // JDS: jamming state
	23: 1,  // CRA: crash counter
	34: 3,  // UPC: command id, result u16
}

// evtNames names the event codes whose meaning the layout source gives.
var evtNames = map[byte]string{
	6: "BPL", 45: "VGN", 46: "VGF", 15: "UPD", 17: "IDF", 21: "GSS",
	26: "GES", 31: "GPJ", 35: "RMD", 33: "JDS", 23: "CRA", 34: "UPC",
}

var rspNames = map[byte]string{rspLCB: "LCB", rspGEO: "GEO"}

// binReader reads big-endian values and remembers the first overrun.
type binReader struct {
	b   []byte
	off int
	bad bool
}

func (r *binReader) take(n int) []byte {
	if r.bad || r.off+n > len(r.b) {
		r.bad = true
		return make([]byte, n)
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *binReader) u8() int     { return int(r.take(1)[0]) }
func (r *binReader) u16() int    { return int(binary.BigEndian.Uint16(r.take(2))) }
func (r *binReader) s16() int    { return int(int16(binary.BigEndian.Uint16(r.take(2)))) }
func (r *binReader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *binReader) s32() int    { return int(int32(binary.BigEndian.Uint32(r.take(4)))) }
func (r *binReader) u24() int {
	b := r.take(3)
	return int(b[0])<<16 | int(b[1])<<8 | int(b[2])
}

// decodeBinary decodes a length-checked +RSP/+BSP/+EVT/+BVT message; raw
// is the frame as received (the message and any line end after it), kept
// as the records' frame.
func (s *Session) decodeBinary(frame, raw []byte) ([]signal.Signal, string, error) {
	head := string(frame[:4])
	if head != "+RSP" && head != "+BSP" && head != "+EVT" && head != "+BVT" {
		return nil, "", fmt.Errorf("%w: binary %s messages are framed but not decoded", plugins.ErrUnsupported, head)
	}
	r := &binReader{b: frame, off: 4}
	typ := byte(r.u8())
	mask := r.u32()
	r.u16() // length, checked by the framer
	devType := r.u8()
	version := r.u16()
	firmware := r.u16()
	imei := binary.BigEndian.Uint64(r.take(8))
	battery := r.u8()
	power := r.u16()
	if r.bad {
		return nil, "", fmt.Errorf("%w: %d bytes, shorter than the %d-byte binary header", plugins.ErrMalformed, len(frame), binHeaderLen)
	}
	dev := fmt.Sprintf("%015d", imei)
	if !reDeviceID.MatchString(dev) {
		return nil, "", fmt.Errorf("%w: device id %q", plugins.ErrMalformed, dev)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(dev) {
		return nil, dev, fmt.Errorf("%w: device %s", plugins.ErrUnauthorized, dev)
	}
	s.dev = dev

	event := head == "+EVT" || head == "+BVT"
	var report string
	var count int
	var sats int
	if event {
		r.u8() // motion status
		sats = r.u8()
		r.take(evtExtra[typ])
		r.u8() // count: Traccar reads one fix whatever it says
		count = 1
		report = evtNames[typ]
	} else {
		if typ == rspComp {
			return nil, dev, fmt.Errorf("%w: compressed binary report (type %d)", plugins.ErrUnsupported, typ)
		}
		if typ == rspGEO {
			r.take(2) // reserved
		}
		r.u8() // motion status
		sats = r.u8()
		r.u8() // index
		if typ == rspLCB {
			r.u8() // phone number length
			for !r.bad {
				if b := r.u8(); b&0x0F == 0x0F || b&0xF0 == 0xF0 {
					break
				}
			}
		}
		count = r.u8()
		report = rspNames[typ]
	}
	if r.bad {
		return nil, dev, fmt.Errorf("%w: binary %s type %d truncated before its fixes", plugins.ErrMalformed, head, typ)
	}
	if count == 0 {
		// The send time follows the fixes in Queclink's layout, which
		// Traccar does not read: without a fix the record has no time.
		return nil, dev, fmt.Errorf("%w: binary %s type %d without a fix", plugins.ErrUnsupported, head, typ)
	}
	if r.off+count*binFixLen > len(frame) {
		return nil, dev, fmt.Errorf("%w: %d fixes need %d bytes, the message has %d", plugins.ErrMalformed, count, r.off+count*binFixLen, len(frame))
	}

	out := make([]signal.Signal, 0, count)
	for i := 0; i < count; i++ {
		hdop := r.u8()
		speed := float64(r.u24()) / 10
		heading := float64(r.u16())
		alt := float64(r.s16())
		lon := float64(r.s32()) / 1e6
		lat := float64(r.s32()) / 1e6
		y, mo, d, h, mi, sec := r.u16(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8()
		mcc, mnc, lac, cell := r.u16(), r.u16(), r.u16(), r.u16()
		r.u8() // reserved
		ts := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
		if mo < 1 || mo > 12 || d < 1 || ts.Day() != d || h > 23 || mi > 59 || sec > 59 || ts.Before(signal.MinTime) || !ts.Before(signal.EndTime) {
			return nil, dev, fmt.Errorf("%w: GNSS time %04d-%02d-%02d %02d:%02d:%02d", plugins.ErrMalformed, y, mo, d, h, mi, sec)
		}
		if !inDomain(signal.FieldLat, lat) || !inDomain(signal.FieldLon, lon) {
			return nil, dev, fmt.Errorf("%w: position %.6f,%.6f out of range", plugins.ErrMalformed, lat, lon)
		}
		if !inDomain(signal.FieldSpeed, speed) || !inDomain(signal.FieldHeading, heading) || !inDomain(signal.FieldAlt, alt) {
			return nil, dev, fmt.Errorf("%w: speed %.1f, azimuth %.0f or altitude %.0f out of range", plugins.ErrMalformed, speed, heading, alt)
		}
		sg := signal.New(dev, ts)
		sg.Protocol = Name
		sg.Frame = append([]byte(nil), raw...)
		sg.Lat, sg.Lon, sg.Alt, sg.Speed, sg.Heading = lat, lon, alt, speed, heading
		sg.Sats = float64(sats)
		sg.Valid = signal.FlagOf(hdop > 0)
		if hdop > 0 {
			sg.HDOP = float64(hdop)
		}
		if power > 0 && inDomain(signal.FieldVoltage, float64(power)/1000) {
			sg.Voltage = float64(power) / 1000
		}
		if battery <= 100 {
			sg.SetAttr("battery_level", int64(battery))
		}
		sg.SetAttr("binary_type", int64(typ))
		if report != "" {
			sg.SetAttr("report", "GT"+report)
			if a, ok := alarms[report]; ok {
				sg.SetAttr("alarm", a)
			}
			switch report {
			case "VGN":
				sg.SetAttr("ignition", true)
			case "VGF":
				sg.SetAttr("ignition", false)
			case "GPJ":
				sg.SetAttr("alarm", "jamming")
			}
		}
		if head == "+BSP" || head == "+BVT" {
			sg.SetAttr("buffered", true)
		}
		sg.SetAttr("report_mask", fmt.Sprintf("%08X", mask))
		sg.SetAttr("device_type", fmt.Sprintf("%02X", devType))
		sg.SetAttr("protocol_version", fmt.Sprintf("%02X%04X", devType, version))
		sg.SetAttr("firmware", strconv.Itoa(firmware))
		sg.SetAttr("mcc", int64(mcc))
		sg.SetAttr("mnc", int64(mnc))
		sg.SetAttr("lac", int64(lac))
		sg.SetAttr("cell_id", int64(cell))
		sg.SetAttr("time_source", "gnss")
		out = append(out, sg)
	}
	return out, dev, nil
}
