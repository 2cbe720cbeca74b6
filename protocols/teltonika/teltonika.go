// Package teltonika decodes the Teltonika AVL protocol (FMB/FMC/FMM/GH
// families): IMEI login, codecs 8, 8 Extended (0x8E), 16 and GH3000 (7)
// over TCP and UDP, and the GPRS message codecs 12, 13 and 14. See
// README.md for the frame layouts, the field mapping and the choices made.
package teltonika

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "teltonika"

// DefaultPort is Teltonika's conventional port.
const DefaultPort = 5027

// Codec ids.
const (
	CodecGH3000 = 0x07
	Codec8      = 0x08
	Codec8E     = 0x8E
	Codec12     = 0x0C
	Codec13     = 0x0D
	Codec14     = 0x0E
	Codec16     = 0x10
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

// Decoder is the Teltonika protocol. The zero value is ready to use. It is
// shared by every session of every Teltonika listener: it remembers the
// receive time it gave each GPRS message without a device time (codec 12
// and 14 replies), so that a resend of the frame gets the same time and key
// (plugins.ServerTimes).
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
		Description: "Teltonika AVL: codecs 8, 8E, 16, GH3000 (7); GPRS messages 12/13/14",
		Options:     []plugins.Option{optExtended},
	}
}

// optExtended forces the 16-byte IO section (see NewSession).
var optExtended = plugins.BoolOption{
	Name: "extended",
	Doc:  "force the 16-byte IO section some FMB firmwares add to codec 8/16 records (without it that layout is still recognised when the standard one does not fit)",
}

// NewSession starts one connection's (TCP) or one datagram source's (UDP)
// state. Option "extended" = "true" forces the 16-byte IO section that some
// FMB firmwares add to codec 8/16 records; without it that layout is still
// recognised when the standard one does not fit the frame.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.Transport == "" {
		cfg.Transport = plugins.TCP
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Session{dec: d, cfg: cfg, log: log.Named(Name)}
	s.extended = optExtended.Get(cfg.Options)
	return s
}

// Session is one TCP connection or one UDP source.
type Session struct {
	dec      *Decoder
	cfg      plugins.SessionConfig
	log      hclog.Logger
	imei     string
	extended bool
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the IMEI the device logged in with ("" before login).
func (s *Session) DeviceID() string { return s.imei }

// Frame splits the TCP stream: a 0xFF keep-alive, an IMEI login (2-byte
// length + ASCII IMEI) or an AVL/GPRS data frame (4 zero bytes, 4-byte data
// length, data, 4-byte CRC).
func (s *Session) Frame(buf []byte) (int, error) {
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
			return 0, fmt.Errorf("framing teltonika login: %w: IMEI length %d", plugins.ErrMalformed, n)
		}
		if len(buf) < 2+n {
			return 0, nil
		}
		return 2 + n, nil
	}
	// A data frame: the first four bytes must all be zero.
	for i := 2; i < 4 && i < len(buf); i++ {
		if buf[i] != 0 {
			return 0, fmt.Errorf("framing teltonika data: %w: preamble byte %d is 0x%02x", plugins.ErrMalformed, i, buf[i])
		}
	}
	if len(buf) < 8 {
		return 0, nil
	}
	total, err := s.frameLen(binary.BigEndian.Uint32(buf[4:8]))
	if err != nil {
		return 0, fmt.Errorf("framing teltonika data: %w", err)
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// frameLen checks a TCP data length field and returns the frame's length.
// Its errors say what is wrong, not where: Frame and Decode wrap them with
// their own phrase.
func (s *Session) frameLen(dataLen uint32) (int, error) {
	if dataLen < minAVLData {
		return 0, fmt.Errorf("%w: data length %d", plugins.ErrMalformed, dataLen)
	}
	total := uint64(dataLen) + 12
	if total > uint64(s.cfg.MaxFrame) {
		return 0, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	return int(total), nil
}

// Decode decodes one frame (TCP) or one datagram (UDP).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if s.cfg.Transport == plugins.UDP {
		return s.decodeUDP(frame, recv)
	}
	return s.decodeTCP(frame, recv)
}

