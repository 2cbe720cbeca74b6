// Package castel decodes the binary protocol of Sinocastel (Castel) OBD
// trackers (IDD-213, IDD-212, IDD-216, 213W/213L, MPIP-620, PT-690, …):
// "@@" (or "$$" for the MPIP family) + little-endian length + version +
// 20-byte device id + type + body + CRC-16/X-25 + CRLF. See README.md for
// the message types, the field mapping and the acks.
package castel

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "castel"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5086

const (
	defaultMaxFrame = 64 << 10
	idLen           = 20
	minSC           = 2 + 2 + 1 + idLen + 2 + 2 + 2 // "@@" frame without body
	minMPIP         = 2 + 2 + idLen + 2 + 2 + 2     // "$$" frame without body
)

// Message types.
const (
	scLogin        = 0x1001
	scLoginResp    = 0x9001
	scLogout       = 0x1002
	scHeartbeat    = 0x1003
	scHeartResp    = 0x9003
	scGPS          = 0x4001
	scPIDData      = 0x4002
	scGSensor      = 0x4003
	scSupportedPID = 0x4004
	scOBDData      = 0x4005
	scDTCs         = 0x4006
	scAlarm        = 0x4007
	scAlarmResp    = 0xC007
	scCell         = 0x4008
	scGPSSleep     = 0x4009
	scDTCsComm     = 0x400B
	scFuel         = 0x400E
	scComprehens   = 0x401F
	scAGPS         = 0x5101
	scQueryResp    = 0xA002
	scCurrentLoc   = 0xB001

	ccLogin      = 0x4001
	ccLoginResp  = 0x8001
	ccHeartbeat  = 0x4206
	ccHeartResp  = 0x8206
	mpipLocation = 0x4001
	mpipLogin    = 0x2001
	mpipLoginAck = 0x1001
)

// Decoder is the Castel protocol. The zero value is ready to use. It is
// shared by every session: it remembers the receive time it gave each
// message without a device time (query responses), keyed by the frame's
// bytes, so a resend gets the same time and key.
type Decoder struct {
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP, plugins.UDP},
		DefaultPort: DefaultPort,
		Description: "Sinocastel/Castel OBD trackers: @@/$$ framing, CRC-16/X-25, GPS, OBD PIDs, DTCs, VIN, alarms",
	}
}

// NewSession starts one connection's state. Every frame carries the
// device id, so there is no login to wait for.
func (dec *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{dec: dec, cfg: cfg, log: log.Named(Name)}
}

// Session is one Castel connection (or UDP source).
type Session struct {
	dec    *Decoder
	cfg    plugins.SessionConfig
	log    hclog.Logger
	device string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID returns the id of the last frame decoded, or "".
func (s *Session) DeviceID() string { return s.device }

// Frame returns the length of the frame at the start of buf: "@@" or "$$",
// the little-endian total length, and CRLF at its end. The CRC is checked
// by Decode so the frame can be quarantined whole.
func (s *Session) Frame(buf []byte) (int, error) {
	n, err := frameLen(buf, s.cfg.MaxFrame)
	if err != nil {
		return 0, fmt.Errorf("framing castel frame: %w", err)
	}
	return n, nil
}

func frameLen(buf []byte, max int) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if buf[0] != '@' && buf[0] != '$' {
		return 0, fmt.Errorf("%w: start byte 0x%02x, want \"@@\" or \"$$\"", plugins.ErrMalformed, buf[0])
	}
	if len(buf) < 2 {
		return 0, nil
	}
	if buf[1] != buf[0] {
		return 0, fmt.Errorf("%w: start bytes 0x%02x%02x, want \"@@\" or \"$$\"", plugins.ErrMalformed, buf[0], buf[1])
	}
	if len(buf) < 4 {
		return 0, nil
	}
	total := int(binary.LittleEndian.Uint16(buf[2:]))
	minLen := minSC
	if buf[0] == '$' {
		minLen = minMPIP
	}
	if total < minLen {
		return 0, fmt.Errorf("%w: length %d below the minimum %d", plugins.ErrMalformed, total, minLen)
	}
	if max > 0 && total > max {
		return 0, fmt.Errorf("%w: frame of %d bytes exceeds %d", plugins.ErrTooLarge, total, max)
	}
	if len(buf) < total {
		return 0, nil
	}
	if buf[total-2] != '\r' || buf[total-1] != '\n' {
		return 0, fmt.Errorf("%w: bytes 0x%02x%02x at the end of the frame (length field %d), want CRLF",
			plugins.ErrMalformed, buf[total-2], buf[total-1], total)
	}
	return total, nil
}

