package gt06

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Protocol numbers (see README.md for the device families using each).
const (
	msgLogin           = 0x01
	msgGPS             = 0x10
	msgGPSLBS6         = 0x11
	msgGPSLBS1         = 0x12
	msgStatus          = 0x13
	msgString          = 0x15
	msgGPSLBSStatus1   = 0x16
	msgGPSLBSRFID      = 0x17
	msgLBSExtend       = 0x18
	msgLBSStatus       = 0x19
	msgGPSLBSExtend    = 0x1E
	msgStringInfo      = 0x21 // 0x7979 only
	msgGPSLBS2         = 0x22
	msgHeartbeat       = 0x23
	msgLBSMultiple3    = 0x24
	msgGPSLBSStatus2   = 0x26
	msgGPSLBSStatus3   = 0x27
	msgLBSMultiple1    = 0x28
	msgAddressRequest  = 0x2A
	msgLBSWifi         = 0x2C
	msgGPSLBS4         = 0x2D
	msgLBSMultiple2    = 0x2E
	msgGPSLBS5         = 0x31
	msgGPSLBSStatus4   = 0x32 // 0x7979: AZ735 GPS
	msgAZ735Alarm      = 0x33 // 0x7979 only
	msgX1GPS           = 0x34
	msgX1PhotoInfo     = 0x35
	msgStatus2         = 0x36 // Jimi 4G status with modules; VL103 family: location
	msgGPSLBSDriver    = 0x25 // NT family (XT40): location with driver id
	msgGPSLBS3         = 0x37
	msgGPSLBS8         = 0x38 // 0x7979
	msgIButton         = 0x61
	msgPID             = 0x66 // 0x7979
	msgGPSModular      = 0x70 // 0x7979
	msgCommand0        = 0x80
	msgCommand1        = 0x81
	msgCommand2        = 0x82
	msgTimeRequest     = 0x8A
	msgOBD             = 0x8C // 0x7979
	msgInfo            = 0x94
	msgAlarm           = 0x95
	msgAddressResponse = 0x97
	msgSerial          = 0x9B // 0x7979
	msgGPS2            = 0xA0
	msgLBS2            = 0xA1
	msgWifi3           = 0xA2
	msgFenceSingle     = 0xA3
	msgFenceMulti      = 0xA4
	msgLBSAlarm        = 0xA5
	msgLBSAddress      = 0xA7
	msgDeviceStatus    = 0xF1 // 0x7979
	msgPeripheral      = 0xF2 // 0x7979
	msgWifi4           = 0xF3
)

// errShort marks content that ends before its layout does.
var errShort = errors.New("content ends early")

