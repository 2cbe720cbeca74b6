package sdk

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Field is a canonical field's bit in a record's field mask (the rule
// ABI's numbering; bit 1, recv, is the host's).
type Field uint8

// Canonical fields of a record.
const (
	FieldTS         Field = 0
	FieldLat        Field = 2
	FieldLon        Field = 3
	FieldAlt        Field = 4
	FieldSpeed      Field = 5
	FieldHeading    Field = 6
	FieldSats       Field = 7
	FieldHDOP       Field = 8
	FieldRPM        Field = 9
	FieldCoolant    Field = 10
	FieldFuel       Field = 11
	FieldVoltage    Field = 12
	FieldOdometer   Field = 13
	FieldEngineLoad Field = 14
	FieldThrottle   Field = 15
	numFields             = 16
)

// FieldNames are the canonical names by bit ("" for bit 1, recv, which a
// decoder never sets).
var FieldNames = [numFields]string{
	"ts", "", "lat", "lon", "alt", "speed", "heading", "sats", "hdop",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle",
}

// Limits of the record format (ABI.md "Record"). A decoder that goes
// beyond one gets an ABI error naming the value, not a truncated record.
const (
	MaxAttrName    = 64   // bytes of an attr name ([a-z0-9_]+)
	MaxAttrString  = 1024 // bytes of a string attr value
	MaxDTC         = 16   // bytes of a DTC code
	MaxOBDRaw      = 255  // data bytes of a raw OBD item
	MaxMessage     = 512  // bytes of an error message the host keeps
	MaxRecordItems = 65535
)

// Attr kinds on the wire.
const (
	attrF64    = 1
	attrI64    = 2
	attrBool   = 3
	attrString = 4
)

// Record is one record of the frame being decoded. Setters return the
// record so that calls chain; a NaN number leaves the field absent.
// Attributes, DTCs and OBD items are written in their wire form as they
// are set (values are copied at once), so encoding the record is a copy.
type Record struct {
	out   *Output
	mask  uint32
	ts    int64
	vals  [numFields]float64
	valid uint8
	stamp uint8 // record byte 9: 1 = server time to the second
	// attrs holds the attributes in wire form; offs[i] is where entry i
	// starts. An entry replaced by a later one of the same name is dead:
	// its kind byte is 0 and encoding skips it.
	attrs []byte
	offs  []int32
	live  int
	// hashes[i] is the hash of entry i's name and seen a 64-bit filter of
	// them: a name not set before (the common case) is told apart without
	// comparing strings.
	hashes []uint32
	seen   uint64
	dtcs   []byte // wire form: len u8 + code, per DTC
	ndtc   int
	obd    []byte // wire form, per item
	nobd   int
}

func (r *Record) reset(o *Output) {
	r.out = o
	r.mask = 0
	r.ts = 0
	r.valid = 0
	r.stamp = 0
	r.attrs = r.attrs[:0]
	r.offs = r.offs[:0]
	r.live = 0
	r.hashes = r.hashes[:0]
	r.seen = 0
	r.dtcs = r.dtcs[:0]
	r.ndtc = 0
	r.obd = r.obd[:0]
	r.nobd = 0
}

// Time sets the device time in Unix milliseconds. A record without one is
// stamped by the host with the server's receive time (resend-stable:
// plugins.ServerTimes with the frame's bytes as fingerprint).
func (r *Record) Time(ms int64) *Record {
	r.ts = ms
	r.mask |= 1 << FieldTS
	return r
}

// TimeUnix sets the device time in Unix seconds.
func (r *Record) TimeUnix(sec int64) *Record { return r.Time(sec * 1000) }

// ServerTimeSeconds asks the host to stamp a record without a device time
// with the receive time truncated to the second instead of the
// millisecond (record byte 9, "stamp"; protocols whose native decoder
// stamps whole seconds, such as H02). It has no effect when Time is set.
func (r *Record) ServerTimeSeconds() *Record {
	r.stamp = 1
	return r
}

// TimeMs returns the device time set so far.
func (r *Record) TimeMs() (int64, bool) { return r.ts, r.mask&(1<<FieldTS) != 0 }

// Set sets canonical field f (FieldLat … FieldThrottle) to v; NaN clears
// it. Units are those of DESIGN.md §3.
func (r *Record) Set(f Field, v float64) *Record {
	if f < FieldLat || f >= numFields {
		r.out.fail(fmt.Errorf("record: field %d is not a canonical number field (2..15)", f))
		return r
	}
	if v != v {
		r.mask &^= 1 << f
		return r
	}
	if math.IsInf(v, 0) {
		r.out.fail(fmt.Errorf("record: %s is %v: not a finite number", FieldNames[f], v))
		return r
	}
	r.vals[f] = v
	r.mask |= 1 << f
	return r
}

// Get returns canonical number field f, NaN when absent.
func (r *Record) Get(f Field) float64 {
	if f < FieldLat || f >= numFields || r.mask&(1<<f) == 0 {
		return math.NaN()
	}
	return r.vals[f]
}

// Lat sets the latitude in degrees.
func (r *Record) Lat(v float64) *Record { return r.Set(FieldLat, v) }

// Lon sets the longitude in degrees.
func (r *Record) Lon(v float64) *Record { return r.Set(FieldLon, v) }

// Alt sets the altitude in metres.
func (r *Record) Alt(v float64) *Record { return r.Set(FieldAlt, v) }

// Speed sets the speed in km/h.
func (r *Record) Speed(v float64) *Record { return r.Set(FieldSpeed, v) }

// Heading sets the heading in degrees.
func (r *Record) Heading(v float64) *Record { return r.Set(FieldHeading, v) }

// Sats sets the number of satellites.
func (r *Record) Sats(v float64) *Record { return r.Set(FieldSats, v) }

// HDOP sets the horizontal dilution of precision.
func (r *Record) HDOP(v float64) *Record { return r.Set(FieldHDOP, v) }

// RPM sets the engine speed in revolutions per minute.
func (r *Record) RPM(v float64) *Record { return r.Set(FieldRPM, v) }

// Coolant sets the coolant temperature in °C.
func (r *Record) Coolant(v float64) *Record { return r.Set(FieldCoolant, v) }

// Fuel sets the fuel level in %.
func (r *Record) Fuel(v float64) *Record { return r.Set(FieldFuel, v) }

// Voltage sets the supply voltage in V.
func (r *Record) Voltage(v float64) *Record { return r.Set(FieldVoltage, v) }

// Odometer sets the odometer in km.
func (r *Record) Odometer(v float64) *Record { return r.Set(FieldOdometer, v) }

// EngineLoad sets the engine load in %.
func (r *Record) EngineLoad(v float64) *Record { return r.Set(FieldEngineLoad, v) }

// Throttle sets the throttle position in %.
func (r *Record) Throttle(v float64) *Record { return r.Set(FieldThrottle, v) }

// Valid says whether the device reports a valid fix. Without it the
// validity is unknown.
func (r *Record) Valid(v bool) *Record {
	r.valid = 1
	if v {
		r.valid = 2
	}
	return r
}

// ClearValid makes the validity unknown again.
func (r *Record) ClearValid() *Record {
	r.valid = 0
	return r
}

// nameHash is FNV-1a of an attr name, and whether the name is
// [a-z0-9_]{1,MaxAttrName} (one pass over the bytes).
func nameHash(s string) (uint32, bool) {
	if s == "" || len(s) > MaxAttrName {
		return 0, false
	}
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return 0, false
		}
		h ^= uint32(c)
		h *= 16777619
	}
	return h, true
}