// message is a checked frame split into its parts.
type message struct {
	version int    // -1 for "$$" frames
	id      []byte // the 20 raw id bytes (echoed in acks)
	device  string // id with padding trimmed
	typ     uint16
	body    []byte
}

func parse(frame []byte, max int) (message, error) {
	n, err := frameLen(frame, max)
	if err != nil {
		return message{}, err
	}
	if n == 0 {
		return message{}, fmt.Errorf("%w: truncated frame of %d bytes", plugins.ErrMalformed, len(frame))
	}
	if n != len(frame) {
		return message{}, fmt.Errorf("%w: %d bytes after the frame (length field %d)", plugins.ErrMalformed, len(frame)-n, n)
	}
	want := binary.LittleEndian.Uint16(frame[n-4:])
	if got := CRC(frame[:n-4]); got != want {
		return message{}, fmt.Errorf("%w: CRC-16/X-25 0x%04x, frame says 0x%04x", plugins.ErrChecksum, got, want)
	}
	m := message{version: -1}
	off := 4
	if frame[0] == '@' {
		m.version = int(frame[4])
		off = 5
	}
	m.id = frame[off : off+idLen]
	m.typ = binary.BigEndian.Uint16(frame[off+idLen:])
	m.body = frame[off+idLen+2 : n-4]
	dev := strings.TrimFunc(string(m.id), func(r rune) bool { return r <= ' ' })
	if dev == "" {
		return m, fmt.Errorf("%w: empty device id", plugins.ErrMalformed)
	}
	if !utf8.ValidString(dev) || strings.ContainsRune(dev, 0) {
		return m, fmt.Errorf("%w: device id %q is not text", plugins.ErrMalformed, dev)
	}
	m.device = dev
	return m, nil
}

// Response builds a server frame: "@@", length, version, the device's id,
// type, content, CRC-16/X-25 and CRLF. A version of -1 (the "$$" family)
// is written as 0xFF, as Traccar does.
func Response(version int, id []byte, typ uint16, content []byte) []byte {
	n := 2 + 2 + 1 + len(id) + 2 + len(content) + 2 + 2
	b := make([]byte, 0, n)
	b = append(b, '@', '@')
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	b = append(b, byte(version))
	b = append(b, id...)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = append(b, content...)
	b = binary.LittleEndian.AppendUint16(b, CRC(b))
	return append(b, '\r', '\n')
}