// reader reads big-endian values from a packet's content; a read past the
// end sets err and returns zeros.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || r.left() < n {
		if r.err == nil {
			r.err = fmt.Errorf("%w: need %d bytes at offset %d of %d", errShort, n, r.off, len(r.b))
		}
		return make([]byte, max(n, 0))
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8() int     { return int(r.take(1)[0]) }
func (r *reader) u16() int    { return int(binary.BigEndian.Uint16(r.take(2))) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u24() int {
	b := r.take(3)
	return int(b[0])<<16 | int(b[1])<<8 | int(b[2])
}
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

// decoding is one packet being decoded.
type decoding struct {
	s     *Session
	p     packet
	frame []byte
	recv  time.Time
	r     reader
	sig   *signal.Signal
	ack   []byte
	noAck bool // the device expects no response to this packet
}

func (d *decoding) run() (plugins.Result, error) {
	d.r = reader{b: d.p.content}
	var err error
	if d.p.long {
		err = d.extended()
	} else {
		err = d.basic()
	}
	if err == nil && d.r.err != nil {
		err = d.r.err
	}
	if err != nil {
		if errors.Is(err, errShort) {
			// The CRC matched, so the device meant these bytes: a content
			// shorter than the layout is a model variant, not line noise.
			err = fmt.Errorf("%w: %w (a model variant of this packet?)", plugins.ErrUnsupported, err)
		}
		return plugins.Result{}, err
	}
	var res plugins.Result
	if d.sig != nil {
		res.Signals = []signal.Signal{*d.sig}
	}
	switch {
	case d.ack != nil:
		res.Ack = d.ack
	case !d.noAck:
		res.Ack = Response(d.p.long, d.p.proto, nil, d.p.serial)
	}
	return res, nil
}

// layout describes the GPS / LBS / status packets, which share blocks.
type layout struct {
	gps    bool
	lbs    lbsKind
	lbsLen bool // the LBS block starts with its own length byte
	status bool // terminal info, voltage level, GSM signal, alarm, language
	// noAlarmExt: the byte after the GSM signal is not an alarm code
	// (VXT01); it is kept as alarm_code only.
	noAlarmExt bool
	tail       func(d *decoding)
}

type lbsKind int

const (
	lbsNone  lbsKind = iota
	lbsShort         // MCC 2, MNC 1 (2 when MCC bit 15), LAC 2, cell id 3
	lbsWide          // MCC 2, MNC 2, LAC 2, cell id 4 (0x11)
	lbs4G            // MCC 2, MNC 1 (2 when MCC bit 15), LAC 4, cell id 8
	lbsCid4          // MCC 2, MNC 1 (2 when MCC bit 15), LAC 2, cell id 4
)

var layouts = map[byte]layout{
	msgGPS:           {gps: true},
	msgGPSLBS6:       {gps: true, lbs: lbsWide},
	msgGPSLBS1:       {gps: true, lbs: lbsShort, tail: (*decoding).odometerTail},
	msgGPSLBSRFID:    {gps: true, lbs: lbsShort, tail: (*decoding).rfidTail},
	msgGPSLBSExtend:  {gps: true, lbs: lbsShort},
	msgGPSLBS2:       {gps: true, lbs: lbsShort, tail: (*decoding).accTail},
	msgGPSLBS4:       {gps: true, lbs: lbsShort, tail: (*decoding).accTail},
	msgGPSLBS3:       {gps: true, lbs: lbsShort, tail: (*decoding).accModulesTail},
	msgGPSLBS5:       {gps: true, lbs: lbsShort},
	msgGPSLBSStatus1: {gps: true, lbs: lbsShort, lbsLen: true, status: true, tail: (*decoding).rfidStatusTail},
	msgGPSLBSStatus2: {gps: true, lbs: lbsShort, lbsLen: true, status: true},
	msgGPSLBSStatus3: {gps: true, lbs: lbsShort, lbsLen: true, status: true, tail: (*decoding).fenceTail},
	msgGPSLBSStatus4: {gps: true, lbs: lbsShort, lbsLen: true, status: true},
	msgLBSStatus:     {lbs: lbsShort, status: true},
	msgGPS2:          {gps: true, lbs: lbs4G, tail: (*decoding).accTail},
	msgFenceMulti:    {gps: true, lbs: lbs4G, lbsLen: true, status: true, tail: (*decoding).fenceTail},
	msgLBSAlarm:      {lbs: lbs4G, status: true},
	msgLBSAddress:    {lbs: lbs4G},
}

func (d *decoding) basic() error {
	p := d.p
	if handled, err := d.variant(); handled {
		return err
	}
	if l, ok := layouts[p.proto]; ok {
		if len(p.content) == 0 {
			return nil // an empty report some firmwares send as a keep-alive: nothing to store, ack it
		}
		return d.gpsLBS(l)
	}
	switch p.proto {
	case msgFenceSingle:
		// The GK310 form: GPS block, 4G LBS with a length byte, status.
		if len(p.content) >= 18+16 && int(p.content[18]) <= len(p.content)-19 {
			return d.gpsLBS(layout{gps: true, lbs: lbs4G, lbsLen: true, status: true})
		}
		if len(p.content) >= 18 && isDate(p.content[:6]) {
			// A short fence report: the GPS block, then bytes whose layout
			// no document gives (kept raw).
			if err := d.gps(); err != nil {
				return err
			}
			if rest := d.r.take(d.r.left()); len(rest) > 0 {
				d.sig.SetAttr("extra", hex.EncodeToString(rest))
			}
			return nil
		}
		return d.statusShort()
	case msgStatus2:
		return d.status2()
	case msgStatus:
		return d.status()
	case msgHeartbeat:
		return d.heartbeat()
	case msgLBSExtend, msgLBSMultiple1, msgLBSMultiple2, msgLBSMultiple3, msgLBSWifi, msgLBS2, msgWifi3:
		return d.multiLBS()
	case msgWifi4:
		return d.wifi4()
	case msgString, msgCommand1, msgCommand2:
		return d.stringReply()
	case msgInfo:
		sg := d.newSignal(time.Time{})
		sg.Voltage = float64(int16(d.r.u16())) * 0.01
		d.sig, d.noAck = sg, true
		return nil
	case msgAlarm:
		return d.alarm()
	case msgX1GPS:
		return d.x1GPS()
	case msgIButton:
		return d.iButton()
	case msgX1PhotoInfo:
		return d.photoInfo()
	case msgTimeRequest:
		t := d.recv
		d.ack = Response(false, msgTimeRequest, []byte{byte(t.Year() - 2000), byte(t.Month()), byte(t.Day()),
			byte(t.Hour()), byte(t.Minute()), byte(t.Second())}, d.p.serial)
		return nil
	case msgAddressRequest:
		// The device asks for a street address for its fix; it gets the
		// protocol's "not available" answer and the fix is stored.
		if err := d.gpsLBS(layout{gps: true}); err != nil {
			return err
		}
		if phone := strings.TrimRight(string(d.r.take(min(21, d.r.left()))), "\x00"); phone != "" && isPrintable(phone) {
			d.sig.SetAttr("phone", phone)
		}
		d.r.off = len(d.r.b)
		text := "NA&&NA&&0##"
		content := append([]byte{byte(len(text)), 0, 0, 0, 0}, text...)
		d.ack = Response(true, msgAddressResponse, content, 0)
		return nil
	}
	return fmt.Errorf("%w: protocol number 0x%02x (0x7878)", plugins.ErrUnsupported, p.proto)
}

// variant decodes the model-specific forms of the basic packets, told apart
// by the content length (as the devices send them) or by the listener's
// model option. handled is false for the common layouts.
func (d *decoding) variant() (handled bool, err error) {
	c := d.p.content
	s := d.s
	switch d.p.proto {
	case msgGPSLBS1:
		// QH302R: the terminal's IMEI (8 bytes BCD) before the GPS block.
		if s.model == "QH302R" || (len(c) >= 8+18 && !isDate(c[:6]) && isBCD(c[:8]) && isDate(c[8:14])) {
			d.r.take(8)
			return true, d.gpsLBS(layout{gps: true, lbs: lbsShort})
		}
		switch len(c) {
		case 0x24 - 5, 0x2B - 5:
			return true, d.statusAfterLBS(len(c) == 0x2B-5)
		}
	case msgGPSLBS2, msgGPSLBSDriver:
		// NT family: location source, IMEI, device time, then the GPS block.
		if s.modelNT() || (len(c) >= 21 && !isDate(c[:6]) && isBCD(c[1:9]) && isDate(c[9:15]) && isDate(c[15:21])) {
			return true, d.ntLocation()
		}
		if d.p.proto == msgGPSLBS2 && len(c) == 0x2F-5 {
			return true, d.seeworld22()
		}
	case msgGPSLBSStatus1:
		switch len(c) {
		case 0x24 - 5:
			// VXT01: the LBS block has no length byte; the alarm byte after
			// the GSM signal is not an alarm code on these devices.
			return true, d.gpsLBS(layout{gps: true, lbs: lbsShort, status: true, noAlarmExt: true})
		case 0x26 - 5:
			// Seeworld: a 4-byte cell id behind a length byte that says 9.
			return true, d.gpsLBS(layout{gps: true, lbs: lbsCid4, lbsLen: true, status: true})
		}
	case msgLBSMultiple3:
		if len(c) == 0x2E-5 {
			return true, d.sr411()
		}
	case msgWifi3:
		if len(c) == 0x40-5 {
			return true, d.lw4G()
		}
	case msgLBSStatus:
		if len(c) >= 0x17-5 {
			// Space10X multi-cell report: a date and several cells in a
			// layout no document describes.
			return true, fmt.Errorf("%w: 0x19 with %d content bytes (Space10X multi-cell report): layout not documented", plugins.ErrUnsupported, len(c))
		}
	}
	return false, nil
}

// isDate reports whether b holds a YY MM DD hh mm ss date (all zeros, "no
// fix yet", counts as a date).
func isDate(b []byte) bool {
	if len(b) < 6 {
		return false
	}
	if b[0]|b[1]|b[2]|b[3]|b[4]|b[5] == 0 {
		return true
	}
	return b[1] >= 1 && b[1] <= 12 && b[2] >= 1 && b[2] <= 31 && b[3] <= 23 && b[4] <= 59 && b[5] <= 59
}

func isBCD(b []byte) bool {
	_, ok := bcdDigits(b)
	return ok
}

// ntLocation is 0x22/0x25 of the NT family (NT20, XT40, ...): location
// source (1), the terminal's IMEI (8), device time (6), the GPS block, LBS
// with a length byte (cell id 3 bytes on 0x22, 4 on 0x25), terminal info,
// supply voltage (0.01 V), battery voltage (0.1 V), GSM signal, alarm,
// language, odometer (3, m), engine time (3, minutes); 0x25 then carries the
// driver id (length, type, id).
func (d *decoding) ntLocation() error {
	src := d.r.u8()
	d.r.take(8)
	devTime, ok, zero := d.dateTime()
	if err := d.gps(); err != nil {
		return err
	}
	sg := d.sig
	sg.SetAttr("location_source", src)
	if ok && !zero {
		sg.SetAttr("device_time", devTime.Format(time.RFC3339))
	}
	kind := lbsShort
	if d.p.proto == msgGPSLBSDriver {
		kind = lbsCid4
	}
	d.lbsTraccarLen(kind)
	d.terminalInfo(d.r.u8())
	sg.Voltage = float64(d.r.u16()) * 0.01
	sg.SetAttr("battery", float64(d.r.u8())*0.1)
	sg.SetAttr("gsm_signal", d.r.u8())
	d.alarmByte(d.r.u8())
	sg.SetAttr("language", d.r.u8())
	sg.Odometer = float64(d.r.u24()) / 1000
	sg.SetAttr("engine_hours", float64(d.r.u24())/60)
	if d.p.proto == msgGPSLBSDriver && d.r.left() >= 1 {
		if n := d.r.u8(); n > 0 {
			d.r.u8() // identifier type
			if id := d.r.take(n - 1); d.r.err == nil {
				sg.SetAttr("driver_id", hex.EncodeToString(id))
			}
		}
	}
	return d.r.err
}

// lbsTraccarLen reads an LBS block whose length byte counts the block as if
// the cell id had 3 bytes: a length above 9 is followed by length-9 extra
// bytes after the cell, whatever the cell id's size.
func (d *decoding) lbsTraccarLen(kind lbsKind) {
	n := d.r.u8()
	if n == 0 {
		return
	}
	mcc := d.r.u16()
	mnc := d.mnc(mcc)
	lac := d.r.u16()
	var cid uint64
	if kind == lbsCid4 {
		cid = uint64(d.r.u32())
	} else {
		cid = uint64(d.r.u24())
	}
	if n > 9 {
		d.r.take(n - 9)
	}
	if d.r.err == nil {
		d.cell(mcc&0x7FFF, mnc, lac, cid)
	}
}

func (d *decoding) mnc(mcc int) int {
	if mcc&0x8000 != 0 {
		return d.r.u16()
	}
	return d.r.u8()
}

// seeworld22 is Seeworld's 0x22 (length 0x2F): GPS block, LBS with a
// 4-byte cell id, ACC,
// reporting mode, re-upload flag, odometer (4, m), travel time (4),
// temperature (bits 0-14, 0.01 °C, bit 15 set = below zero), humidity
// (0.01 %).
func (d *decoding) seeworld22() error {
	if err := d.gpsLBS(layout{gps: true, lbs: lbsCid4}); err != nil {
		return err
	}
	sg := d.sig
	sg.SetAttr("ignition", d.r.u8() > 0)
	sg.SetAttr("upload_mode", d.r.u8())
	sg.SetAttr("archive", d.r.u8() != 0)
	sg.Odometer = float64(d.r.u32()) / 1000
	sg.SetAttr("travel_time", d.r.u32())
	v := d.r.u16()
	t := float64(v&0x7FFF) * 0.01
	if v&0x8000 != 0 {
		t = -t
	}
	sg.SetAttr("temp1", t)
	sg.SetAttr("humidity", float64(d.r.u16())*0.01)
	return d.r.err
}

// statusAfterLBS is 0x12 of length 0x24 (VXT01) and 0x2B (S5): GPS block,
// LBS, terminal info, supply voltage (0.01 V), GSM signal, alarm (VXT01:
// not an alarm code); S5 then oil (2), temperature (°C, bit 7 = below
// zero) and odometer (4, 10 m).
func (d *decoding) statusAfterLBS(s5 bool) error {
	if err := d.gpsLBS(layout{gps: true, lbs: lbsShort}); err != nil {
		return err
	}
	sg := d.sig
	d.terminalInfo(d.r.u8())
	sg.Voltage = float64(d.r.u16()) * 0.01
	sg.SetAttr("gsm_signal", d.r.u8())
	a := d.r.u8()
	if !s5 {
		if a != 0 {
			sg.SetAttr("alarm_code", a)
		}
		return d.r.err
	}
	d.alarmByte(a)
	sg.SetAttr("oil", d.r.u16())
	t := d.r.u8()
	if t&0x80 != 0 {
		t = -(t & 0x7F)
	}
	sg.SetAttr("temp1", t)
	sg.Odometer = float64(d.r.u32()) * 10 / 1000
	return d.r.err
}

// sr411 is the SR411 mini's 0x24 (length 0x2E): GPS block, LBS without a
// length byte, ACC, supply and battery voltage (0.01 V); the terminal id
// that follows is not stored.
func (d *decoding) sr411() error {
	if err := d.gpsLBS(layout{gps: true, lbs: lbsShort}); err != nil {
		return err
	}
	d.sig.SetAttr("ignition", d.r.u8() > 0)
	d.sig.Voltage = float64(d.r.u16()) * 0.01
	d.sig.SetAttr("battery", float64(d.r.u16())*0.01)
	return d.r.err
}

// lw4G is the LWxG 0xA2 (length 0x40, GPS+LBS+status): GPS block, 4G cell
// (MCC, MNC, LAC 4, cell id 8), network indicator, terminal info, supply
// voltage (0.01 V), battery level, GSM signal, alarm, language, odometer
// (4, m), engine time (4, s), terminal id (8), inputs (2).
func (d *decoding) lw4G() error {
	if err := d.gps(); err != nil {
		return err
	}
	sg := d.sig
	d.lbs(lbs4G, false)
	sg.SetAttr("network", d.r.u8())
	d.terminalInfo(d.r.u8())
	sg.Voltage = float64(d.r.u16()) * 0.01
	d.batteryLevel(d.r.u8())
	sg.SetAttr("gsm_signal", d.r.u8())
	d.alarmByte(d.r.u8())
	sg.SetAttr("language", d.r.u8())
	sg.Odometer = float64(d.r.u32()) / 1000
	sg.SetAttr("engine_hours", float64(d.r.u32())/3600)
	d.r.take(8) // terminal id
	sg.SetAttr("input", d.r.u16())
	return d.r.err
}

// status2 is 0x36. The Jimi 4G form: terminal info, voltage level, GSM
// signal, alarm, language, then modules (type 2, length 1, value): 0x0018
// battery voltage (0.01 V), 0x0032 startup status, 0x006A battery level.
// The VL103 family sends a location instead: GPS block, cell (MCC, MNC, LAC
// 2, cell id 4), 13 status bytes of which byte 9 is the battery voltage
// (0.1 V), and the RFID card (8 bytes, zero when none).
func (d *decoding) status2() error {
	c := d.p.content
	// Without the model option, the VL form is recognised by its length
	// (48), a date from 2010 on and a GPS-info byte announcing 12 bytes.
	if d.s.modelVL() || (len(c) == 18+9+13+8 && c[0] >= 10 && isDate(c[:6]) && c[6]>>4 == 0xC) {
		if err := d.gps(); err != nil {
			return err
		}
		sg := d.sig
		d.lbs(lbsCid4, false)
		st := d.r.take(13)
		if d.r.err != nil {
			return d.r.err
		}
		sg.SetAttr("battery", float64(st[9])*0.1)
		sg.SetAttr("vl_status", hex.EncodeToString(st))
		if d.r.left() >= 8 {
			if id := d.r.take(8); !allZero(id) {
				sg.SetAttr("driver_id", hex.EncodeToString(id))
			}
		}
		return d.r.err
	}
	d.sig = d.newSignal(time.Time{})
	d.statusBlock(true)
	for d.r.left() >= 3 && d.r.err == nil {
		id, n := d.r.u16(), d.r.u8()
		v := d.r.take(n)
		if d.r.err != nil {
			break
		}
		switch {
		case id == 0x0018 && n == 2:
			d.sig.SetAttr("battery", float64(binary.BigEndian.Uint16(v))*0.01)
		case id == 0x0032 && n == 1:
			d.sig.SetAttr("startup_status", int(v[0]))
		case id == 0x006A && n == 1:
			d.sig.SetAttr("battery_level", int(v[0]))
		default:
			d.sig.SetAttr(fmt.Sprintf("module_%04x", id), rawValue(v))
		}
	}
	return d.r.err
}

func (d *decoding) extended() error {
	p := d.p
	switch p.proto {
	case msgStringInfo:
		return d.stringInfo()
	case msgInfo:
		return d.info()
	case msgGPSLBSStatus4, msgAZ735Alarm:
		return d.az735()
	case msgGPSLBS8:
		return d.gpsLBS(layout{gps: true})
	case msgGPSModular:
		return d.modular()
	case msgOBD, msgPID:
		return d.obd()
	case msgSerial:
		return d.serial()
	case msgDeviceStatus, msgPeripheral:
		return d.tlvStatus()
	}
	return fmt.Errorf("%w: protocol number 0x%02x (0x7979)", plugins.ErrUnsupported, p.proto)
}

// dateTime reads the 6-byte YY MM DD hh mm ss block in the device's time
// zone. ok is false for an impossible date; zero is true for all zeros (no
// fix since boot).
func (d *decoding) dateTime() (t time.Time, ok, zero bool) {
	b := d.r.take(6)
	return d.s.clock(b)
}

func (s *Session) clock(b []byte) (t time.Time, ok, zero bool) {
	if b[0]|b[1]|b[2]|b[3]|b[4]|b[5] == 0 {
		return time.Time{}, true, true
	}
	y, mo, dd, h, mi, sec := int(b[0]), int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5])
	if mo < 1 || mo > 12 || dd < 1 || dd > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false, false
	}
	t = time.Date(2000+y, time.Month(mo), dd, h, mi, sec, 0, time.UTC).Add(-s.tz)
	return t, true, false
}

