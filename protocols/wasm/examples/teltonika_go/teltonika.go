package main

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// Codec ids.
const (
	codecGH3000 = 0x07
	codec8      = 0x08
	codec8E     = 0x8E
	codec12     = 0x0C
	codec13     = 0x0D
	codec14     = 0x0E
	codec16     = 0x10
)

const (
	defaultMaxFrame = 64 << 10
	maxIMEILen      = 32   // an IMEI is 15 digits; anything much longer is garbage
	pingByte        = 0xFF // one-byte keep-alive some firmwares send on TCP
	gh3000Epoch     = 1167609600
	minAVLData      = 3 // codec id, count, count
	// maxAVLMillis is 9999-12-31T23:59:59.999Z in Unix milliseconds.
	maxAVLMillis = 253402300799999
)

// decoder is the protocol. It keeps nothing itself: the IMEI of a TCP
// connection is the state blob.
type decoder struct{}

func maxFrame(c *sdk.Call) int {
	if n := c.MaxFrame(); n > 0 {
		return n
	}
	return defaultMaxFrame
}

// Frame splits the TCP stream: a 0xFF keep-alive, an IMEI login (2-byte
// length + ASCII IMEI) or an AVL/GPRS data frame (4 zero bytes, 4-byte data
// length, data, 4-byte CRC).
func (decoder) Frame(c *sdk.Call, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if buf[0] == pingByte {
		return 1, nil
	}
	if len(buf) < 2 {
		return 0, nil
	}
	if n := int(binary.BigEndian.Uint16(buf)); n != 0 {
		if n > maxIMEILen {
			return 0, sdk.Errorf(sdk.ErrMalformed, "framing teltonika login: IMEI length %d", n)
		}
		if len(buf) < 2+n {
			return 0, nil
		}
		return 2 + n, nil
	}
	for i := 2; i < 4 && i < len(buf); i++ {
		if buf[i] != 0 {
			return 0, sdk.Errorf(sdk.ErrMalformed, "framing teltonika data: preamble byte %d is 0x%02x", i, buf[i])
		}
	}
	if len(buf) < 8 {
		return 0, nil
	}
	total, err := frameLen(c, binary.BigEndian.Uint32(buf[4:8]))
	if err != nil {
		return 0, err
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// frameLen checks a TCP data length field and returns the frame's length.
func frameLen(c *sdk.Call, dataLen uint32) (int, error) {
	if dataLen < minAVLData {
		return 0, sdk.Errorf(sdk.ErrMalformed, "teltonika data length %d", dataLen)
	}
	total := uint64(dataLen) + 12
	if total > uint64(maxFrame(c)) {
		return 0, sdk.Errorf(sdk.ErrTooLarge, "teltonika frame of %d bytes, cap %d", total, maxFrame(c))
	}
	return int(total), nil
}

// Decode decodes one frame (TCP) or one datagram (UDP).
func (decoder) Decode(c *sdk.Call, frame []byte, out *sdk.Output) error {
	if c.Transport() == sdk.UDP {
		return decodeUDP(c, frame, out)
	}
	return decodeTCP(c, frame, out)
}

func decodeTCP(c *sdk.Call, frame []byte, out *sdk.Output) error {
	switch {
	case len(frame) == 1 && frame[0] == pingByte:
		return nil
	case len(frame) >= 2 && binary.BigEndian.Uint16(frame) != 0:
		return login(frame, out)
	}
	if len(frame) < 12 || binary.BigEndian.Uint32(frame) != 0 {
		return sdk.Errorf(sdk.ErrMalformed, "decoding teltonika frame: bad preamble or short frame (%d bytes)", len(frame))
	}
	total, err := frameLen(c, binary.BigEndian.Uint32(frame[4:8]))
	if err != nil {
		return err
	}
	if total != len(frame) {
		return sdk.Errorf(sdk.ErrMalformed, "decoding teltonika frame: data length says %d bytes, frame has %d", total, len(frame))
	}
	if len(c.State()) == 0 {
		return sdk.Errorf(sdk.ErrNoDevice, "decoding teltonika frame: data before IMEI login")
	}
	data := frame[8 : len(frame)-4]
	want := binary.BigEndian.Uint32(frame[len(frame)-4:])
	if got := uint32(crc16(data)); got != want {
		return sdk.Errorf(sdk.ErrChecksum, "decoding teltonika frame: CRC-16/IBM is 0x%04x, frame says 0x%08x", got, want)
	}
	avl, count, err := decodeData(c, data, out)
	if err != nil {
		return err
	}
	if avl {
		var ack [4]byte
		binary.BigEndian.PutUint32(ack[:], uint32(count))
		out.Ack(ack[:])
	}
	return nil
}

// login handles the IMEI frame: the IMEI becomes the device and the state,
// and the ack is 0x01. (A device the listener refuses is the host's
// ErrUnauthorized.)
func login(frame []byte, out *sdk.Output) error {
	n := int(binary.BigEndian.Uint16(frame))
	if n > maxIMEILen || len(frame) != 2+n {
		return sdk.Errorf(sdk.ErrMalformed, "decoding teltonika login: IMEI length %d in %d bytes", n, len(frame))
	}
	imei := frame[2:]
	if err := checkIMEI(imei); err != nil {
		return err
	}
	out.SetDeviceBytes(imei)
	out.SetState(imei)
	out.AckByte(0x01)
	return nil
}

func checkIMEI(b []byte) error {
	if len(b) == 0 {
		return sdk.Errorf(sdk.ErrMalformed, "teltonika: empty IMEI")
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return sdk.Errorf(sdk.ErrMalformed, "teltonika: IMEI byte 0x%02x is not printable ASCII", c)
		}
	}
	return nil
}

// decodeUDP decodes one datagram: 2-byte length, 2-byte packet id, 1 byte
// not usable, 1-byte AVL packet id, 2-byte IMEI length, IMEI, codec data.
func decodeUDP(c *sdk.Call, d []byte, out *sdk.Output) error {
	if len(d) > maxFrame(c) {
		return sdk.Errorf(sdk.ErrTooLarge, "decoding teltonika datagram: %d bytes, cap %d", len(d), maxFrame(c))
	}
	if len(d) < 8 {
		return sdk.Errorf(sdk.ErrMalformed, "decoding teltonika datagram: %d bytes", len(d))
	}
	if n := int(binary.BigEndian.Uint16(d)); n != len(d)-2 {
		return sdk.Errorf(sdk.ErrMalformed, "decoding teltonika datagram: length field %d, datagram carries %d", n, len(d)-2)
	}
	packetID := binary.BigEndian.Uint16(d[2:4])
	avlID := d[5]
	n := int(binary.BigEndian.Uint16(d[6:8]))
	if n > maxIMEILen || len(d) < 8+n {
		return sdk.Errorf(sdk.ErrMalformed, "decoding teltonika datagram: IMEI length %d", n)
	}
	imei := d[8 : 8+n]
	if err := checkIMEI(imei); err != nil {
		return err
	}
	out.SetDeviceBytes(imei)
	avl, count, err := decodeData(c, d[8+n:], out)
	if err != nil {
		return err
	}
	if avl {
		var ack [7]byte
		binary.BigEndian.PutUint16(ack[:], 5)
		binary.BigEndian.PutUint16(ack[2:], packetID)
		ack[4] = 0x01
		ack[5] = avlID
		ack[6] = byte(count)
		out.Ack(ack[:])
	}
	return nil
}

// decodeData decodes codec id, count, records, count. avl reports whether
// the codec carries AVL records (and so is acknowledged with the count).
func decodeData(c *sdk.Call, data []byte, out *sdk.Output) (avl bool, count int, err error) {
	if len(data) < minAVLData {
		return false, 0, sdk.Errorf(sdk.ErrMalformed, "teltonika: %d data bytes", len(data))
	}
	codec := data[0]
	count = int(data[1])
	if trailer := int(data[len(data)-1]); trailer != count {
		return false, 0, sdk.Errorf(sdk.ErrMalformed, "teltonika: record count %d, trailer says %d", count, trailer)
	}
	body := data[2 : len(data)-1]
	switch codec {
	case codec8, codec8E, codec16, codecGH3000:
		if count == 0 {
			return false, 0, sdk.Errorf(sdk.ErrMalformed, "teltonika: AVL frame with no records")
		}
		extended := optExtended.Get(c)
		start := out.NumRecords()
		err = decodeRecords(codec, count, body, extended, out)
		if err != nil && !extended && codec != codecGH3000 {
			// Some FMB firmwares add a 16-byte IO section (Traccar's
			// "extended"); the CRC already vouched for the bytes, so a
			// second reading with that section is safe.
			out.TruncateRecords(start)
			if err2 := decodeRecords(codec, count, body, true, out); err2 == nil {
				err = nil
			} else {
				out.TruncateRecords(start)
			}
		}
		if err != nil {
			return false, 0, err
		}
		return true, count, nil
	case codec12, codec13, codec14:
		return false, count, decodeMessage(codec, body, out)
	default:
		return false, 0, sdk.Errorf(sdk.ErrUnsupported, "teltonika: codec 0x%02x", codec)
	}
}

// reader reads big-endian values and remembers the first overrun.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = sdk.Errorf(sdk.ErrMalformed, "record data ends at byte %d, %d more needed", len(r.b), n)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() int {
	if b := r.take(1); b != nil {
		return int(b[0])
	}
	return 0
}