// mpipResponse is the short ack of the "$$" login (0x2001): no version
// byte, a zero index and eight 0xFF bytes.
func mpipResponse(id []byte, typ uint16) []byte {
	n := 2 + 2 + len(id) + 2 + 4 + 8 + 2 + 2
	b := make([]byte, 0, n)
	b = append(b, '@', '@')
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	b = append(b, id...)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = append(b, 0, 0, 0, 0)
	b = append(b, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	b = binary.LittleEndian.AppendUint16(b, CRC(b))
	return append(b, '\r', '\n')
}

// Decode checks the frame (length, stop bytes, CRC) and decodes it.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	m, err := parse(frame, s.cfg.MaxFrame)
	if err != nil {
		return plugins.Result{DeviceID: s.device}, fmt.Errorf("decoding castel frame: %w", err)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(m.device) {
		return plugins.Result{DeviceID: m.device}, fmt.Errorf("decoding castel frame: %w: %s", plugins.ErrUnauthorized, m.device)
	}
	if s.device != "" && s.device != m.device {
		s.log.Warn("device changed its id on one connection", "from", s.device, "to", m.device)
	}
	s.device = m.device
	d := &decoding{s: s, m: m, frame: frame, recv: recv.UTC(), r: reader{b: m.body}}
	switch m.version {
	case -1:
		err = d.mpip()
	case 3, 4:
		err = d.sc()
	default:
		err = d.cc()
	}
	if err == nil && d.r.short {
		err = fmt.Errorf("%w: body of %d bytes ends early", plugins.ErrMalformed, len(m.body))
	}
	if err == nil {
		// A value outside its field's domain (a speed of 2 000 km/h) is a
		// broken frame: refused here with the field named, as the gateway
		// would.
		err = checkNumbers(d.out)
	}
	if err != nil {
		return plugins.Result{DeviceID: m.device}, fmt.Errorf("decoding castel message 0x%04x: %w", m.typ, err)
	}
	return plugins.Result{Signals: d.out, Ack: d.ack, DeviceID: m.device}, nil
}

// reader reads the body; reading past its end sets short and yields zeros.
type reader struct {
	b     []byte
	off   int
	short bool
}

func (r *reader) take(n int) []byte {
	if n < 0 || r.off+n > len(r.b) {
		r.short = true
		r.off = len(r.b)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) left() int { return len(r.b) - r.off }

// cstring reads a NUL-terminated string (the NUL is consumed); ok is false
// when no NUL follows.
func (r *reader) cstring() (string, bool) {
	rest := r.b[r.off:]
	for i, c := range rest {
		if c == 0 {
			r.off += i + 1
			return string(rest[:i]), true
		}
	}
	return "", false
}

// decoding is one frame being decoded.
type decoding struct {
	s     *Session
	m     message
	frame []byte
	recv  time.Time
	r     reader
	out   []signal.Signal
	ack   []byte
	copy  []byte
}

func (d *decoding) newSignal(ts time.Time) *signal.Signal {
	if ts.IsZero() {
		ts = d.s.dec.times.Stamp(d.m.device, d.frame, d.recv.Truncate(time.Microsecond))
	}
	if d.copy == nil {
		d.copy = append([]byte(nil), d.frame...)
	}
	sg := signal.New(d.m.device, ts)
	sg.Recv = d.recv
	sg.Protocol = Name
	sg.Frame = d.copy
	return &sg
}

// fix is one GPS record: date (day, month, year-2000), time, latitude and
// longitude in 1/3 600 000 degree, speed in cm/s, course in 0.1°, flags.
type fix struct {
	ts       time.Time
	lat, lon float64
	speed    float64
	course   float64
	valid    bool
	sats     int
}

func (d *decoding) readFix() (fix, error) {
	p := d.r.take(19)
	if p == nil {
		return fix{}, nil // reported as a short body
	}
	var f fix
	day, mon, yr, h, mi, sec := int(p[0]), int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5])
	if day != 0 || mon != 0 || yr != 0 {
		t := time.Date(2000+yr, time.Month(mon), day, h, mi, sec, 0, time.UTC)
		if t.Day() != day || int(t.Month()) != mon || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
			return fix{}, fmt.Errorf("%w: GPS time %02d-%02d-%02d %02d:%02d:%02d", plugins.ErrMalformed, yr, mon, day, h, mi, sec)
		}
		if !t.Before(signal.EndTime) {
			return fix{}, fmt.Errorf("%w: GPS time %v beyond 2099", plugins.ErrMalformed, t)
		}
		f.ts = t
	}
	f.lat = float64(binary.LittleEndian.Uint32(p[6:])) / 3600000
	f.lon = float64(binary.LittleEndian.Uint32(p[10:])) / 3600000
	f.speed = float64(binary.LittleEndian.Uint16(p[14:])) * 0.036 // cm/s → km/h
	f.course = float64(binary.LittleEndian.Uint16(p[16:])) * 0.1
	flags := p[18]
	if flags&0x02 == 0 {
		f.lat = -f.lat
	}
	if flags&0x01 == 0 {
		f.lon = -f.lon
	}
	f.valid = flags&0x0C != 0
	f.sats = int(flags >> 4)
	if f.lat < -90 || f.lat > 90 || f.lon < -180 || f.lon > 180 {
		return fix{}, fmt.Errorf("%w: position %v,%v out of range", plugins.ErrMalformed, f.lat, f.lon)
	}
	if dom, ok := signal.DomainOf(signal.FieldHeading); ok && !dom.Contains(f.course) {
		return fix{}, fmt.Errorf("%w: course %v out of range", plugins.ErrMalformed, f.course)
	}
	return f, nil
}