// gpsBlock reads lat, lon (4 bytes each, 1/1800000 degree), optional speed
// (km/h) and course/status into sg. The course/status word: bits 0-9
// course, bit 10 set = north, bit 11 set = west, bit 12 fix valid, bit 13
// differential, bit 14 set = bit 15 carries ACC.
func (d *decoding) gpsBlock(sg *signal.Signal, speed bool) error {
	lat := float64(d.r.u32()) / 1800000
	lon := float64(d.r.u32()) / 1800000
	if speed {
		sg.Speed = float64(d.r.u8())
	}
	flags := d.r.u16()
	if d.r.err != nil {
		return d.r.err
	}
	if flags&0x0400 == 0 {
		lat = -lat
	}
	if flags&0x0800 != 0 {
		lon = -lon
	}
	if math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return fmt.Errorf("%w: position %.6f,%.6f out of range: a layout variant this decoder does not know", plugins.ErrUnsupported, lat, lon)
	}
	sg.Lat, sg.Lon = lat, lon
	sg.Heading = float64(flags & 0x03FF)
	sg.Valid = signal.FlagOf(flags&0x1000 != 0)
	if flags&0x4000 != 0 {
		sg.SetAttr("ignition", flags&0x8000 != 0)
	}
	return nil
}

// gps reads the 18-byte GPS block: date-time, GPS info (length nibble,
// satellites nibble), position, speed, course/status.
func (d *decoding) gps() error {
	t, ok, zero := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: GPS date %x is not a date: a layout variant this decoder does not know",
			plugins.ErrUnsupported, d.r.b[d.r.off-6:d.r.off])
	}
	sg := d.newSignal(t)
	info := d.r.u8()
	sg.Sats = float64(info & 0x0F)
	if err := d.gpsBlock(sg, true); err != nil {
		return err
	}
	if zero {
		sg.SetAttr("time_missing", true)
		sg.Valid = signal.False
	}
	d.sig = sg
	return nil
}