func (s *Session) decodeTCP(frame []byte, recv time.Time) (plugins.Result, error) {
	switch {
	case len(frame) == 1 && frame[0] == pingByte:
		return plugins.Result{DeviceID: s.imei}, nil
	case len(frame) >= 2 && binary.BigEndian.Uint16(frame) != 0:
		return s.login(frame)
	}
	if len(frame) < 12 || binary.BigEndian.Uint32(frame) != 0 {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika frame: %w: bad preamble or short frame (%d bytes)", plugins.ErrMalformed, len(frame))
	}
	total, err := s.frameLen(binary.BigEndian.Uint32(frame[4:8]))
	if err != nil {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika frame: %w", err)
	}
	if total != len(frame) {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika frame: %w: data length says %d bytes, frame has %d", plugins.ErrMalformed, total, len(frame))
	}
	if s.imei == "" {
		return plugins.Result{}, fmt.Errorf("decoding teltonika frame: %w: data before IMEI login", plugins.ErrNoDevice)
	}
	data := frame[8 : len(frame)-4]
	want := binary.BigEndian.Uint32(frame[len(frame)-4:])
	if got := uint32(CRC16(data)); got != want {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika frame: %w: CRC-16/IBM is 0x%04x, frame says 0x%08x", plugins.ErrChecksum, got, want)
	}
	sigs, avl, count, err := s.decodeData(data, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika frame: %w", err)
	}
	res := plugins.Result{DeviceID: s.imei}
	if len(sigs) > 0 {
		res.Signals = s.finish(sigs, frame, recv)
	}
	if avl {
		res.Ack = binary.BigEndian.AppendUint32(nil, uint32(count))
	}
	return res, nil
}

// login handles the IMEI frame: 0x01 accepts, 0x00 refuses and closes.
func (s *Session) login(frame []byte) (plugins.Result, error) {
	n := int(binary.BigEndian.Uint16(frame))
	if n > maxIMEILen || len(frame) != 2+n {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika login: %w: IMEI length %d in %d bytes", plugins.ErrMalformed, n, len(frame))
	}
	imei, err := parseIMEI(frame[2:])
	if err != nil {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding teltonika login: %w", err)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		s.imei = ""
		s.log.Info("device refused", "imei", imei, "remote", s.cfg.RemoteAddr)
		return plugins.Result{Ack: []byte{0x00}, Close: true, DeviceID: imei}, nil
	}
	s.imei = imei
	return plugins.Result{Ack: []byte{0x01}, DeviceID: imei}, nil
}

func parseIMEI(b []byte) (string, error) {
	if len(b) == 0 {
		return "", fmt.Errorf("%w: empty IMEI", plugins.ErrMalformed)
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return "", fmt.Errorf("%w: IMEI byte 0x%02x is not printable ASCII", plugins.ErrMalformed, c)
		}
	}
	return string(b), nil
}

// decodeUDP decodes one datagram: 2-byte length, 2-byte packet id, 1 byte
// not usable, 1-byte AVL packet id, 2-byte IMEI length, IMEI, codec data.
func (s *Session) decodeUDP(d []byte, recv time.Time) (plugins.Result, error) {
	if len(d) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("decoding teltonika datagram: %w: %d bytes, cap %d", plugins.ErrTooLarge, len(d), s.cfg.MaxFrame)
	}
	if len(d) < 8 {
		return plugins.Result{}, fmt.Errorf("decoding teltonika datagram: %w: %d bytes", plugins.ErrMalformed, len(d))
	}
	if n := int(binary.BigEndian.Uint16(d)); n != len(d)-2 {
		return plugins.Result{}, fmt.Errorf("decoding teltonika datagram: %w: length field %d, datagram carries %d", plugins.ErrMalformed, n, len(d)-2)
	}
	packetID := binary.BigEndian.Uint16(d[2:4])
	avlID := d[5]
	n := int(binary.BigEndian.Uint16(d[6:8]))
	if n > maxIMEILen || len(d) < 8+n {
		return plugins.Result{}, fmt.Errorf("decoding teltonika datagram: %w: IMEI length %d", plugins.ErrMalformed, n)
	}
	imei, err := parseIMEI(d[8 : 8+n])
	if err != nil {
		return plugins.Result{}, fmt.Errorf("decoding teltonika datagram: %w", err)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding teltonika datagram: %w: %s", plugins.ErrUnauthorized, imei)
	}
	s.imei = imei
	sigs, avl, count, err := s.decodeData(d[8+n:], recv)
	if err != nil {
		return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding teltonika datagram: %w", err)
	}
	res := plugins.Result{DeviceID: imei}
	if len(sigs) > 0 {
		res.Signals = s.finish(sigs, d, recv)
	}
	if avl {
		ack := make([]byte, 7)
		binary.BigEndian.PutUint16(ack, 5)
		binary.BigEndian.PutUint16(ack[2:], packetID)
		ack[4] = 0x01
		ack[5] = avlID
		ack[6] = byte(count)
		res.Ack = ack
	}
	return res, nil
}