// fixSignal makes the signal of one GPS record; a record without a date
// takes fallback (the stat block's UTC time, or the receive time).
func (d *decoding) fixSignal(f fix, fallback time.Time) *signal.Signal {
	ts := f.ts
	if ts.IsZero() {
		ts = fallback
	}
	sg := d.newSignal(ts)
	if f.ts.IsZero() && f.lat == 0 && f.lon == 0 {
		sg.SetAttr("time_source", "no_gps_time")
	} else {
		sg.Lat, sg.Lon = f.lat, f.lon
		sg.Speed, sg.Heading = f.speed, f.course
		if f.ts.IsZero() {
			sg.SetAttr("time_source", "stat_utc")
		}
	}
	sg.Valid = signal.FlagOf(f.valid)
	sg.Sats = float64(f.sats)
	return sg
}

// stat is the statistics block that opens most SC messages (34 bytes).
type stat struct {
	accOn, utc        uint32
	odometer, trip    uint32
	fuel              uint32
	currentFuel       uint16
	status            uint32
	present, timeGood bool
}

func (d *decoding) readStat() (stat, error) {
	var st stat
	st.accOn = d.r.u32()
	st.utc = d.r.u32()
	st.odometer = d.r.u32()
	st.trip = d.r.u32()
	st.fuel = d.r.u32()
	st.currentFuel = d.r.u16()
	st.status = d.r.u32()
	d.r.take(8)
	st.present = !d.r.short
	if st.present && st.utc != 0 {
		t := time.Unix(int64(st.utc), 0).UTC()
		if !t.Before(signal.EndTime) {
			return st, fmt.Errorf("%w: UTC time %d beyond 2099", plugins.ErrMalformed, st.utc)
		}
		st.timeGood = true
	}
	return st, nil
}

// time is the stat block's UTC time, or the zero time (stamp on receipt).
func (st stat) time() time.Time {
	if !st.timeGood {
		return time.Time{}
	}
	return time.Unix(int64(st.utc), 0).UTC()
}

// statusAlarms are the alarm bits of the stat block's status word.
var statusAlarms = []struct {
	bit  uint
	name string
}{{4, "hard_acceleration"}, {5, "hard_braking"}, {6, "idle"}}

func (st stat) apply(sg *signal.Signal) {
	if !st.present {
		return
	}
	sg.Odometer = float64(st.odometer) / 1000
	sg.SetAttr("trip_odometer_m", int64(st.trip))
	sg.SetAttr("fuel_consumption", int64(st.fuel))
	sg.SetAttr("current_fuel_consumption", int64(st.currentFuel))
	sg.SetAttr("acc_on_time", int64(st.accOn))
	sg.SetAttr("status", int64(st.status))
	sg.SetAttr("ignition", st.status&(1<<18) != 0)
	var alarms []string
	for _, a := range statusAlarms {
		if st.status&(1<<a.bit) != 0 {
			alarms = append(alarms, a.name)
		}
	}
	if len(alarms) > 0 {
		addAlarm(sg, alarms...)
	}
}