func (d *decoding) gpsLBS(l layout) error {
	if l.gps {
		if err := d.gps(); err != nil {
			return err
		}
	} else {
		d.sig = d.newSignal(time.Time{})
	}
	if l.lbs != lbsNone {
		d.lbs(l.lbs, l.lbsLen)
	}
	if l.status {
		d.statusBlockExt(true, l.noAlarmExt)
	}
	if l.tail != nil && d.r.err == nil {
		l.tail(d)
	}
	return d.r.err
}

func (d *decoding) lbs(kind lbsKind, hasLen bool) {
	start := d.r.off
	n := 0
	if hasLen {
		n = d.r.u8()
		if n == 0 {
			// No cell info; some firmwares still send a zeroed block, of
			// 45 bytes (multi-cell) or of 8.
			switch {
			case d.r.left() >= 45+5 && allZero(d.r.b[d.r.off+9:d.r.off+45]):
				d.r.take(45)
			case d.r.left() >= 8+5 && allZero(d.r.b[d.r.off:d.r.off+8]):
				d.r.take(8)
			}
			return
		}
	}
	mcc := d.r.u16()
	var mnc, lac int
	var cid uint64
	switch kind {
	case lbsWide:
		mnc, lac, cid = d.r.u16(), d.r.u16(), uint64(d.r.u32())
	case lbs4G:
		mnc = d.mnc(mcc)
		lac, cid = int(d.r.u32()), d.r.u64()
	case lbsCid4:
		mnc = d.mnc(mcc)
		lac, cid = d.r.u16(), uint64(d.r.u32())
	default:
		if mcc&0x8000 != 0 {
			mnc = d.r.u16()
		} else {
			mnc = d.r.u8()
		}
		lac, cid = d.r.u16(), uint64(d.r.u24())
	}
	if hasLen && n > d.r.off-start {
		d.r.take(n - (d.r.off - start))
	}
	if d.r.err != nil {
		return
	}
	d.cell(mcc&0x7FFF, mnc, lac, cid)
}