// finish stamps what every signal of a frame shares. A signal without a
// device time (a codec 12/14 reply) gets the receive time of the frame's
// first copy (to the millisecond), so that a resend of the frame keeps its
// key: the UDP datagram carries a packet id that tells messages apart; a
// TCP frame has none, so an identical reply within the resend window is
// taken as a resend.
func (s *Session) finish(sigs []signal.Signal, frame []byte, recv time.Time) []signal.Signal {
	raw := append([]byte(nil), frame...)
	recv = recv.UTC()
	for i := range sigs {
		if sigs[i].TS.IsZero() {
			sigs[i].TS = s.dec.times.Stamp(s.imei, frame, recv.Truncate(time.Millisecond))
		}
		sigs[i].Recv = recv
		sigs[i].Protocol = Name
		sigs[i].Frame = raw
	}
	return sigs
}

// decodeData decodes codec id, count, records, count. avl reports whether
// the codec carries AVL records (and so is acknowledged with the count).
func (s *Session) decodeData(data []byte, recv time.Time) (sigs []signal.Signal, avl bool, count int, err error) {
	if len(data) < minAVLData {
		return nil, false, 0, fmt.Errorf("%w: %d data bytes", plugins.ErrMalformed, len(data))
	}
	codec := data[0]
	count = int(data[1])
	if trailer := int(data[len(data)-1]); trailer != count {
		return nil, false, 0, fmt.Errorf("%w: record count %d, trailer says %d", plugins.ErrMalformed, count, trailer)
	}
	body := data[2 : len(data)-1]
	switch codec {
	case Codec8, Codec8E, Codec16, CodecGH3000:
		if count == 0 {
			return nil, false, 0, fmt.Errorf("%w: AVL frame with no records", plugins.ErrMalformed)
		}
		sigs, err = s.decodeRecords(codec, count, body, s.extended)
		if err != nil && !s.extended && codec != CodecGH3000 {
			// Some FMB firmwares add a 16-byte IO section (Traccar's
			// "extended"); the CRC already vouched for the bytes, so a
			// second reading with that section is safe.
			if alt, err2 := s.decodeRecords(codec, count, body, true); err2 == nil {
				sigs, err = alt, nil
			}
		}
		if err != nil {
			return nil, false, 0, err
		}
		return sigs, true, count, nil
	case Codec12, Codec13, Codec14:
		sig, ok, err := s.decodeMessage(codec, body, recv)
		if err != nil || !ok {
			return nil, false, count, err
		}
		return []signal.Signal{sig}, false, count, nil
	default:
		return nil, false, 0, fmt.Errorf("%w: codec 0x%02x", plugins.ErrUnsupported, codec)
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
		r.err = fmt.Errorf("%w: record data ends at byte %d, %d more needed", plugins.ErrMalformed, len(r.b), n)
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

func (s *Session) decodeRecords(codec byte, count int, body []byte, extended bool) ([]signal.Signal, error) {
	r := &reader{b: body}
	sigs := make([]signal.Signal, 0, count)
	for i := 0; i < count; i++ {
		var sig signal.Signal
		if codec == CodecGH3000 {
			sig = s.gh3000Record(r)
		} else {
			sig = s.avlRecord(r, codec, extended)
		}
		if r.err != nil {
			return nil, fmt.Errorf("reading record %d of %d: %w", i+1, count, r.err)
		}
		sigs = append(sigs, sig)
	}
	if r.off != len(body) {
		return nil, fmt.Errorf("%w: %d bytes left after %d records", plugins.ErrMalformed, len(body)-r.off, count)
	}
	return sigs, nil
}

// avlRecord reads one codec 8 / 8E / 16 record.
func (s *Session) avlRecord(r *reader, codec byte, extended bool) signal.Signal {
	raw := r.u64()
	ts := int64(raw)
	if r.err == nil && (raw > maxAVLMillis) {
		// Beyond the year 9999: no clock, a byte error the CRC missed or
		// the wrong layout; never a time to store.
		r.err = fmt.Errorf("%w: record timestamp %d ms is beyond the year 9999", plugins.ErrMalformed, raw)
	}
	sig := signal.New(s.imei, time.UnixMilli(ts))
	priority := r.u8()
	lon := int32(r.u32())
	lat := int32(r.u32())
	alt := int16(r.u16())
	heading := r.u16()
	sats := r.u8()
	speed := r.u16()
	sig.Lat = float64(lat) / 1e7
	sig.Lon = float64(lon) / 1e7
	sig.Alt = float64(alt)
	sig.Heading = float64(heading)
	sig.Sats = float64(sats)
	sig.Speed = float64(speed)
	sig.Valid = signal.FlagOf(sats > 0 && (lat != 0 || lon != 0))

	wideID := codec == Codec8E || codec == Codec16
	wideCount := codec == Codec8E
	event := r.idx(wideID)
	generation := -1
	if codec == Codec16 {
		generation = r.u8()
	}
	// The total IO count is informational (devices disagree on it); it
	// only sizes the attribute map.
	sig.Attrs = make(map[string]any, min(r.idx(wideCount), 256)+8)
	sig.SetAttr("priority", priority)
	sig.SetAttr("event", event)
	if generation >= 0 {
		sig.SetAttr("generation_type", generation)
	}
	for _, size := range [...]int{1, 2, 4, 8} {
		n := r.idx(wideCount)
		for j := 0; j < n && r.err == nil; j++ {
			id := r.idx(wideID)
			setIO(&sig, id, r.take(size))
		}
	}
	if extended {
		n := r.idx(wideCount)
		for j := 0; j < n && r.err == nil; j++ {
			id := r.idx(wideID)
			if v := r.take(16); v != nil {
				sig.SetAttr(ioName(id), hex.EncodeToString(v))
			}
		}
	}
	if codec == Codec8E {
		n := r.u16()
		for j := 0; j < n && r.err == nil; j++ {
			id := r.u16()
			if v := r.take(r.u16()); v != nil {
				setVarIO(&sig, id, v)
			}
		}
	}
	finishOBD(&sig)
	return sig
}

// gh3000Record reads one GH3000 (codec 7) record: seconds since 2007 with
// the priority in the top two bits, a global mask and masked sections.
func (s *Session) gh3000Record(r *reader) signal.Signal {
	word := r.u32()
	sig := signal.New(s.imei, time.Unix(gh3000Epoch+int64(word&0x3fffffff), 0))
	sig.SetAttr("priority", int64(word>>30))
	global := r.u8()
	if global&0x01 != 0 {
		loc := r.u8()
		if loc&0x01 != 0 {
			lat := float64(math.Float32frombits(r.u32()))
			lon := float64(math.Float32frombits(r.u32()))
			if r.err == nil && (math.IsNaN(lat) || math.IsInf(lat, 0) || math.IsNaN(lon) || math.IsInf(lon, 0)) {
				r.err = fmt.Errorf("%w: GH3000 position %v, %v is not a number", plugins.ErrMalformed, lat, lon)
			}
			sig.Lat, sig.Lon = lat, lon
		}
		if loc&0x02 != 0 {
			sig.Alt = float64(r.u16())
		}
		if loc&0x04 != 0 {
			sig.Heading = float64(r.u8()) * 360 / 256
		}
		if loc&0x08 != 0 {
			sig.Speed = float64(r.u8())
		}
		if loc&0x10 != 0 {
			sats := r.u8()
			sig.Sats = float64(sats)
			sig.Valid = signal.FlagOf(sats > 0)
		}
		if loc&0x20 != 0 {
			sig.SetAttr("lac", r.u16())
			sig.SetAttr("cid", r.u16())
		}
		if loc&0x40 != 0 {
			sig.SetAttr("rssi", r.u8())
		}
		if loc&0x80 != 0 {
			sig.SetAttr("operator", r.u32())
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
				sig.SetAttr(ioName(id), int64(beUint(v)))
			}
		}
	}
	return sig
}

// ioNames caches the attribute names of the common IO ids.
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
func setIO(sig *signal.Signal, id int, v []byte) {
	if v == nil {
		return
	}
	raw := int64(beUint(v)) // 8-byte values keep their bits
	sig.SetAttr(ioName(id), raw)
	if id >= ioOBDFirst && id <= ioOBDLast {
		setOBD(sig, id, v)
		return
	}
	switch id {
	case 16:
		sig.Odometer = float64(raw) / 1000
	case 389:
		sig.SetAttr("oem_odometer_km", float64(raw))
	case 390:
		sig.SetAttr("oem_fuel_level_l", float64(raw)/10)
	case 66:
		sig.Voltage = float64(raw) / 1000
	case 182:
		sig.HDOP = float64(raw) / 10
	case 239:
		sig.SetAttr("ignition", raw != 0)
	case 240:
		sig.SetAttr("motion", raw != 0)
	}
}

// IO 30–60 are OBD-II mode 01 PIDs read by the FMB00x/FMM00x/FMC00x OBD
// trackers, in the order of Teltonika's AVL ID list ("OBD elements").
// Each value is the PID's value already computed by the device, in the
// PID's unit times a decimal multiplier (Teltonika's "Multiplier" column),
// signed where the quantity can be negative.
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

// setOBD routes IO 30–60 through protocols/obd2, so that the names and
// units are those of every other decoder: engine load, coolant, RPM,
// throttle and fuel level go to their canonical fields, the others to
// obd2.AttrName. Vehicle speed (PID 0D) and module voltage (PID 42) always
// go to their attrs: the record's speed is the GNSS speed and its voltage
// the external supply (IO 66).
func setOBD(sig *signal.Signal, id int, v []byte) {
	o := obdIOs[id-ioOBDFirst]
	x := float64(beUint(v))
	if o.signed {
		x = float64(beInt(v))
	}
	val, err := obd2.Scaled(o.pid, x*o.scale)
	if err != nil {
		return // a finite integer times a constant is always finite
	}
	if o.pid == obd2.PIDSpeed || o.pid == obd2.PIDModuleVoltage {
		sig.SetAttr(obd2.AttrName(o.pid), val.Number)
		return
	}
	val.Apply(sig)
}

// setVarIO keeps a variable-length IO element (codec 8E) as io<ID> in hex,
// and reads the OBD ones: 256 VIN (ASCII) and 281 fault codes (ASCII,
// comma-separated DTCs).
func setVarIO(sig *signal.Signal, id int, v []byte) {
	sig.SetAttr(ioName(id), hex.EncodeToString(v))
	switch id {
	case 256:
		if vin := strings.TrimRight(string(v), "\x00 "); printable(vin) && vin != "" {
			sig.SetAttr("vin", vin)
		}
	case 281:
		obd2.AddDTCs(sig, dtcCodes(string(v))...)
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

// finishOBD fills the canonical odometer from the OEM total mileage (IO
// 389, the vehicle's own odometer in km) when the record carries no
// GNSS total odometer (IO 16), which keeps precedence.
func finishOBD(sig *signal.Signal) {
	if v, ok := sig.Attrs["oem_odometer_km"].(float64); ok && math.IsNaN(sig.Odometer) {
		sig.Odometer = v
	}
}

// Message types of codecs 12, 13 and 14.
const (
	msgCommand  = 0x05
	msgResponse = 0x06
	msgCamera   = 0x0D
	msgNack     = 0x11
)

// decodeMessage reads the one message of a codec 12/13/14 frame (the
// quantity bytes are informational; one message per frame). It returns a
// signal carrying the text as attr "result", or ok=false for camera chunks
// and empty messages.
func (s *Session) decodeMessage(codec byte, body []byte, recv time.Time) (signal.Signal, bool, error) {
	r := &reader{b: body}
	typ := r.u8()
	size := int(r.u32())
	payload := r.take(size)
	if r.err != nil {
		return signal.Signal{}, false, fmt.Errorf("reading codec 0x%02x message: %w", codec, r.err)
	}
	if r.off != len(body) {
		return signal.Signal{}, false, fmt.Errorf("%w: %d bytes after the codec 0x%02x message", plugins.ErrMalformed, len(body)-r.off, codec)
	}
	if typ == msgCamera {
		s.log.Debug("camera chunk not stored", "imei", s.imei, "bytes", size)
		return signal.Signal{}, false, nil
	}
	var ts time.Time // none: finish stamps the server time
	sig := signal.Signal{}
	switch codec {
	case Codec13:
		if len(payload) < 4 {
			return signal.Signal{}, false, fmt.Errorf("%w: codec 13 message of %d bytes has no timestamp", plugins.ErrMalformed, len(payload))
		}
		ts = time.Unix(int64(binary.BigEndian.Uint32(payload)), 0)
		payload = payload[4:]
	case Codec14:
		if len(payload) < 8 {
			return signal.Signal{}, false, fmt.Errorf("%w: codec 14 message of %d bytes has no IMEI", plugins.ErrMalformed, len(payload))
		}
		sig.SetAttr("imei", strings.TrimLeft(hex.EncodeToString(payload[:8]), "0"))
		payload = payload[8:]
	}
	text, ok := messageText(payload)
	if !ok {
		return signal.Signal{}, false, nil
	}
	out := signal.New(s.imei, ts)
	out.Attrs = sig.Attrs
	out.SetAttr("codec", int(codec))
	out.SetAttr("type", typ)
	out.SetAttr("result", text)
	if typ == msgNack {
		out.SetAttr("nack", true)
	}
	return out, true, nil
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
		return hex.EncodeToString(p), len(p) > 0
	}
	t := strings.TrimSpace(string(p))
	return t, t != ""
}

// CRC16 is CRC-16/IBM (also called CRC-16/ARC): polynomial 0x8005
// reflected (0xA001), initial value 0, no final xor.
func CRC16(b []byte) uint16 {
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