func addAlarm(sg *signal.Signal, names ...string) {
	have, _ := sg.Attrs["alarm"].(string)
	list := []string{}
	if have != "" {
		list = strings.Split(have, ",")
	}
	for _, n := range names {
		dup := false
		for _, h := range list {
			dup = dup || h == n
		}
		if !dup {
			list = append(list, n)
		}
	}
	sg.SetAttr("alarm", strings.Join(list, ","))
}

// alarmNames are the event codes of the SC alarm message.
var alarmNames = map[uint8]string{
	0x01: "overspeed", 0x02: "low_power", 0x03: "temperature", 0x04: "hard_acceleration",
	0x05: "hard_braking", 0x06: "idle", 0x07: "tow", 0x08: "high_rpm", 0x09: "power_on",
	0x0B: "lane_change", 0x0C: "hard_cornering", 0x0D: "fatigue_driving", 0x0E: "power_off",
	0x11: "accident", 0x12: "tampering", 0x1C: "vibration",
}

func (d *decoding) emit(sg *signal.Signal) { d.out = append(d.out, *sg) }

// sc decodes the messages of protocol versions 3 and 4 (IDD-2xx).
func (d *decoding) sc() error {
	m := d.m
	switch m.typ {
	case scHeartbeat:
		d.ack = Response(m.version, m.id, scHeartResp, nil)
		return nil
	case scLogin, scLogout, scGPS, scAlarm, scCurrentLoc, scFuel, scComprehens:
		return d.scPositions()
	case scGPSSleep:
		d.r.u32() // device time
		f, err := d.readFix()
		if err != nil || d.r.short {
			return err
		}
		d.emit(d.fixSignal(f, time.Time{}))
		return nil
	case scAGPS:
		f, err := d.readFix()
		if err != nil || d.r.short {
			return err
		}
		d.emit(d.fixSignal(f, time.Time{}))
		return nil
	case scPIDData, scOBDData, scGSensor, scDTCs, scDTCsComm, scCell:
		return d.scStatMessage()
	case scSupportedPID:
		// The list of PIDs the vehicle supports: nothing to store.
		return nil
	case scQueryResp:
		return d.scQuery()
	}
	return fmt.Errorf("%w: message type 0x%04x (version %d)", plugins.ErrUnsupported, m.typ, m.version)
}

// scPositions decodes the messages that carry a stat block and GPS records.
func (d *decoding) scPositions() error {
	m := d.m
	var alarmIndex []byte
	switch m.typ {
	case scLogin:
		content := make([]byte, 0, 10)
		content = append(content, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0)
		content = binary.LittleEndian.AppendUint32(content, uint32(d.recv.Unix()))
		d.ack = Response(m.version, m.id, scLoginResp, content)
	case scGPS:
		d.r.u8() // historical flag
	case scComprehens:
		d.r.u8()  // historical flag
		d.r.u32() // index
	case scAlarm:
		alarmIndex = d.r.take(4)
	case scCurrentLoc:
		d.r.u16()
	}
	st, err := d.readStat()
	if err != nil {
		return err
	}
	count := int(d.r.u8())
	sigs := make([]*signal.Signal, 0, count)
	for range count {
		f, err := d.readFix()
		if err != nil {
			return err
		}
		if d.r.short {
			return nil
		}
		sg := d.fixSignal(f, st.time())
		st.apply(sg)
		sigs = append(sigs, sg)
	}
	switch m.typ {
	case scAlarm:
		if alarmIndex != nil {
			d.ack = Response(m.version, m.id, scAlarmResp, alarmIndex)
		}
		n := int(d.r.u8())
		for range n {
			flag, event := d.r.u8(), d.r.u8()
			d.r.u16() // description
			d.r.u16() // threshold
			if flag == 0 {
				continue
			}
			for _, sg := range sigs {
				switch event {
				case 0x16:
					sg.SetAttr("ignition", true)
				case 0x17:
					sg.SetAttr("ignition", false)
				default:
					if name, ok := alarmNames[event]; ok {
						addAlarm(sg, name)
					} else {
						addAlarm(sg, fmt.Sprintf("event_%02x", event))
					}
				}
			}
		}
	case scFuel:
		for _, sg := range sigs {
			sg.SetAttr("adc1", int64(d.r.u16()))
		}
	case scComprehens:
		for d.r.left() > 4 && !d.r.short {
			tag, n := d.r.u16(), int(d.r.u16())
			v := d.r.take(n)
			if v == nil {
				break
			}
			for _, sg := range sigs {
				if err := tlv(sg, tag, v); err != nil {
					return err
				}
			}
		}
	case scLogin:
		// Firmware and hardware versions, NUL-terminated.
		if fw, ok := d.r.cstring(); ok && utf8.ValidString(fw) {
			hw, ok2 := d.r.cstring()
			for _, sg := range sigs {
				sg.SetAttr("firmware", fw)
				if ok2 && utf8.ValidString(hw) {
					sg.SetAttr("hardware", hw)
				}
			}
		}
	}
	for _, sg := range sigs {
		d.emit(sg)
	}
	return nil
}