func (d *decoding) cell(mcc, mnc, lac int, cid uint64) {
	d.sig.SetAttr("mcc", mcc)
	d.sig.SetAttr("mnc", mnc)
	d.sig.SetAttr("lac", lac)
	d.sig.SetAttr("cell_id", cid)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// statusBlock reads terminal info, voltage level, GSM signal strength and,
// when alarmLang, the alarm byte and the language byte.
func (d *decoding) statusBlock(alarmLang bool) { d.statusBlockExt(alarmLang, false) }

// statusBlockExt is statusBlock; noAlarmExt keeps the alarm byte as
// alarm_code without naming it.
func (d *decoding) statusBlockExt(alarmLang, noAlarmExt bool) {
	d.terminalInfo(d.r.u8())
	d.batteryLevel(d.r.u8())
	d.sig.SetAttr("gsm_signal", d.r.u8())
	if alarmLang {
		if a := d.r.u8(); noAlarmExt {
			if a != 0 {
				d.sig.SetAttr("alarm_code", a)
			}
		} else {
			d.alarmByte(a)
		}
		if d.r.left() > 0 {
			d.sig.SetAttr("language", d.r.u8()) // absent on some VXT01-style firmwares
		}
	}
}

// batteryLevel reads the voltage level byte: 0-6 is a level (battery_level
// = level·100/6), 7-100 a percentage; above, the raw value is kept.
func (d *decoding) batteryLevel(level int) {
	if d.r.err != nil {
		return
	}
	switch {
	case level <= 6:
		d.sig.SetAttr("voltage_level", level)
		d.sig.SetAttr("battery_level", level*100/6)
	case level <= 100:
		d.sig.SetAttr("battery_level", level)
	default:
		d.sig.SetAttr("voltage_level", level)
	}
}

// alarmByte stores a non-zero alarm code and its name.
func (d *decoding) alarmByte(a int) {
	if a == 0 || d.r.err != nil {
		return
	}
	d.sig.SetAttr("alarm_code", a)
	if name := alarmName(a, d.s); name != "" {
		d.sig.SetAttr("alarm", name)
	}
}

// terminalInfo decodes the terminal information byte: bit 0 armed, bit 1
// ACC (ignition), bit 2 charging, bits 3-5 alarm, bit 6 GPS tracking on,
// bit 7 fuel/power cut (relay engaged).
func (d *decoding) terminalInfo(v int) {
	if d.r.err != nil {
		return
	}
	sg := d.sig
	sg.SetAttr("status", v)
	sg.SetAttr("armed", v&0x01 != 0)
	sg.SetAttr("ignition", v&0x02 != 0)
	sg.SetAttr("charging", v&0x04 != 0)
	sg.SetAttr("gps_tracking", v&0x40 != 0)
	sg.SetAttr("blocked", v&0x80 != 0)
	switch (v >> 3) & 0x07 {
	case 1:
		sg.SetAttr("alarm", "vibration")
	case 2:
		sg.SetAttr("alarm", "power_cut")
	case 3:
		sg.SetAttr("alarm", "low_battery")
	case 4:
		sg.SetAttr("alarm", "sos")
	case 6:
		sg.SetAttr("alarm", "geofence")
	case 7:
		sg.SetAttr("alarm", "removing")
	}
}

// alarmName maps the alarm byte of the GPS+LBS+status packets. A few codes
// mean something else on some model families (listener option model).
func alarmName(v int, s *Session) string {
	lw, sw, vl := s.modelLW(), s.modelSW(), s.modelVL()
	switch v {
	case 0x01:
		return "sos"
	case 0x02:
		return "power_cut"
	case 0x03:
		return "vibration"
	case 0x09:
		if vl {
			return "tow"
		}
		return "vibration"
	case 0x04:
		return "geofence_enter"
	case 0x05:
		return "geofence_exit"
	case 0x06:
		return "overspeed"
	case 0x0E, 0x0F:
		return "low_battery"
	case 0x11:
		return "power_off"
	case 0x0C, 0x13, 0x25, 0x32:
		return "tampering"
	case 0x14:
		return "door"
	case 0x18:
		if lw {
			return "accident"
		}
		return "removing"
	case 0x19:
		if lw {
			return "hard_acceleration"
		}
		return "low_battery"
	case 0x1A, 0x27:
		return "hard_braking"
	case 0x1B, 0x2A, 0x2B, 0x2E:
		return "hard_cornering"
	case 0x23:
		return "fall_down"
	case 0x26:
		return "hard_acceleration"
	case 0x28:
		switch {
		case sw:
			return "hard_cornering"
		case vl:
			return "power_off"
		}
		return "hard_braking"
	case 0x29:
		if sw {
			return "accident"
		}
		return "hard_acceleration"
	case 0x2C:
		return "accident"
	case 0x30:
		if vl {
			return "hard_braking"
		}
		return "jamming"
	case 0x33:
		return "lock"
	case 0x34:
		return "unlock"
	case 0x53:
		return "fuel_leak"
	case 0x5B, 0x5C:
		return "temperature"
	case 0xC9:
		return "idle"
	}
	return ""
}

// status is the status / heartbeat packet 0x13: terminal info, voltage
// level, GSM signal, alarm and language. Longer model-specific variants keep
// their extra bytes in the raw frame only.
func (d *decoding) status() error {
	d.sig = d.newSignal(time.Time{})
	if len(d.p.content) == 5 {
		switch {
		case d.s.modelLW():
			// LW: the last two bytes are the supply voltage (low 12 bits,
			// 0.1 V) instead of alarm and language.
			d.terminalInfo(d.r.u8())
			d.batteryLevel(d.r.u8())
			d.sig.SetAttr("gsm_signal", d.r.u8())
			d.sig.Voltage = float64(d.r.u16()&0x0FFF) * 0.1
		case d.s.model == "R11":
			// R11: supply voltage (0.01 V) in place of the voltage level.
			d.terminalInfo(d.r.u8())
			d.sig.Voltage = float64(d.r.u16()) * 0.01
			d.sig.SetAttr("gsm_signal", d.r.u8())
			d.alarmByte(d.r.u8())
		case d.s.modelSW():
			// Seeworld: the alarm byte is the supply voltage (V).
			d.terminalInfo(d.r.u8())
			d.batteryLevel(d.r.u8())
			d.sig.SetAttr("gsm_signal", d.r.u8())
			d.sig.Voltage = float64(d.r.u8())
			d.sig.SetAttr("language", d.r.u8())
		default:
			d.statusBlock(true)
		}
		return d.r.err
	}
	switch len(d.p.content) {
	case 0x13 - 5:
		// OBD6: terminal info, signal word (satellites in bits 10-14 and
		// 5-9, GSM signal in bits 0-4), alarm, language, battery level (%),
		// working mode, supply voltage (0.01 V), reserved, working time,
		// then a temperature (0.1 °C) in working mode 4.
		d.terminalInfo(d.r.u8())
		w := d.r.u16()
		d.sig.Sats = float64(w>>10&0x1F + w>>5&0x1F)
		d.sig.SetAttr("gsm_signal", w&0x1F)
		d.alarmByte(d.r.u8())
		d.sig.SetAttr("language", d.r.u8())
		d.sig.SetAttr("battery_level", d.r.u8())
		mode := d.r.u8()
		d.sig.SetAttr("working_mode", mode)
		d.sig.Voltage = float64(d.r.u16()) * 0.01
		d.r.take(1)
		d.sig.SetAttr("working_time", d.r.u16())
		if mode == 4 && d.r.left() >= 2 {
			d.sig.SetAttr("temp1", float64(int16(d.r.u16()))/10)
		}
	case 0x15 - 5:
		// Information content, satellites (2), alarm, language, battery
		// level (%), working mode, working voltage (2), reserved, working
		// times (2), working time (2), temperature (bits 0-14, 0.1 °C; bit
		// 15 set = above zero).
		d.r.take(1 + 2)
		d.alarmByte(d.r.u8())
		d.sig.SetAttr("language", d.r.u8())
		d.sig.SetAttr("battery_level", d.r.u8())
		d.sig.SetAttr("working_mode", d.r.u8())
		d.r.take(2 + 1 + 2 + 2)
		v := d.r.u16()
		t := float64(v&0x7FFF) / 10
		if v&0x8000 == 0 {
			t = -t
		}
		d.sig.SetAttr("temp1", t)
	default:
		d.terminalInfo(d.r.u8())
	}
	return d.r.err
}

// statusShort is the short 0xA3 status form: terminal info only.
func (d *decoding) statusShort() error {
	d.sig = d.newSignal(time.Time{})
	d.terminalInfo(d.r.u8())
	return d.r.err
}

// heartbeat is the GK310 heartbeat 0x23: terminal info, battery voltage
// (0.01 V), GSM signal, language.
func (d *decoding) heartbeat() error {
	d.sig = d.newSignal(time.Time{})
	d.terminalInfo(d.r.u8())
	if d.r.left() >= 2 {
		d.sig.SetAttr("battery", float64(d.r.u16())*0.01)
	}
	if d.r.left() >= 1 {
		d.sig.SetAttr("gsm_signal", d.r.u8())
	}
	return d.r.err
}

func (d *decoding) odometerTail() {
	if d.r.left() == 4 {
		d.sig.Odometer = float64(d.r.u32()) / 1000
	}
}

// rfidStatusTail is the RFID card (8 bytes) the VL103 family appends to
// 0x16; zeros mean no card.
func (d *decoding) rfidStatusTail() {
	if d.s.modelVL() && d.r.left() >= 8 {
		if id := d.r.take(8); !allZero(id) {
			d.sig.SetAttr("driver_id", hex.EncodeToString(id))
		}
	}
}

func (d *decoding) rfidTail() {
	if d.r.left() >= 8 {
		d.sig.SetAttr("driver_id", hex.EncodeToString(d.r.take(8)))
	}
}

// accTail reads ACC, data upload mode and the real-time/re-upload flag, then
// an optional mileage (m).
func (d *decoding) accTail() {
	if d.r.left() >= 3 {
		d.sig.SetAttr("ignition", d.r.u8() != 0)
		d.sig.SetAttr("upload_mode", d.r.u8())
		d.sig.SetAttr("archive", d.r.u8() != 0)
	}
	d.odometerTail()
}

// accModulesTail is accTail followed by 0x37's modules (id 2, length 1).
func (d *decoding) accModulesTail() {
	if d.r.left() >= 3 {
		d.sig.SetAttr("ignition", d.r.u8() != 0)
		d.sig.SetAttr("upload_mode", d.r.u8())
		d.sig.SetAttr("archive", d.r.u8() != 0)
	}
	for d.r.left() >= 3 && d.r.err == nil {
		id, n := d.r.u16(), d.r.u8()
		v := d.r.take(n)
		switch {
		case id == 0x0027 && n == 2:
			d.sig.Voltage = float64(binary.BigEndian.Uint16(v)) * 0.01
		case id == 0x002E && n == 4:
			d.sig.Odometer = float64(binary.BigEndian.Uint32(v)) / 1000
		default:
			d.sig.SetAttr(fmt.Sprintf("module_%04x", id), rawValue(v))
		}
	}
}

func (d *decoding) fenceTail() {
	if d.r.left() >= 1 {
		d.sig.SetAttr("geofence", d.r.u8())
	}
}

// multiLBS is the LBS-only multi-cell family: date-time, MCC, MNC, seven
// cells (LAC, cell id, signal), timing advance, then Wi-Fi access points
// for 0x2C/0xA2. There is no GPS position: lat/lon stay absent.
func (d *decoding) multiLBS() error {
	t, ok, _ := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: LBS date is not a date: a layout variant this decoder does not know", plugins.ErrUnsupported)
	}
	sg := d.newSignal(t)
	d.sig = sg
	long := d.p.proto == msgLBS2 || d.p.proto == msgWifi3
	// Wanway S20 (0x24, length 0x31): timing advance first, then a cell
	// count instead of the fixed seven cells.
	s20 := d.p.proto == msgLBSMultiple3 && len(d.p.content) == 0x31-5
	if s20 {
		sg.SetAttr("timing_advance", d.r.u8())
	}
	mcc := d.r.u16()
	mnc := 0
	if mcc&0x8000 != 0 {
		mnc = d.r.u16()
	} else {
		mnc = d.r.u8()
	}
	cells, slots := 0, 7
	if s20 {
		slots = d.r.u8()
	}
	for i := range slots {
		var lac int
		var cid uint64
		if long {
			lac, cid = int(d.r.u32()), d.r.u64()
		} else {
			lac, cid = d.r.u16(), uint64(d.r.u24())
		}
		rssi := d.r.u8()
		if d.r.err != nil {
			return d.r.err
		}
		if lac == 0 && cid == 0 {
			continue
		}
		cells++
		if i == 0 {
			d.cell(mcc&0x7FFF, mnc, lac, cid)
			sg.SetAttr("cell_rssi", -rssi)
		}
	}
	sg.SetAttr("cells", cells)
	if s20 {
		return d.r.err
	}
	sg.SetAttr("timing_advance", d.r.u8())
	if d.p.proto == msgLBSWifi || d.p.proto == msgWifi3 {
		n := d.r.u8()
		aps := make([]string, 0, n)
		for range n {
			mac := d.r.take(6)
			rssi := d.r.u8()
			aps = append(aps, macString(mac)+"/"+strconv.Itoa(rssi))
		}
		sg.SetAttr("wifi_count", n)
		if n > 0 {
			sg.SetAttr("wifi", strings.Join(aps, ","))
		}
	}
	return d.r.err
}

func macString(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(hex.EncodeToString([]byte{x}))
	}
	return sb.String()
}