// find returns the live entry of name (hash h), or -1.
func (r *Record) find(name string, h uint32) int {
	if r.seen&(1<<(h&63)) == 0 {
		return -1
	}
	for i, x := range r.hashes {
		if x != h {
			continue
		}
		off := int(r.offs[i])
		if e := r.attrs[off:]; e[0] != 0 && int(e[1]) == len(name) && string(e[2:2+len(name)]) == name {
			return i
		}
	}
	return -1
}

// begin starts an attribute entry of kind and name, replacing a live one
// of the same name; false (and the call's ABI error) for a bad name.
func (r *Record) begin(kind byte, name string) bool {
	h, ok := nameHash(name)
	if !ok {
		r.out.fail(fmt.Errorf("record: attr name %.80q is not [a-z0-9_]+ of at most %d bytes", name, MaxAttrName))
		return false
	}
	if i := r.find(name, h); i >= 0 {
		r.attrs[r.offs[i]] = 0 // dead: the new value wins
		r.live--
	} else if r.live >= MaxRecordItems {
		r.out.fail(fmt.Errorf("record: more than %d attrs", MaxRecordItems))
		return false
	}
	r.offs = append(r.offs, int32(len(r.attrs)))
	r.hashes = append(r.hashes, h)
	r.seen |= 1 << (h & 63)
	r.live++
	r.attrs = append(r.attrs, kind, byte(len(name)))
	r.attrs = append(r.attrs, name...)
	return true
}