// tlv maps one tag of the comprehensive message (0x401F).
func tlv(sg *signal.Signal, tag uint16, v []byte) error {
	i16 := func() (float64, bool) {
		if len(v) < 2 {
			return 0, false
		}
		return float64(int16(binary.LittleEndian.Uint16(v))), true
	}
	u16 := func() (float64, bool) {
		if len(v) < 2 {
			return 0, false
		}
		return float64(binary.LittleEndian.Uint16(v)), true
	}
	switch {
	case tag == 0x0010:
		if x, ok := i16(); ok {
			sg.SetAttr("device_temp_c", x/10)
			return nil
		}
	case tag >= 0x0011 && tag <= 0x0014:
		if x, ok := i16(); ok {
			sg.SetAttr(fmt.Sprintf("temp%d_c", tag-0x0010), x/10)
			return nil
		}
	case tag == 0x0020:
		if x, ok := u16(); ok {
			sg.Voltage = x / 100
			return nil
		}
	case tag == 0x0021:
		if x, ok := u16(); ok {
			sg.SetAttr("battery_v", x/100)
			return nil
		}
	}
	sg.SetAttr(fmt.Sprintf("tlv_%04x", tag), fmt.Sprintf("%x", v))
	return nil
}

// scStatMessage decodes the messages with a stat block and no GPS record:
// their time is the stat block's UTC time.
func (d *decoding) scStatMessage() error {
	m := d.m
	st, err := d.readStat()
	if err != nil {
		return err
	}
	if d.r.short {
		return nil
	}
	sg := d.newSignal(st.time())
	st.apply(sg)
	switch m.typ {
	case scPIDData:
		d.r.u16() // sample rate
		if err := d.obd(sg, true); err != nil {
			return err
		}
	case scOBDData:
		d.r.u8() // flag
		if err := d.obd(sg, false); err != nil {
			return err
		}
	case scGSensor:
		d.r.u16() // sample rate
		n := int(d.r.u8())
		var b strings.Builder
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			x, y, z := int16(d.r.u16()), int16(d.r.u16()), int16(d.r.u16())
			fmt.Fprintf(&b, "[%g,%g,%g]", float64(x)*0.015625, float64(y)*0.015625, float64(z)*0.015625)
		}
		b.WriteByte(']')
		sg.SetAttr("g_sensor", b.String())
	case scDTCs, scDTCsComm:
		d.r.u8() // flag
		n := int(d.r.u8())
		for range n {
			w := d.r.u16()
			if m.typ == scDTCsComm {
				d.r.u8() // attribute
				d.r.u8() // occurrence
			}
			if d.r.short {
				break
			}
			if c, ok := obd2.DTCWord(w); ok {
				obd2.AddDTCs(sg, c)
			}
		}
	case scCell:
		sg.SetAttr("lac", int64(d.r.u16()))
		sg.SetAttr("cid", int64(d.r.u16()))
	}
	if d.r.short {
		return nil
	}
	d.emit(sg)
	return nil
}