// wifi4 is 0xF3: date-time, count, then per access point 2 reserved bytes
// and the MAC. No position.
func (d *decoding) wifi4() error {
	t, ok, _ := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: Wi-Fi date is not a date", plugins.ErrUnsupported)
	}
	sg := d.newSignal(t)
	n := d.r.u8()
	aps := make([]string, 0, n)
	for range n {
		d.r.take(2)
		aps = append(aps, macString(d.r.take(6)))
	}
	sg.SetAttr("wifi_count", n)
	if n > 0 {
		sg.SetAttr("wifi", strings.Join(aps, ","))
	}
	d.sig = sg
	return d.r.err
}

// stringReply is 0x15 (command reply) and 0x81/0x82: command length, server
// flag (4), text, language. No response is sent to 0x81/0x82.
func (d *decoding) stringReply() error {
	sg := d.newSignal(time.Time{})
	d.sig = sg
	n := d.r.u8()
	if d.r.left() >= 4 {
		d.r.take(4) // server flag
		// Some firmwares send 0 as the command length: the text then runs
		// to the 2-byte language field.
		l := n - 4
		if l <= 0 || l > d.r.left() {
			l = max(d.r.left()-2, 0)
		}
		text := d.r.take(l)
		s := strings.TrimRight(string(text), "\x00")
		switch {
		case strings.HasPrefix(s, "<ICCID:") && len(s) >= 27:
			sg.SetAttr("iccid", s[7:27])
		case utf8.ValidString(s) && isPrintable(s):
			sg.SetAttr("result", s)
		default:
			sg.SetAttr("result", hex.EncodeToString(text))
		}
	}
	d.r.off = len(d.r.b)
	d.noAck = d.p.proto != msgString
	return d.r.err
}

func isPrintable(s string) bool {
	for _, c := range s {
		if c < 0x20 && c != '\r' && c != '\n' && c != '\t' || c == utf8.RuneError || c == 0x7F {
			return false
		}
	}
	return true
}

// stringInfo is 0x7979/0x21: server flag, encoding (1 ASCII, 2 UTF-16BE),
// text. "Current position!" replies carry a fix.
func (d *decoding) stringInfo() error {
	d.r.take(4)
	enc := d.r.u8()
	raw := d.r.take(d.r.left())
	var text string
	if enc == 1 {
		text = string(raw)
	} else {
		u := make([]uint16, len(raw)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(raw[2*i:])
		}
		text = string(utf16.Decode(u))
	}
	if sg, ok := d.parseCurrentPosition(text); ok {
		d.sig = sg
	} else {
		d.sig = d.newSignal(time.Time{})
		d.sig.SetAttr("result", strings.ToValidUTF8(text, "\uFFFD"))
	}
	d.noAck = true
	return d.r.err
}

// parseCurrentPosition parses "Current position!Lat:N54.739332,Lon:E25.273270,
// Course:126.53,Speed:0.00,DateTime:2019-03-12 10:31:12".
func (d *decoding) parseCurrentPosition(text string) (*signal.Signal, bool) {
	rest, ok := strings.CutPrefix(text, "Current position!")
	if !ok {
		return nil, false
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(part, ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	coord := func(s string, pos, neg byte) (float64, bool) {
		if len(s) < 2 || (s[0] != pos && s[0] != neg) {
			return 0, false
		}
		f, err := strconv.ParseFloat(s[1:], 64)
		if err != nil {
			return 0, false
		}
		if s[0] == neg {
			f = -f
		}
		return f, true
	}
	lat, ok1 := coord(fields["Lat"], 'N', 'S')
	lon, ok2 := coord(fields["Lon"], 'E', 'W')
	dt := strings.TrimSpace(fields["DateTime"])
	// "DateTime:2019-03-12 10:31:12" was split at its colons; rebuild it.
	if i := strings.Index(text, "DateTime:"); i >= 0 {
		dt = strings.TrimSpace(text[i+len("DateTime:"):])
	}
	ts, err := time.Parse("2006-01-02 15:04:05", dt)
	if !ok1 || !ok2 || err != nil || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return nil, false
	}
	// Course and speed are optional; one that is there and does not parse
	// makes the text not a position (it is then kept as the reply text).
	num := func(k string) (float64, bool) {
		v := fields[k]
		if v == "" {
			return math.NaN(), true
		}
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	}
	course, ok1 := num("Course")
	speed, ok2 := num("Speed")
	if !ok1 || !ok2 {
		return nil, false
	}
	sg := d.newSignal(ts.Add(-d.s.tz))
	sg.Lat, sg.Lon, sg.Valid = lat, lon, signal.True
	sg.Heading, sg.Speed = course, speed
	return sg, true
}

// info is 0x7979/0x94, the information transmission packet: a sub-type and
// its content. The device expects no response.
func (d *decoding) info() error {
	d.noAck = true
	sg := d.newSignal(time.Time{})
	d.sig = sg
	sub := d.r.u8()
	data := d.r.take(d.r.left())
	if d.r.err != nil {
		return d.r.err
	}
	switch {
	case sub == 0x00 && len(data) >= 2:
		sg.Voltage = float64(binary.BigEndian.Uint16(data)) * 0.01
	case sub == 0x05 && len(data) >= 1:
		flags := data[0]
		if len(data) >= 7 {
			// Device time, then the flags.
			t, ok, zero := d.s.clock(data[:6])
			if !ok {
				return fmt.Errorf("%w: information 0x05 device time %x is not a date and time", plugins.ErrMalformed, data[:6])
			}
			if !zero {
				sg.TS = t
			}
			flags = data[6]
		}
		sg.SetAttr("door", flags&0x01 != 0)
		sg.SetAttr("io1", flags&0x04 != 0)
	case sub == 0x0A && len(data) >= 26:
		sg.SetAttr("imsi", strings.TrimRight(hex.EncodeToString(data[8:16]), "f"))
		sg.SetAttr("iccid", strings.TrimRight(hex.EncodeToString(data[16:26]), "f"))
	case sub == 0x0B && len(data) == 2:
		sg.Voltage = float64(binary.BigEndian.Uint16(data)) * 0.01
	case sub == 0x0B && len(data) == 1:
		tech := "2G"
		if data[0] > 0 {
			tech = "4G"
		}
		sg.SetAttr("network_technology", tech)
	case sub == 0x1E && len(data) == 8:
		// Temperature and humidity sensor: two signed 32-bit values, 0.1.
		sg.SetAttr("temp1", float64(int32(binary.BigEndian.Uint32(data)))/10)
		sg.SetAttr("humidity", float64(int32(binary.BigEndian.Uint32(data[4:])))/10)
	case sub == 0x0D:
		d.fuelSensor(data)
	case sub == 0x1B && len(data) == 8 && data[0] == 0x02:
		sg.SetAttr("driver_id", hex.EncodeToString(data[2:6]))
	case sub == 0x1B && isPrintable(string(data)):
		sg.SetAttr("driver_id", strings.TrimSpace(string(data)))
	case isPrintable(string(data)) && len(data) > 0:
		sg.SetAttr(fmt.Sprintf("info_%02x", sub), strings.TrimSpace(string(data)))
	default:
		sg.SetAttr(fmt.Sprintf("info_%02x", sub), rawValue(data))
	}
	return nil
}

// fuelSensor parses the ultrasonic fuel sensor line "!AIOIL,addr,output,
// temperature,version,status,level,moving,count+checksum", optionally after a
// 6-byte time.
func (d *decoding) fuelSensor(data []byte) {
	if i := strings.IndexByte(string(data), '!'); i >= 0 {
		data = data[i:]
	}
	text := strings.TrimSpace(string(data))
	f := strings.Split(text, ",")
	if len(f) < 7 || f[0] != "!AIOIL" || !isPrintable(text) {
		d.sig.SetAttr("info_0d", rawValue(data))
		return
	}
	d.sig.SetAttr("fuel_sensor", text)
	if v, err := strconv.ParseFloat(f[3], 64); err == nil {
		d.sig.SetAttr("temp1", v)
	}
	if v, err := strconv.ParseFloat(f[6], 64); err == nil {
		d.sig.SetAttr("fuel_level", v)
	}
}

// alarm is the JC100/JC400 alarm 0x95: either date-time + alarm type, or
// date-time + position (no satellites, no speed) + alarm type; the 0xFFFF
// variant of the JC400 dashcams carries a full GPS block, an event code and
// the names of the recorded video files.
func (d *decoding) alarm() error {
	c := d.p.content
	if len(c) >= 3 && c[0] == 0xFF && c[1] == 0xFF {
		d.r.take(3)
		if err := d.gpsNoSpeed(true); err != nil {
			return err
		}
		d.r.take(3)
		d.sig.SetAttr("alarm_code", d.r.u8())
		d.sig.SetAttr("event", d.r.u8())
		d.r.take(min(2, d.r.left()))
		if files := strings.TrimRight(string(d.r.take(d.r.left())), "\x00"); files != "" && isPrintable(files) {
			d.sig.SetAttr("event_files", files)
		}
		return d.r.err
	}
	extended := len(c) > 7
	if extended {
		if err := d.gpsNoSpeed(false); err != nil {
			return err
		}
	} else {
		t, ok, _ := d.dateTime()
		if !ok {
			return fmt.Errorf("%w: alarm date is not a date", plugins.ErrUnsupported)
		}
		d.sig = d.newSignal(t)
	}
	a := d.r.u8()
	d.sig.SetAttr("alarm_code", a)
	name := "general"
	switch a {
	case 0x01:
		if extended {
			name = "sos"
		}
	case 0x80:
		name = "vibration"
	case 0x87:
		name = "overspeed"
	case 0x90:
		name = "hard_acceleration"
	case 0x91:
		name = "hard_braking"
	case 0x92:
		name = "hard_cornering"
	case 0x93:
		name = "accident"
	}
	d.sig.SetAttr("alarm", name)
	return d.r.err
}

// gpsNoSpeed reads date-time, [GPS info], lat, lon, course/status.
func (d *decoding) gpsNoSpeed(info bool) error {
	t, ok, zero := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: alarm date is not a date", plugins.ErrUnsupported)
	}
	sg := d.newSignal(t)
	if info {
		sg.Sats = float64(d.r.u8() & 0x0F)
	}
	if err := d.gpsBlock(sg, false); err != nil {
		return err
	}
	if zero {
		sg.SetAttr("time_missing", true)
		sg.Valid = signal.False
	}
	d.sig = sg
	return nil
}