func (r *reader) u16() int {
	if b := r.take(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// idx reads a count or an IO id: two bytes when wide, else one.
func (r *reader) idx(wide bool) int {
	if wide {
		return r.u16()
	}
	return r.u8()
}

func decodeRecords(codec byte, count int, body []byte, extended bool, out *sdk.Output) error {
	r := &reader{b: body}
	for i := 0; i < count; i++ {
		rec := out.Record()
		if codec == codecGH3000 {
			gh3000Record(r, rec)
		} else {
			avlRecord(r, rec, codec, extended)
		}
		if r.err != nil {
			return sdk.Errorf(sdk.ErrMalformed, "teltonika: reading record %d of %d: %v", i+1, count, r.err)
		}
	}
	if r.off != len(body) {
		return sdk.Errorf(sdk.ErrMalformed, "teltonika: %d bytes left after %d records", len(body)-r.off, count)
	}
	return nil
}

// avlRecord reads one codec 8 / 8E / 16 record.
func avlRecord(r *reader, rec *sdk.Record, codec byte, extended bool) {
	raw := r.u64()
	if r.err == nil && raw > maxAVLMillis {
		r.err = sdk.Errorf(sdk.ErrMalformed, "record timestamp %d ms is beyond the year 9999", raw)
	}
	rec.Time(int64(raw))
	priority := r.u8()
	lon := int32(r.u32())
	lat := int32(r.u32())
	alt := int16(r.u16())
	heading := r.u16()
	sats := r.u8()
	speed := r.u16()
	rec.Lat(float64(lat) / 1e7).Lon(float64(lon) / 1e7).Alt(float64(alt)).Heading(float64(heading)).
		Sats(float64(sats)).Speed(float64(speed)).Valid(sats > 0 && (lat != 0 || lon != 0))

	wideID := codec == codec8E || codec == codec16
	wideCount := codec == codec8E
	event := r.idx(wideID)
	generation := -1
	if codec == codec16 {
		generation = r.u8()
	}
	r.idx(wideCount) // the total IO count is informational (devices disagree on it)
	rec.I64("priority", int64(priority))
	rec.I64("event", int64(event))
	if generation >= 0 {
		rec.I64("generation_type", int64(generation))
	}
	for _, size := range [...]int{1, 2, 4, 8} {
		n := r.idx(wideCount)
		for j := 0; j < n && r.err == nil; j++ {
			id := r.idx(wideID)
			setIO(rec, id, r.take(size))
		}
	}
	if extended {
		n := r.idx(wideCount)
		for j := 0; j < n && r.err == nil; j++ {
			id := r.idx(wideID)
			if v := r.take(16); v != nil {
				rec.Hex(ioName(id), v)
			}
		}
	}
	if codec == codec8E {
		n := r.u16()
		for j := 0; j < n && r.err == nil; j++ {
			id := r.u16()
			if v := r.take(r.u16()); v != nil {
				setVarIO(rec, id, v)
			}
		}
	}
	// The OEM total mileage (IO 389, the vehicle's own odometer in km)
	// fills the odometer when the record carries no GNSS total odometer
	// (IO 16), which keeps precedence.
	if v, ok := rec.AttrF64("oem_odometer_km"); ok && math.IsNaN(rec.Get(sdk.FieldOdometer)) {
		rec.Odometer(v)
	}
}

// gh3000Record reads one GH3000 (codec 7) record: seconds since 2007 with
// the priority in the top two bits, a global mask and masked sections.
func gh3000Record(r *reader, rec *sdk.Record) {
	word := r.u32()
	rec.TimeUnix(gh3000Epoch + int64(word&0x3fffffff))
	rec.I64("priority", int64(word>>30))
	global := r.u8()
	if global&0x01 != 0 {
		loc := r.u8()
		if loc&0x01 != 0 {
			lat := float64(math.Float32frombits(r.u32()))
			lon := float64(math.Float32frombits(r.u32()))
			if r.err == nil && (math.IsNaN(lat) || math.IsInf(lat, 0) || math.IsNaN(lon) || math.IsInf(lon, 0)) {
				r.err = sdk.Errorf(sdk.ErrMalformed, "GH3000 position %v, %v is not a number", lat, lon)
				return
			}
			rec.Lat(lat).Lon(lon)
		}
		if loc&0x02 != 0 {
			rec.Alt(float64(r.u16()))
		}
		if loc&0x04 != 0 {
			rec.Heading(float64(r.u8()) * 360 / 256)
		}
		if loc&0x08 != 0 {
			rec.Speed(float64(r.u8()))
		}
		if loc&0x10 != 0 {
			sats := r.u8()
			rec.Sats(float64(sats)).Valid(sats > 0)
		}
		if loc&0x20 != 0 {
			rec.I64("lac", int64(r.u16()))
			rec.I64("cid", int64(r.u16()))
		}
		if loc&0x40 != 0 {
			rec.I64("rssi", int64(r.u8()))
		}
		if loc&0x80 != 0 {
			rec.I64("operator", int64(r.u32()))
		}
	}
	for _, sec := range [...]struct{ bit, size int }{{1, 1}, {2, 2}, {3, 4}} {
		if global&(1<<sec.bit) == 0 {
			continue
		}
		n := r.u8()
		for j := 0; j < n && r.err == nil; j++ {
			id := r.u8()
			if v := r.take(sec.size); v != nil {
				rec.I64(ioName(id), int64(beUint(v)))
			}
		}
	}
}

// ioNames caches the attribute names of the common IO ids, so that a
// record's names cost no allocation.
var ioNames = func() (t [1024]string) {
	for i := range t {
		t[i] = "io" + strconv.Itoa(i)
	}
	return t
}()

func ioName(id int) string {
	if id >= 0 && id < len(ioNames) {
		return ioNames[id]
	}
	return "io" + strconv.Itoa(id)
}

func beUint(v []byte) uint64 {
	var x uint64
	for _, b := range v {
		x = x<<8 | uint64(b)
	}
	return x
}

// beInt reads v as a two's complement signed integer of its own width.
func beInt(v []byte) int64 {
	x := beUint(v)
	shift := 64 - 8*uint(len(v))
	return int64(x<<shift) >> shift
}

// setIO keeps an IO element as io<ID> and maps the FMB-family ids onto
// canonical fields.
func setIO(rec *sdk.Record, id int, v []byte) {
	if v == nil {
		return
	}
	raw := int64(beUint(v)) // 8-byte values keep their bits
	rec.I64(ioName(id), raw)
	if id >= ioOBDFirst && id <= ioOBDLast {
		setOBD(rec, id, v)
		return
	}
	switch id {
	case 16:
		rec.Odometer(float64(raw) / 1000)
	case 389:
		rec.F64("oem_odometer_km", float64(raw))
	case 390:
		rec.F64("oem_fuel_level_l", float64(raw)/10)
	case 66:
		rec.Voltage(float64(raw) / 1000)
	case 182:
		rec.HDOP(float64(raw) / 10)
	case 239:
		rec.Bool("ignition", raw != 0)
	case 240:
		rec.Bool("motion", raw != 0)
	}
}

// IO 30–60 are OBD-II mode 01 PIDs read by the FMB00x/FMM00x/FMC00x OBD
// trackers, in the order of Teltonika's AVL ID list ("OBD elements").
// Each value is the PID's value already computed by the device, in the
// PID's unit times a decimal multiplier, signed where the quantity can be
// negative.
const (
	ioOBDFirst = 30
	ioOBDLast  = 60
)

type obdIO struct {
	pid    byte
	scale  float64
	signed bool
}

var obdIOs = [ioOBDLast - ioOBDFirst + 1]obdIO{
	{0x01, 1, false},     // 30 number of DTCs (the count of PID 01 byte A)
	{0x04, 1, false},     // 31 engine load, %
	{0x05, 1, true},      // 32 coolant temperature, °C
	{0x06, 1, true},      // 33 short term fuel trim bank 1, %
	{0x0A, 1, false},     // 34 fuel pressure, kPa
	{0x0B, 1, false},     // 35 intake manifold absolute pressure, kPa
	{0x0C, 1, false},     // 36 engine RPM
	{0x0D, 1, false},     // 37 vehicle speed, km/h
	{0x0E, 1, true},      // 38 timing advance, °
	{0x0F, 1, true},      // 39 intake air temperature, °C
	{0x10, 0.01, false},  // 40 MAF, g/s ×0.01
	{0x11, 1, false},     // 41 throttle position, %
	{0x1F, 1, false},     // 42 run time since engine start, s
	{0x21, 1, false},     // 43 distance travelled with MIL on, km
	{0x22, 0.1, false},   // 44 fuel rail pressure relative to manifold vacuum, kPa ×0.1
	{0x23, 10, false},    // 45 fuel rail gauge pressure (direct injection), kPa ×10
	{0x2C, 1, false},     // 46 commanded EGR, %
	{0x2D, 1, true},      // 47 EGR error, %
	{0x2F, 1, false},     // 48 fuel level input, %
	{0x31, 1, false},     // 49 distance since codes cleared, km
	{0x33, 1, false},     // 50 barometric pressure, kPa
	{0x42, 0.001, false}, // 51 control module voltage, mV
	{0x43, 1, false},     // 52 absolute load value, %
	{0x46, 1, true},      // 53 ambient air temperature, °C
	{0x4D, 1, false},     // 54 time run with MIL on, min
	{0x4E, 1, false},     // 55 time since codes cleared, min
	{0x59, 10, false},    // 56 fuel rail absolute pressure, kPa ×10
	{0x5B, 1, false},     // 57 hybrid battery pack remaining life, %
	{0x5C, 1, true},      // 58 engine oil temperature, °C
	{0x5D, 0.01, true},   // 59 fuel injection timing, ° ×0.01
	{0x5E, 0.01, false},  // 60 engine fuel rate, L/h ×0.01
}

// The obd2 attribute names of the two PIDs that always go to attrs (the
// record's speed is the GNSS speed and its voltage the external supply,
// IO 66): protocols/obd2.AttrName(0x0D) and AttrName(0x42).
const (
	pidSpeed         = 0x0D
	pidModuleVoltage = 0x42
	attrOBDSpeed     = "obd_0d_speed_kmh"
	attrOBDVoltage   = "obd_42_module_voltage_v"
)

// setOBD hands IO 30–60 to the host's OBD mapping (protocols/obd2), so that
// the names and units are those of every other decoder: engine load,
// coolant, RPM, throttle and fuel level go to their canonical fields, the
// others to their obd2 attribute names.
func setOBD(rec *sdk.Record, id int, v []byte) {
	o := obdIOs[id-ioOBDFirst]
	x := float64(beUint(v))
	if o.signed {
		x = float64(beInt(v))
	}
	switch o.pid {
	case pidSpeed:
		rec.F64(attrOBDSpeed, x*o.scale)
	case pidModuleVoltage:
		rec.F64(attrOBDVoltage, x*o.scale)
	default:
		rec.OBDScaled(o.pid, x*o.scale)
	}
}

// setVarIO keeps a variable-length IO element (codec 8E) as io<ID> in hex,
// and reads the OBD ones: 256 VIN (ASCII) and 281 fault codes (ASCII,
// comma-separated DTCs).
func setVarIO(rec *sdk.Record, id int, v []byte) {
	rec.Hex(ioName(id), v)
	switch id {
	case 256:
		if vin := strings.TrimRight(string(v), "\x00 "); printable(vin) && vin != "" {
			rec.String("vin", vin)
		}
	case 281:
		for _, code := range dtcCodes(string(v)) {
			rec.DTC(code)
		}
	}
}

func printable(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7E {
			return false
		}
	}
	return true
}

// dtcCodes picks the codes (a letter P, C, B or U and four hex digits)
// out of IO 281's text, whatever separates them.
func dtcCodes(t string) []string {
	var out []string
	for i := 0; i+5 <= len(t); {
		c := t[i : i+5]
		if strings.IndexByte("PCBU", c[0]) >= 0 && isHex(c[1:]) && (i == 0 || !isAlnum(t[i-1])) && (i+5 == len(t) || !isAlnum(t[i+5])) {
			out = append(out, c)
			i += 5
			continue
		}
		i++
	}
	return out
}

func isHex(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// Message types of codecs 12, 13 and 14.
const (
	msgCamera = 0x0D
	msgNack   = 0x11
)

// decodeMessage reads the one message of a codec 12/13/14 frame (the
// quantity bytes are informational; one message per frame). It writes a
// record carrying the text as attr "result", or nothing for camera chunks
// and empty messages. Codec 12 and 14 replies have no device time: the
// host stamps them with the receive time of the frame's first copy.
func decodeMessage(codec byte, body []byte, out *sdk.Output) error {
	r := &reader{b: body}
	typ := r.u8()
	size := int(r.u32())
	payload := r.take(size)
	if r.err != nil {
		return sdk.Errorf(sdk.ErrMalformed, "teltonika: reading codec 0x%02x message: %v", codec, r.err)
	}
	if r.off != len(body) {
		return sdk.Errorf(sdk.ErrMalformed, "teltonika: %d bytes after the codec 0x%02x message", len(body)-r.off, codec)
	}
	if typ == msgCamera {
		return nil // camera chunks are not stored
	}
	var ts int64 = -1
	var imei []byte
	switch codec {
	case codec13:
		if len(payload) < 4 {
			return sdk.Errorf(sdk.ErrMalformed, "teltonika: codec 13 message of %d bytes has no timestamp", len(payload))
		}
		ts = int64(binary.BigEndian.Uint32(payload))
		payload = payload[4:]
	case codec14:
		if len(payload) < 8 {
			return sdk.Errorf(sdk.ErrMalformed, "teltonika: codec 14 message of %d bytes has no IMEI", len(payload))
		}
		imei = payload[:8]
		payload = payload[8:]
	}
	text, ok := messageText(payload)
	if !ok {
		return nil
	}
	rec := out.Record()
	if ts >= 0 {
		rec.TimeUnix(ts)
	}
	if imei != nil {
		rec.String("imei", strings.TrimLeft(hexString(imei), "0"))
	}
	rec.I64("codec", int64(codec))
	rec.I64("type", int64(typ))
	rec.String("result", text)
	if typ == msgNack {
		rec.Bool("nack", true)
	}
	return nil
}

func hexString(v []byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 2*len(v))
	for i, c := range v {
		b[2*i], b[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(b)
}

// messageText renders a GPRS message: trimmed text when printable, else
// hex. ok is false for an empty message.
func messageText(p []byte) (string, bool) {
	printable := true
	for _, c := range p {
		if (c < 32 && c != '\r' && c != '\n' && c != '\t') || c > '~' {
			printable = false
			break
		}
	}
	if !printable {
		return hexString(p), len(p) > 0
	}
	t := strings.TrimSpace(string(p))
	return t, t != ""
}

// crc16 is CRC-16/IBM (also called CRC-16/ARC): polynomial 0x8005
// reflected (0xA001), initial value 0, no final xor.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc>>8 ^ crcTable[byte(crc)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
		t[i] = crc
	}
	return t
}()