// pidLen is the byte length of each PID value in Castel's PID messages.
var pidLen = func() (t [256]uint8) {
	for _, p := range []byte{0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0b, 0x0d, 0x0e, 0x0f, 0x11, 0x12, 0x13,
		0x1c, 0x1d, 0x1e, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x33, 0x43, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a,
		0x4b, 0x4c, 0x51, 0x52, 0x5a} {
		t[p] = 1
	}
	for _, p := range []byte{0x02, 0x03, 0x0a, 0x0c, 0x10, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a,
		0x1b, 0x1f, 0x21, 0x22, 0x23, 0x31, 0x32, 0x3c, 0x3d, 0x3e, 0x3f, 0x42, 0x44, 0x4d, 0x4e, 0x50,
		0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59} {
		t[p] = 2
	}
	for _, p := range []byte{0x00, 0x01, 0x20, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x34,
		0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x40, 0x41, 0x4f} {
		t[p] = 4
	}
	return t
}()

// obd decodes a PID list: count, the PID tags (little-endian words whose
// low byte is the mode 01 PID), with groups a group count and size, then
// the values, already scaled by the device (Traccar's convert=false). A
// PID of unknown length ends the list: the values after it cannot be
// located (with one group, the group size gives the unknown length).
func (d *decoding) obd(sg *signal.Signal, groups bool) error {
	n := int(d.r.u8())
	pids := make([]byte, 0, n)
	for range n {
		pids = append(pids, byte(d.r.u16()))
	}
	groupSize, start := -1, 0
	if groups {
		d.r.u8() // group count
		groupSize = int(d.r.u8())
		start = d.r.off
	}
	for i, pid := range pids {
		var v float64
		switch pidLen[pid] {
		case 1:
			v = float64(d.r.u8())
		case 2:
			v = float64(d.r.u16())
		case 4:
			v = float64(int32(d.r.u32()))
		default:
			// Only the last PID of a group can be located: the group
			// size says how many bytes it has.
			if rest := start + groupSize - d.r.off; i == len(pids)-1 && groupSize >= 0 && rest > 0 && rest <= d.r.left() {
				sg.SetAttr(fmt.Sprintf("obd_%02x_raw", pid), fmt.Sprintf("%x", d.r.take(rest)))
			} else {
				sg.SetAttr("obd_unknown_pid", fmt.Sprintf("%02x", pid))
			}
			return nil
		}
		if pid == 0x42 {
			v /= 1000 // Castel sends the control module voltage in mV
		}
		if d.r.short {
			return nil
		}
		val, err := obd2.Scaled(pid, v)
		if err != nil {
			return fmt.Errorf("%w: %w", plugins.ErrMalformed, err)
		}
		if p, ok := obd2.Lookup(pid); ok {
			if dom, ok := signal.DomainOf(p.Field); ok && !dom.Contains(v) {
				return fmt.Errorf("%w: PID %02X value %v outside %v..%v", plugins.ErrMalformed, pid, v, dom.Min, dom.Max)
			}
		}
		val.Apply(sg)
	}
	return nil
}