// x1GPS is 0x34 (X1): data/alarm (4), GPS block, terminal info (2),
// mileage (4), cell (MCC 2, MNC 1, LAC 2, cell id 4), driver id (4), battery
// and power (0.01 V), port info (4), inputs, outputs, ADCs (0.01 V).
func (d *decoding) x1GPS() error {
	d.r.take(4)
	if err := d.gps(); err != nil {
		return err
	}
	sg := d.sig
	sg.SetAttr("terminal_info", d.r.u16())
	sg.Odometer = float64(d.r.u32()) / 1000
	mcc, mnc, lac, cid := d.r.u16(), d.r.u8(), d.r.u16(), d.r.u32()
	d.cell(mcc, mnc, lac, uint64(cid))
	if drv := d.r.u32(); drv > 0 {
		sg.SetAttr("driver_id", strconv.FormatUint(uint64(drv), 10))
	}
	sg.SetAttr("battery", float64(d.r.u16())*0.01)
	sg.Voltage = float64(d.r.u16()) * 0.01
	port := d.r.u32()
	sg.SetAttr("input", d.r.u8())
	sg.SetAttr("output", d.r.u8())
	for i := 1; i <= int(port>>20&0x0F) && d.r.left() >= 2; i++ {
		sg.SetAttr("adc"+strconv.Itoa(i), float64(d.r.u16())*0.01)
	}
	return d.r.err
}

// photoInfo is 0x35 (X1 camera): time, fix status, unsigned lat/lon (no
// hemisphere bits, so they are not stored as a position), camera id, photo
// source, format, photo length and id. fleetcore does not fetch photos: the
// metadata is stored, and no response is sent (the device would expect a
// photo data request, not an ack).
func (d *decoding) photoInfo() error {
	t, ok, _ := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: photo date is not a date", plugins.ErrUnsupported)
	}
	sg := d.newSignal(t)
	d.sig = sg
	d.r.take(1 + 4 + 4)
	sg.SetAttr("camera", d.r.u8())
	sg.SetAttr("photo_source", d.r.u8())
	sg.SetAttr("photo_format", d.r.u8())
	sg.SetAttr("photo_size", d.r.u32())
	sg.SetAttr("photo_id", d.r.u32())
	d.noAck = true
	return d.r.err
}

// iButton is 0x61: terminal id (8), GPS block, cell, then the iButton id.
func (d *decoding) iButton() error {
	d.r.take(8)
	if err := d.gps(); err != nil {
		return err
	}
	d.lbs(lbsShort, false)
	if d.r.left() >= 7 {
		d.r.take(1)
		b := d.r.take(6)
		v := uint64(0)
		for _, x := range b {
			v = v<<8 | uint64(x)
		}
		d.sig.SetAttr("driver_id", strconv.FormatUint(v, 10))
	}
	return d.r.err
}

// az735 is 0x7979/0x32 (GPS) and 0x33 (alarm): GPS block with a length
// byte (0 = no fix), LBS with a length byte, signal, extra cells, Wi-Fi,
// status, reserved extension.
func (d *decoding) az735() error {
	t, ok, _ := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: AZ735 date is not a date", plugins.ErrUnsupported)
	}
	sg := d.newSignal(t)
	d.sig = sg
	if gpsLen := d.r.u8(); gpsLen != 0 {
		sg.Sats = float64(d.r.u8() & 0x0F)
		if err := d.gpsBlock(sg, true); err != nil {
			return err
		}
	}
	if d.r.left() > 0 && d.r.b[d.r.off] != 0 {
		d.lbs(lbsShort, true) // reads its own length byte
		sg.SetAttr("gsm_signal", d.r.u8())
	} else {
		d.r.take(1) // no cell info
	}
	if n := d.r.u8(); n > 0 {
		d.r.take(n)
		sg.SetAttr("extra_cells_bytes", n)
	}
	if n := d.r.u8(); n > 0 {
		d.r.take(n)
		sg.SetAttr("wifi_bytes", n)
	}
	st := d.r.u8()
	sg.SetAttr("status", st)
	if d.p.proto == msgAZ735Alarm {
		switch st {
		case 0xA0:
			sg.SetAttr("armed", true)
		case 0xA1:
			sg.SetAttr("armed", false)
		case 0xA2, 0xA3:
			sg.SetAttr("alarm", "low_battery")
		case 0xA4:
			sg.SetAttr("alarm", "general")
		case 0xA5:
			sg.SetAttr("alarm", "door")
		}
	}
	if d.r.left() > 0 {
		d.r.take(min(d.r.u8(), d.r.left()))
	}
	return d.r.err
}