// F64 sets a number attribute; it must be finite.
func (r *Record) F64(name string, v float64) *Record {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.out.fail(fmt.Errorf("record: attr %s is %v: not a finite number", name, v))
		return r
	}
	if r.begin(attrF64, name) {
		r.attrs = binary.LittleEndian.AppendUint64(r.attrs, math.Float64bits(v))
	}
	return r
}

// I64 sets an integer attribute.
func (r *Record) I64(name string, v int64) *Record {
	if r.begin(attrI64, name) {
		r.attrs = binary.LittleEndian.AppendUint64(r.attrs, uint64(v))
	}
	return r
}

// Bool sets a boolean attribute.
func (r *Record) Bool(name string, v bool) *Record {
	if r.begin(attrBool, name) {
		var b byte
		if v {
			b = 1
		}
		r.attrs = append(r.attrs, b)
	}
	return r
}

// String sets a text attribute (UTF-8, at most MaxAttrString bytes),
// copied at once.
func (r *Record) String(name, v string) *Record {
	if len(v) > MaxAttrString {
		r.out.fail(fmt.Errorf("record: attr %s of %d bytes exceeds %d", name, len(v), MaxAttrString))
		return r
	}
	if r.begin(attrString, name) {
		r.attrs = binary.LittleEndian.AppendUint16(r.attrs, uint16(len(v)))
		r.attrs = append(r.attrs, v...)
	}
	return r
}

// Bytes sets a text attribute from bytes, copied at once (the slice may
// be reused afterwards).
func (r *Record) Bytes(name string, v []byte) *Record {
	if len(v) > MaxAttrString {
		r.out.fail(fmt.Errorf("record: attr %s of %d bytes exceeds %d", name, len(v), MaxAttrString))
		return r
	}
	if r.begin(attrString, name) {
		r.attrs = binary.LittleEndian.AppendUint16(r.attrs, uint16(len(v)))
		r.attrs = append(r.attrs, v...)
	}
	return r
}

const hexDigits = "0123456789abcdef"