// scQuery decodes a query response (0xA002): the values the server asked
// for, such as the VIN (tag 0x2001).
func (d *decoding) scQuery() error {
	d.r.u16() // index
	d.r.u8()  // response count
	d.r.u8()  // response index
	fails := int(d.r.u8())
	d.r.take(2 * fails)
	ok := int(d.r.u8())
	sg := d.newSignal(time.Time{})
	for range ok {
		tag := d.r.u16()
		v := d.r.take(int(d.r.u16()))
		if d.r.short {
			return nil
		}
		if !utf8.Valid(v) || strings.ContainsRune(string(v), 0) {
			return fmt.Errorf("%w: query result 0x%04x is not text", plugins.ErrMalformed, tag)
		}
		sg.SetAttr("result", string(v))
		sg.SetAttr(fmt.Sprintf("query_%04x", tag), string(v))
		if tag == 0x2001 {
			sg.SetAttr("vin", string(v))
		}
	}
	sg.SetAttr("time_source", "server")
	d.emit(sg)
	return nil
}

// cc decodes the other "@@" versions (the CC family: PT-690, MPIP-620).
func (d *decoding) cc() error {
	m := d.m
	switch m.typ {
	case ccHeartbeat:
		d.ack = Response(m.version, m.id, ccHeartResp, nil)
		d.r.u8() // history flag
		n := int(d.r.u8())
		for range n {
			sg, err := d.ccRecord()
			if err != nil || sg == nil {
				return err
			}
			sg.SetAttr("lac", int64(d.r.u16()))
			sg.SetAttr("cid", int64(d.r.u16()))
			if d.r.short {
				return nil
			}
			d.emit(sg)
		}
		return nil
	case ccLogin:
		d.ack = Response(m.version, m.id, ccLoginResp, nil)
		sg, err := d.ccRecord()
		if err != nil || sg == nil {
			return err
		}
		d.emit(sg)
		return nil
	}
	return fmt.Errorf("%w: message type 0x%04x (version %d)", plugins.ErrUnsupported, m.typ, m.version)
}

func (d *decoding) ccRecord() (*signal.Signal, error) {
	f, err := d.readFix()
	if err != nil {
		return nil, err
	}
	status, battery, odo := d.r.u32(), d.r.u8(), d.r.u32()
	d.r.take(3) // geofence id, geofence flags, additional flags
	if d.r.short {
		return nil, nil
	}
	sg := d.fixSignal(f, time.Time{})
	sg.SetAttr("status", int64(status))
	sg.SetAttr("battery_raw", int64(battery))
	sg.Odometer = float64(odo) / 1000
	return sg, nil
}

// mpip decodes the "$$" frames (no version byte).
func (d *decoding) mpip() error {
	m := d.m
	switch m.typ {
	case mpipLocation:
		d.ack = Response(m.version, m.id, m.typ, nil)
	case mpipLogin:
		d.ack = mpipResponse(m.id, mpipLoginAck)
		d.r.u32() // index
		d.r.u32() // unix time
		d.r.u8()
	case 0x4201, 0x4202, 0x4206:
	case 0x4204:
		for range 8 {
			f, err := d.readFix()
			if err != nil {
				return err
			}
			d.r.take(31)
			if d.r.short {
				return nil
			}
			d.emit(d.fixSignal(f, time.Time{}))
		}
		return nil
	default:
		return fmt.Errorf("%w: message type 0x%04x", plugins.ErrUnsupported, m.typ)
	}
	f, err := d.readFix()
	if err != nil || d.r.short {
		return err
	}
	d.emit(d.fixSignal(f, time.Time{}))
	return nil
}

// checkNumbers refuses a record whose canonical number lies outside its
// field's domain (the gateway's plugins.CheckSignals checks the rest).
func checkNumbers(sigs []signal.Signal) error {
	for i := range sigs {
		for f := signal.FieldLat; f <= signal.FieldThrottle; f++ {
			if dom, ok := signal.DomainOf(f); ok && !dom.Contains(sigs[i].Number(f)) {
				return fmt.Errorf("%w: %s %v outside %v..%v", plugins.ErrMalformed, f, sigs[i].Number(f), dom.Min, dom.Max)
			}
		}
	}
	return nil
}