// modular is 0x7979/0x70: modules of (type 2, length 2, data). Module 0x33
// is the GPS fix.
func (d *decoding) modular() error {
	sg := d.newSignal(time.Time{})
	d.sig = sg
	for d.r.left() >= 4 && d.r.err == nil {
		typ, n := d.r.u16(), d.r.u16()
		v := d.r.take(n)
		if d.r.err != nil {
			break
		}
		m := &reader{b: v}
		switch {
		case typ == 0x03 && n == 10:
			sg.SetAttr("iccid", hex.EncodeToString(v))
		case typ == 0x09 && n == 1:
			sg.Sats = float64(v[0])
		case typ == 0x0A && n == 1:
			sg.SetAttr("sats_visible", int(v[0]))
		case typ == 0x11 && n >= 10:
			mcc, mnc, lac, cid, rssi := m.u16(), m.u16(), m.u16(), m.u24(), m.u8()
			if cid > 0 {
				d.cell(mcc, mnc, lac, uint64(cid))
				sg.SetAttr("cell_rssi", rssi)
			}
		case typ == 0x18 && n == 2:
			sg.SetAttr("battery", float64(binary.BigEndian.Uint16(v))*0.01)
		case typ == 0x28 && n == 1:
			sg.HDOP = float64(v[0]) * 0.1
		case typ == 0x29 && n == 4:
			sg.SetAttr("index", binary.BigEndian.Uint32(v))
		case typ == 0x2A && n == 1:
			sg.SetAttr("door", v[0]&0x0F > 0)
			sg.SetAttr("tamper", v[0]>>4 > 0)
		case typ == 0x2B && n == 1:
			sg.SetAttr("event", int(v[0]))
			switch v[0] {
			case 0x11:
				sg.SetAttr("alarm", "low_battery")
			case 0x12:
				sg.SetAttr("alarm", "low_power")
			case 0x13:
				sg.SetAttr("alarm", "power_cut")
			case 0x14:
				sg.SetAttr("alarm", "removing")
			}
		case typ == 0x2E && n == 4:
			sg.Odometer = float64(binary.LittleEndian.Uint32(v)) / 1000
		case typ == 0x7F && n == 14:
			// Bluetooth sensor tag: id (6), battery (mV), battery level
			// (%), temperature (0.1 °C), humidity (%), status.
			sg.SetAttr("tag1_id", hex.EncodeToString(m.take(6)))
			sg.SetAttr("tag1_battery", float64(m.u16())/1000)
			sg.SetAttr("tag1_battery_level", m.u8())
			sg.SetAttr("tag1_temp", float64(int16(m.u16()))/10)
			sg.SetAttr("tag1_humidity", int(int16(m.u16())))
			sg.SetAttr("tag1_status", m.u8())
		case typ == 0x33 && n >= 18:
			if allZero(v) {
				continue // no fix since boot
			}
			sg.TS = time.Unix(int64(m.u32()), 0).UTC()
			sg.Sats = float64(m.u8())
			sg.Alt = float64(int16(m.u16()))
			sub := d.r
			d.r = *m
			err := d.gpsBlock(sg, true)
			d.r = sub
			if err != nil {
				return err
			}
		default:
			sg.SetAttr(fmt.Sprintf("module_%04x", typ), rawValue(v))
		}
	}
	// The response is a 0x7878 packet with the same protocol number.
	d.ack = Response(false, msgGPSModular, nil, d.p.serial)
	return d.r.err
}

// obd is 0x7979/0x8C (OBD data) and 0x66 (PIDs): date-time, ACC, "id=value"
// pairs in ASCII hex, then a 12-byte GPS tail (info, lat, lon, speed,
// course/status). OBD ids: 0x28 odometer, 0x2B fuel level, 0x2D coolant,
// 0x36 RPM (all 0.01 units), 0x4A VIN.
func (d *decoding) obd() error {
	t, ok, _ := d.dateTime()
	if !ok {
		return fmt.Errorf("%w: OBD date is not a date", plugins.ErrUnsupported)
	}
	sg := d.newSignal(t)
	d.sig = sg
	sg.SetAttr("ignition", d.r.u8() > 0)
	if d.r.left() < 12 {
		return fmt.Errorf("%w: OBD packet without its GPS tail", errShort)
	}
	text := string(d.r.take(d.r.left() - 12))
	for pair := range strings.SplitSeq(text, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			continue
		}
		d.obdValue(k, v)
	}
	sg.Sats = float64(d.r.u8() & 0x0F)
	if err := d.gpsBlock(sg, true); err != nil {
		return err
	}
	d.noAck = true
	return d.r.err
}

func (d *decoding) obdValue(k, v string) {
	sg := d.sig
	n, err := strconv.ParseUint(v, 16, 64)
	if d.p.proto == msgPID {
		switch {
		case err == nil:
			sg.SetAttr("pid_"+strings.ToLower(k), n)
		case v != "":
			sg.SetAttr("pid_"+strings.ToLower(k), v) // not hex: kept as sent, not dropped
		}
		return
	}
	id := -1
	if len(k) >= 2 {
		if x, err := strconv.ParseUint(k[:2], 16, 8); err == nil {
			id = int(x)
		}
	}
	f := float64(n) * 0.01
	switch {
	case id == 0x4A:
		if v != "" {
			sg.SetAttr("vin", v)
		}
	case err != nil:
		if v != "" {
			sg.SetAttr("obd_"+strings.ToLower(k), v)
		}
	case id == 0x28:
		sg.Odometer = f
	case id == 0x2B:
		sg.Fuel = f
	case id == 0x2D:
		sg.Coolant = f
	case id == 0x36:
		sg.RPM = f
	case id == 0x35:
		sg.SetAttr("obd_speed", f)
	case id == 0x47:
		sg.SetAttr("fuel_used", f)
	case id == 0x49:
		sg.SetAttr("hours", f)
	default:
		sg.SetAttr("obd_"+strings.ToLower(k), n)
	}
}

// serial is 0x7979/0x9B, pass-through data from a serial peripheral: type
// code, then the peripheral's bytes.
func (d *decoding) serial() error {
	sg := d.newSignal(time.Time{})
	d.sig = sg
	sg.SetAttr("serial_type", d.r.u8())
	data := d.r.take(d.r.left())
	if t := strings.TrimSpace(string(data)); t != "" && isPrintable(t) {
		sg.SetAttr("serial", t)
	} else {
		sg.SetAttr("serial", hex.EncodeToString(data))
	}
	d.noAck = true
	return d.r.err
}

// tlvStatus is 0x7979/0xF1 (device status) and 0xF2 (peripheral): Unix
// time (4), then items (id 2, length 1, value). Device status item 0x0005 is
// the supply voltage in 0.01 V.
func (d *decoding) tlvStatus() error {
	ts := time.Unix(int64(d.r.u32()), 0).UTC()
	if d.r.err != nil {
		return d.r.err
	}
	sg := d.newSignal(ts)
	d.sig = sg
	for d.r.left() >= 3 && d.r.err == nil {
		id := d.r.u16()
		if d.p.proto == msgPeripheral {
			d.peripheralItem(id)
			continue
		}
		n := d.r.u8()
		v := d.r.take(n)
		if d.r.err != nil {
			break
		}
		if id == 0x0005 && n == 2 {
			sg.Voltage = float64(binary.BigEndian.Uint16(v)) * 0.01
			continue
		}
		sg.SetAttr(fmt.Sprintf("status_%04x", id), rawValue(v))
	}
	return d.r.err
}

// peripheralItem reads one 0xF2 item. 0x000A (Bluetooth peripheral event):
// length (2), MAC type, MAC (6), event, event data, data type, data.
// 0x000C (external battery): length, level (%), charging, cycles (2),
// reserved. Others: length (1; 0 means a second length byte follows), value.
func (d *decoding) peripheralItem(id int) {
	sg := d.sig
	switch id {
	case 0x000A:
		n := d.r.u16()
		if n < 10 {
			d.r.err = fmt.Errorf("%w: peripheral event of %d bytes, want at least 10", errShort, n)
			return
		}
		v := d.r.take(n)
		if d.r.err != nil {
			return
		}
		sg.SetAttr("peripheral_mac", macString(v[1:7]))
		sg.SetAttr("event", int(v[7]))
		if v[7] != 0 {
			sg.SetAttr("event_data", int(v[8]))
		}
		sg.SetAttr("peripheral_data_type", int(v[9]))
		if data := string(v[10:]); isPrintable(data) {
			sg.SetAttr("peripheral_data", data)
		} else {
			sg.SetAttr("peripheral_data", hex.EncodeToString(v[10:]))
		}
	case 0x000C:
		v := d.r.take(d.r.u8())
		if d.r.err != nil || len(v) < 4 {
			return
		}
		sg.SetAttr("external_battery_level", int(v[0]))
		sg.SetAttr("external_battery_charging", v[1] != 0)
		sg.SetAttr("external_battery_cycles", int(binary.BigEndian.Uint16(v[2:4])))
	default:
		n := d.r.u8()
		if n == 0 {
			n = d.r.u8()
		}
		v := d.r.take(n)
		if d.r.err == nil {
			sg.SetAttr(fmt.Sprintf("peripheral_%04x", id), rawValue(v))
		}
	}
}

// rawValue keeps up to 4 bytes as an unsigned integer and longer values as
// hex.
func rawValue(v []byte) any {
	if len(v) == 0 || len(v) > 4 {
		return hex.EncodeToString(v)
	}
	n := int64(0)
	for _, x := range v {
		n = n<<8 | int64(x)
	}
	return n
}