// Hex sets a text attribute: v in lowercase hex.
func (r *Record) Hex(name string, v []byte) *Record {
	if 2*len(v) > MaxAttrString {
		r.out.fail(fmt.Errorf("record: attr %s of %d hex digits exceeds %d", name, 2*len(v), MaxAttrString))
		return r
	}
	if r.begin(attrString, name) {
		r.attrs = binary.LittleEndian.AppendUint16(r.attrs, uint16(2*len(v)))
		for _, c := range v {
			r.attrs = append(r.attrs, hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return r
}

// HasAttr reports whether the record has attribute name.
func (r *Record) HasAttr(name string) bool {
	h, ok := nameHash(name)
	return ok && r.find(name, h) >= 0
}

// AttrF64 returns a number attribute set on the record.
func (r *Record) AttrF64(name string) (float64, bool) {
	h, ok := nameHash(name)
	if !ok {
		return 0, false
	}
	i := r.find(name, h)
	if i < 0 {
		return 0, false
	}
	e := r.attrs[r.offs[i]:]
	if e[0] != attrF64 {
		return 0, false
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(e[2+int(e[1]):])), true
}

// NumAttrs is the number of attributes set so far.
func (r *Record) NumAttrs() int { return r.live }

// DTC adds a diagnostic trouble code (ASCII, e.g. P0301, at most MaxDTC
// bytes). A code already on the record is not added twice.
func (r *Record) DTC(code string) *Record {
	if code == "" || len(code) > MaxDTC {
		r.out.fail(fmt.Errorf("record: DTC %.40q is not 1 to %d bytes", code, MaxDTC))
		return r
	}
	for i := 0; i < len(code); i++ {
		if code[i] <= ' ' || code[i] > '~' {
			r.out.fail(fmt.Errorf("record: DTC %.40q is not printable ASCII", code))
			return r
		}
	}
	for d := r.dtcs; len(d) > 0; {
		n := int(d[0])
		if string(d[1:1+n]) == code {
			return r
		}
		d = d[1+n:]
	}
	if r.ndtc >= MaxRecordItems {
		r.out.fail(fmt.Errorf("record: more than %d DTCs", MaxRecordItems))
		return r
	}
	r.dtcs = append(r.dtcs, byte(len(code)))
	r.dtcs = append(r.dtcs, code...)
	r.ndtc++
	return r
}

// OBDRaw adds an OBD-II mode 01 response: pid and its data bytes (A, B, …).
// The host decodes it with protocols/obd2 (Decode, then Apply), so every
// decoder gets the same names and formulas.
func (r *Record) OBDRaw(pid byte, data []byte) *Record {
	if len(data) > MaxOBDRaw {
		r.out.fail(fmt.Errorf("record: OBD PID %02X data of %d bytes exceeds %d", pid, len(data), MaxOBDRaw))
		return r
	}
	if r.nobd >= MaxRecordItems {
		r.out.fail(fmt.Errorf("record: more than %d OBD items", MaxRecordItems))
		return r
	}
	r.obd = append(r.obd, 1, pid, byte(len(data)))
	r.obd = append(r.obd, data...)
	r.nobd++
	return r
}

// OBDScaled adds an OBD-II value the device already converted to the PID's
// unit (protocols/obd2 Scaled, then Apply on the host).
func (r *Record) OBDScaled(pid byte, v float64) *Record {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.out.fail(fmt.Errorf("record: OBD PID %02X value %v is not a finite number", pid, v))
		return r
	}
	if r.nobd >= MaxRecordItems {
		r.out.fail(fmt.Errorf("record: more than %d OBD items", MaxRecordItems))
		return r
	}
	r.obd = append(r.obd, 2, pid)
	r.obd = binary.LittleEndian.AppendUint64(r.obd, math.Float64bits(v))
	r.nobd++
	return r
}

// Output is what one frame produces: records, the ack, the device id, the
// close flag, the reject reply and the new state. The SDK reuses it (and
// every record) across calls, so decoding allocates nothing once the
// largest frame has been seen.
type Output struct {
	device    []byte
	hasDevice bool
	ack       []byte
	reject    []byte
	state     []byte
	stateSet  bool
	close     bool
	records   []*Record
	n         int
	err       error // the first ABI mistake of the decoder in this call
}

func (o *Output) reset() {
	o.device = o.device[:0]
	o.hasDevice = false
	o.ack = o.ack[:0]
	o.reject = o.reject[:0]
	o.state = o.state[:0]
	o.stateSet = false
	o.close = false
	o.n = 0
	o.err = nil
}

func (o *Output) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

// SetDevice sets the session's device id from this frame on (a login).
// Records of the frame and later frames get it.
func (o *Output) SetDevice(id string) {
	if id == "" {
		o.fail(fmt.Errorf("output: empty device id"))
		return
	}
	o.device = append(o.device[:0], id...)
	o.hasDevice = true
}

// SetDeviceBytes is SetDevice from bytes (copied).
func (o *Output) SetDeviceBytes(id []byte) {
	if len(id) == 0 {
		o.fail(fmt.Errorf("output: empty device id"))
		return
	}
	o.device = append(o.device[:0], id...)
	o.hasDevice = true
}

// Device returns the device id set by this frame ("" when none).
func (o *Output) Device() string { return string(o.device) }

// Ack appends b to the bytes written to the device once every record of
// the frame is durable (at once when there are none).
func (o *Output) Ack(b []byte) { o.ack = append(o.ack, b...) }

// AckString appends s to the ack.
func (o *Output) AckString(s string) { o.ack = append(o.ack, s...) }

// AckByte appends one byte to the ack.
func (o *Output) AckByte(c byte) { o.ack = append(o.ack, c) }

// AckBytes returns the ack built so far (valid during the call).
func (o *Output) AckBytes() []byte { return o.ack }

// Close closes the connection after the ack is written.
func (o *Output) Close() { o.close = true }

// Reject appends b to the reply written before the connection closes when
// Decode returns an error (e.g. a negative acknowledgement).
func (o *Output) Reject(b []byte) { o.reject = append(o.reject, b...) }

// RejectString appends s to the reject reply.
func (o *Output) RejectString(s string) { o.reject = append(o.reject, s...) }

// SetState replaces the session's state blob with a copy of b (empty:
// clears it). At most Meta.StateMax bytes; the host keeps the old state
// when the frame is refused.
func (o *Output) SetState(b []byte) {
	o.state = append(o.state[:0], b...)
	o.stateSet = true
}

// Record starts a new record of the frame.
func (o *Output) Record() *Record {
	if o.n == len(o.records) {
		o.records = append(o.records, &Record{})
	}
	r := o.records[o.n]
	o.n++
	r.reset(o)
	return r
}

// TruncateRecords drops the records after the first n (a decoder that
// reads the frame again with another layout drops what the first reading
// produced).
func (o *Output) TruncateRecords(n int) {
	if n >= 0 && n < o.n {
		o.n = n
	}
}

// NumRecords is the number of records started so far.
func (o *Output) NumRecords() int { return o.n }

// OutputMagic is the first four bytes of an output block.
var OutputMagic = [4]byte{'F', 'C', 'R', '1'}

// OutputHeaderSize is the size of the output header in bytes.
const OutputHeaderSize = 48

// Output flags.
const (
	FlagClose    = 1 << 0
	FlagStateSet = 1 << 1
)

// encode renders the output block into buf[:0] and returns it. status < 0
// drops the records, the ack, the close flag and the state (ABI: the frame
// is refused) and keeps the device, the reject reply and msg.
func (o *Output) encode(buf []byte, status Code, msg string) []byte {
	if len(msg) > MaxMessage {
		msg = clipUTF8(msg, MaxMessage)
	}
	var zero [OutputHeaderSize]byte
	b := append(buf[:0], zero[:]...)
	copy(b, OutputMagic[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(int32(status)))
	var flags uint32
	ok := status == 0
	if ok && o.close {
		flags |= FlagClose
	}
	if ok && o.stateSet {
		flags |= FlagStateSet
	}
	binary.LittleEndian.PutUint32(b[8:], flags)
	b = append(b, o.device...)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(o.device)))
	if ok {
		b = append(b, o.ack...)
		binary.LittleEndian.PutUint32(b[20:], uint32(len(o.ack)))
	} else {
		b = append(b, o.reject...)
		binary.LittleEndian.PutUint32(b[24:], uint32(len(o.reject)))
		b = append(b, msg...)
		binary.LittleEndian.PutUint32(b[28:], uint32(len(msg)))
		return b
	}
	if o.stateSet {
		b = append(b, o.state...)
		binary.LittleEndian.PutUint32(b[32:], uint32(len(o.state)))
	}
	start := len(b)
	for _, r := range o.records[:o.n] {
		b = r.encode(b)
	}
	binary.LittleEndian.PutUint32(b[12:], uint32(o.n))
	binary.LittleEndian.PutUint32(b[36:], uint32(len(b)-start))
	return b
}

// clipUTF8 cuts s to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func (r *Record) encode(b []byte) []byte {
	le := binary.LittleEndian
	start := len(b)
	b = le.AppendUint32(b, 0) // rec_len, patched below
	b = le.AppendUint32(b, r.mask)
	stamp := r.stamp
	if r.mask&(1<<FieldTS) != 0 {
		stamp = 0 // only meaningful without a device time
	}
	b = append(b, r.valid, stamp)
	b = le.AppendUint16(b, uint16(r.live))
	b = le.AppendUint16(b, uint16(r.ndtc))
	b = le.AppendUint16(b, uint16(r.nobd))
	if r.mask&(1<<FieldTS) != 0 {
		b = le.AppendUint64(b, uint64(r.ts))
	}
	for f := FieldLat; f < numFields; f++ {
		if r.mask&(1<<f) != 0 {
			b = le.AppendUint64(b, math.Float64bits(r.vals[f]))
		}
	}
	if r.live == len(r.offs) {
		b = append(b, r.attrs...)
	} else {
		for i, off := range r.offs {
			end := len(r.attrs)
			if i+1 < len(r.offs) {
				end = int(r.offs[i+1])
			}
			if r.attrs[off] != 0 {
				b = append(b, r.attrs[off:end]...)
			}
		}
	}
	b = append(b, r.dtcs...)
	b = append(b, r.obd...)
	le.PutUint32(b[start:], uint32(len(b)-start))
	return b
}
