// Package galileo decodes the Galileosky protocol (Galileosky 7.x, Base
// Block, Galileosky Iridium): tag packets (header 0x01, little-endian
// length with the archive bit, tags, CRC-16/Modbus) acknowledged with
// 0x02 and the packet's checksum, compressed packets (header 0x08: a
// minimal data set and a tag list per record) and Iridium SBD messages
// forwarded by the Iridium gateway. See README.md for the tags decoded.
package galileo

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "galileo"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5034

// Packet headers.
const (
	HeaderMain       = 0x01
	HeaderPhoto      = 0x07
	HeaderCompressed = 0x08
	ackHeader        = 0x02
)

const (
	defaultMaxFrame = 64 << 10
	imeiLen         = 15
	archiveBit      = 0x8000
)

// optCompressed says how Iridium payloads are written.
var optCompressed = plugins.BoolOption{
	Name: "compressed",
	Doc:  "Iridium SBD payloads carry the compressed form (minimal data set and tag list) instead of plain tags",
}

// Decoder is the Galileosky protocol. The zero value is ready to use.
type Decoder struct {
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP},
		DefaultPort: DefaultPort,
		Description: "Galileosky: tag packets and compressed packets with CRC-16/Modbus (acked 0x02 + checksum), Iridium SBD",
		Options:     []plugins.Option{optCompressed},
	}
}

// NewSession starts one connection's state.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{dec: d, cfg: cfg, log: log.Named(Name), compressed: optCompressed.Get(cfg.Options)}
}

// Session is one TCP connection.
type Session struct {
	dec        *Decoder
	cfg        plugins.SessionConfig
	log        hclog.Logger
	imei       string
	compressed bool
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the IMEI the device sent in tag 0x03 ("" before).
func (s *Session) DeviceID() string { return s.imei }

// iridium reports an Iridium SBD message: header 0x01, a big-endian
// length, then the MO header element (id 0x01, length 28).
func iridium(b []byte) bool {
	return len(b) >= 6 && b[0] == HeaderMain && b[3] == 0x01 && b[4] == 0x00 && b[5] == 0x1c
}

// Frame returns the length of the packet at the start of buf.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case HeaderMain, HeaderCompressed, HeaderPhoto:
	default:
		return 0, fmt.Errorf("framing galileo packet: %w: header 0x%02x", plugins.ErrMalformed, buf[0])
	}
	if len(buf) < 3 {
		return 0, nil
	}
	total := 5 + int(binary.LittleEndian.Uint16(buf[1:])&^archiveBit)
	if buf[0] == HeaderMain && total > 5 {
		// An Iridium message is told apart by bytes 3–5; refuse what is
		// too large either way before waiting for them.
		if iri := 3 + int(binary.BigEndian.Uint16(buf[1:])); total > s.cfg.MaxFrame && iri > s.cfg.MaxFrame {
			return 0, fmt.Errorf("framing galileo packet: %w: %d bytes (Iridium: %d), cap %d", plugins.ErrTooLarge, total, iri, s.cfg.MaxFrame)
		}
		if len(buf) < 6 {
			return 0, nil
		}
		if iridium(buf) {
			total = 3 + int(binary.BigEndian.Uint16(buf[1:]))
		}
	}
	if total > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing galileo packet: %w: %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// Decode decodes one packet.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res := plugins.Result{DeviceID: s.imei}
	// The packet is checked as Frame checks it (its error names that step).
	n, err := s.Frame(frame)
	if err != nil {
		return res, err
	}
	if n == 0 || n != len(frame) {
		return res, fmt.Errorf("decoding galileo packet: %w: its length says %d bytes, it has %d", plugins.ErrMalformed, n, len(frame))
	}
	if iridium(frame) {
		sig, err := s.iridium(frame[3:])
		if err != nil {
			return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding galileo iridium message: %w", err)
		}
		res.DeviceID = s.imei
		res.Signals = s.finish([]signal.Signal{sig}, frame, recv, false)
		return res, nil
	}
	body := frame[:len(frame)-2]
	sum := binary.LittleEndian.Uint16(frame[len(frame)-2:])
	if got := CRC16(body); got != sum {
		return res, fmt.Errorf("decoding galileo packet: %w: CRC-16/Modbus is 0x%04x, packet says 0x%04x", plugins.ErrChecksum, got, sum)
	}
	archive := binary.LittleEndian.Uint16(frame[1:])&archiveBit != 0
	data := body[3:]
	var sigs []signal.Signal
	switch frame[0] {
	case HeaderMain:
		sigs, err = s.tagPacket(data, frame, recv)
	case HeaderCompressed:
		if s.imei == "" {
			return res, fmt.Errorf("decoding galileo compressed packet: %w: no IMEI packet on this connection yet", plugins.ErrNoDevice)
		}
		sigs, err = s.compressedPacket(data, recv)
	default:
		err = fmt.Errorf("%w: photo packet (header 0x%02x) not stored", plugins.ErrUnsupported, frame[0])
	}
	if err != nil {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding galileo packet: %w", err)
	}
	res.DeviceID = s.imei
	res.Signals = s.finish(sigs, frame, recv, archive)
	res.Ack = []byte{ackHeader, frame[len(frame)-2], frame[len(frame)-1]}
	return res, nil
}

func (s *Session) finish(sigs []signal.Signal, frame []byte, recv time.Time, archive bool) []signal.Signal {
	if len(sigs) == 0 {
		return nil
	}
	raw := append([]byte(nil), frame...)
	recv = recv.UTC()
	for i := range sigs {
		sigs[i].DeviceID = s.imei
		if sigs[i].TS.IsZero() {
			// A command reply without a time tag: the receive time of the
			// packet's first copy (the reply carries its request number,
			// tag 0xE0, which tells one reply from another).
			sigs[i].TS = s.dec.times.Stamp(s.imei, frame, recv.Truncate(time.Millisecond))
			sigs[i].SetAttr("time_source", "server")
		}
		if archive {
			sigs[i].SetAttr("archive", true)
		}
		sigs[i].Protocol = Name
		sigs[i].Recv = recv
		sigs[i].Frame = raw
	}
	return sigs
}

// setIMEI takes the device id of tag 0x03 through the allow-list.
func (s *Session) setIMEI(b []byte) error {
	imei := strings.TrimRight(string(b), "\x00 ")
	if imei == "" || !printable(imei) {
		return fmt.Errorf("%w: IMEI tag %x is not printable", plugins.ErrMalformed, b)
	}
	if imei == s.imei {
		return nil
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		s.log.Info("device refused", "imei", imei, "remote", s.cfg.RemoteAddr)
		return fmt.Errorf("%w: IMEI %s", plugins.ErrUnauthorized, imei)
	}
	s.imei = imei
	return nil
}

func printable(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7E {
			return false
		}
	}
	return true
}

// reader reads little-endian values and remembers the first overrun.
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
		r.err = fmt.Errorf("%w: data ends at byte %d, %d more needed at %d", plugins.ErrMalformed, len(r.b), n, r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) left() int { return len(r.b) - r.off }

// record is one record being assembled from tags.
type record struct {
	sig     signal.Signal
	hasTime bool
	hasData bool // a value worth a record without a time (a command reply)
	seen    [256]bool
}

func newRecord() *record {
	return &record{sig: signal.New("", time.Time{})}
}

// keep reports whether the record is stored: it has a device time, or it
// is a command reply.
func (rc *record) keep() bool { return rc.hasTime || rc.hasData }

// tagPacket decodes the tags of a main packet. A tag seen twice starts a
// new record (a packet from the archive holds several).
func (s *Session) tagPacket(data, frame []byte, recv time.Time) ([]signal.Signal, error) {
	r := &reader{b: data}
	var sigs []signal.Signal
	rc := newRecord()
	for r.left() > 0 {
		tag := r.take(1)[0]
		if rc.seen[tag] {
			if rc.keep() {
				sigs = append(sigs, rc.sig)
			}
			rc = newRecord()
		}
		rc.seen[tag] = true
		if tag == 0x03 {
			b := r.take(imeiLen)
			if r.err != nil {
				break
			}
			if err := s.setIMEI(b); err != nil {
				return nil, err
			}
			continue
		}
		if err := decodeTag(rc, r, tag); err != nil {
			return nil, err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if rc.keep() {
		sigs = append(sigs, rc.sig)
	}
	if s.imei == "" {
		return nil, fmt.Errorf("%w: packet without IMEI tag before any IMEI on this connection", plugins.ErrNoDevice)
	}
	return sigs, nil
}

// tagLen is the length of the fixed-size tags (Galileosky's tag table);
// 0 marks a tag of unknown length. Tags 0x03 (IMEI), 0xE1, 0xEA, 0xEB
// (a 1-byte length first) and 0xFE (extended tags, a 2-byte length
// first) are read apart.
var tagLen = func() (t [256]int) {
	set := func(n int, tags ...int) {
		for _, tag := range tags {
			t[tag] = n
		}
	}
	set(1, 0x01, 0x02, 0x35, 0x43, 0x88, 0x89, 0x8a, 0x8b, 0x8c)
	set(2, 0x04, 0x10, 0x34, 0x40, 0x41, 0x42, 0x45, 0x46, 0x48, 0x58, 0x59, 0x78, 0x79)
	set(3, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87)
	set(3, 0x5d, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0xfa)
	set(4, 0x20, 0x33, 0x44, 0x47, 0x5a, 0x90, 0xc0, 0xc1, 0xc2, 0xc3, 0xd3, 0xd4, 0xe0)
	set(8, 0xfd)
	set(9, 0x30)
	set(68, 0x5c)
	for tag := 0x50; tag <= 0x57; tag++ {
		t[tag] = 2 // analog inputs
	}
	for tag := 0x60; tag <= 0x62; tag++ {
		t[tag] = 2 // RS-485 fuel sensors
	}
	for tag := 0x70; tag <= 0x77; tag++ {
		t[tag] = 2 // thermometers
	}
	for tag := 0xa0; tag <= 0xaf; tag++ {
		t[tag] = 1 // CAN8BITR15..30
	}
	for tag := 0xb0; tag <= 0xb9; tag++ {
		t[tag] = 2 // CAN16BITR5..14
	}
	for tag := 0xc4; tag <= 0xd2; tag++ {
		t[tag] = 1 // CAN8BITR0..14
	}
	t[0xd5] = 1
	for tag := 0xd6; tag <= 0xda; tag++ {
		t[tag] = 2 // CAN16BITR0..4
	}
	for tag := 0xdb; tag <= 0xdf; tag++ {
		t[tag] = 4 // CAN32BITR0..4
	}
	for tag := 0xe2; tag <= 0xe9; tag++ {
		t[tag] = 4 // user data
	}
	for tag := 0xf0; tag <= 0xf9; tag++ {
		t[tag] = 4 // CAN32BITR5..14
	}
	return t
}()

func le(v []byte) uint64 {
	var x uint64
	for i := len(v) - 1; i >= 0; i-- {
		x = x<<8 | uint64(v[i])
	}
	return x
}

func allOnes(v []byte) bool {
	for _, b := range v {
		if b != 0xFF {
			return false
		}
	}
	return true
}

// decodeTag reads one tag's value into the record.
func decodeTag(rc *record, r *reader, tag byte) error {
	sig := &rc.sig
	switch tag {
	case 0xfe:
		n := r.take(2)
		if n == nil {
			return r.err
		}
		v := r.take(int(binary.LittleEndian.Uint16(n)))
		if v == nil {
			return r.err
		}
		sig.SetAttr("extended_tags", hex.EncodeToString(v))
		return nil
	case 0xe1, 0xea, 0xeb:
		n := r.take(1)
		if n == nil {
			return r.err
		}
		v := r.take(int(n[0]))
		if v == nil {
			return r.err
		}
		switch tag {
		case 0xea:
			sig.SetAttr("user_data_array", hex.EncodeToString(v))
			return nil
		case 0xeb:
			sig.SetAttr("command_data", hex.EncodeToString(v))
			return nil
		}
		t := strings.TrimSpace(strings.TrimRight(string(v), "\x00"))
		if !printable(t) {
			t = hex.EncodeToString(v)
		}
		sig.SetAttr("result", t)
		rc.hasData = true
		return nil
	}
	n := tagLen[tag]
	if n == 0 {
		return fmt.Errorf("%w: tag 0x%02x of unknown length (the rest of the packet cannot be read)", plugins.ErrUnsupported, tag)
	}
	v := r.take(n)
	if v == nil {
		return r.err
	}
	u := le(v)
	switch {
	case tag == 0x01:
		sig.SetAttr("version_hw", int64(u))
	case tag == 0x02:
		sig.SetAttr("version_fw", int64(u))
	case tag == 0x04:
		sig.SetAttr("device_number", int64(u))
	case tag == 0x10 || tag == 0xe0:
		sig.SetAttr("index", int64(u))
	case tag == 0x20:
		sig.TS = time.Unix(int64(u), 0).UTC()
		rc.hasTime = true
	case tag == 0x30:
		// Bits 4–7: fix correctness (0 = valid); bits 0–3: satellites.
		sig.Valid = signal.FlagOf(v[0]&0xf0 == 0)
		sig.Sats = float64(v[0] & 0x0f)
		sig.Lat = float64(int32(binary.LittleEndian.Uint32(v[1:]))) / 1e6
		sig.Lon = float64(int32(binary.LittleEndian.Uint32(v[5:]))) / 1e6
	case tag == 0x33:
		sig.Speed = float64(binary.LittleEndian.Uint16(v)) / 10
		sig.Heading = float64(binary.LittleEndian.Uint16(v[2:])) / 10
	case tag == 0x34:
		sig.Alt = float64(int16(u))
	case tag == 0x35:
		sig.HDOP = float64(u) / 10
	case tag == 0x40:
		sig.SetAttr("status", int64(u))
	case tag == 0x41:
		sig.Voltage = float64(u) / 1000
	case tag == 0x42:
		sig.SetAttr("battery_v", float64(u)/1000)
	case tag == 0x43:
		sig.SetAttr("device_temp", int64(int8(v[0])))
	case tag == 0x44:
		sig.SetAttr("acceleration", int64(u))
	case tag == 0x45:
		sig.SetAttr("output", int64(u))
	case tag == 0x46:
		sig.SetAttr("input", int64(u))
	case tag == 0x48:
		sig.SetAttr("status_extended", int64(u))
	case tag >= 0x50 && tag <= 0x57:
		sig.SetAttr("adc"+strconv.Itoa(int(tag-0x50)), int64(u))
	case tag == 0x58 || tag == 0x59:
		sig.SetAttr("rs232_"+strconv.Itoa(int(tag-0x58)), int64(u))
	case tag >= 0x60 && tag <= 0x62:
		sig.SetAttr("fuel_sensor"+strconv.Itoa(int(tag-0x60)), int64(u))
	case tag >= 0x63 && tag <= 0x6f:
		// RS-485 level sensors 3–15: level, then temperature (°C, signed).
		n := strconv.Itoa(int(tag - 0x60))
		sig.SetAttr("fuel_sensor"+n, int64(binary.LittleEndian.Uint16(v)))
		sig.SetAttr("fuel_sensor"+n+"_temp", int64(int8(v[2])))
	case tag >= 0x8a && tag <= 0x8c:
		sig.SetAttr("fuel_sensor"+strconv.Itoa(int(tag-0x8a))+"_temp", int64(int8(v[0])))
	case tag >= 0x70 && tag <= 0x77:
		// Thermometer: id byte, then the temperature in °C (signed).
		sig.SetAttr("temp"+strconv.Itoa(int(tag-0x70)), int64(int8(v[1])))
	case tag == 0x90:
		sig.SetAttr("driver_id", strconv.FormatUint(u, 10))
	case tag >= 0xa0 && tag <= 0xaf:
		sig.SetAttr("can8_r"+strconv.Itoa(int(tag-0xa0)+15), int64(u))
	case tag >= 0xb0 && tag <= 0xb9:
		sig.SetAttr("can16_r"+strconv.Itoa(int(tag-0xb0)+5), int64(u))
	case tag == 0xc0:
		sig.SetAttr("fuel_total_l", float64(u)*0.5)
	case tag == 0xc1:
		// FMS: fuel level 0.4 %/bit, coolant −40 °C offset, engine speed
		// 0.125 rpm/bit; all-ones is "not available".
		if v[0] != 0xFF {
			sig.Fuel = float64(v[0]) * 0.4
		}
		if v[1] != 0xFF {
			sig.Coolant = float64(v[1]) - 40
		}
		if rpm := v[2:4]; !allOnes(rpm) {
			sig.RPM = float64(binary.LittleEndian.Uint16(rpm)) * 0.125
		}
	case tag == 0xc2:
		sig.SetAttr("can_b0", int64(u))
	case tag == 0xc3:
		sig.SetAttr("can_b1", int64(u))
	case tag >= 0xc4 && tag <= 0xd2:
		sig.SetAttr("can8_r"+strconv.Itoa(int(tag-0xc4)), int64(u))
	case tag == 0xd4:
		sig.Odometer = float64(u) / 1000 // m
	case tag >= 0xd6 && tag <= 0xda:
		sig.SetAttr("can16_r"+strconv.Itoa(int(tag-0xd6)), int64(u))
	case tag >= 0xdb && tag <= 0xdf:
		sig.SetAttr("can32_r"+strconv.Itoa(int(tag-0xdb)), int64(u))
	case tag >= 0xe2 && tag <= 0xe9:
		sig.SetAttr("user_data"+strconv.Itoa(int(tag-0xe2)), int64(u))
	case tag >= 0xf0 && tag <= 0xf9:
		sig.SetAttr("can32_r"+strconv.Itoa(int(tag-0xf0)+5), int64(u))
	default:
		sig.SetAttr(fmt.Sprintf("tag_%02x", tag), hex.EncodeToString(v))
	}
	return nil
}

// minimalSet reads the 10-byte minimal data set of the compressed form:
// a reserved bit, 25 bits of seconds since the start of the year, the
// validity bit (0 = valid), 22 bits of longitude and 21 of latitude
// (scaled over −180..180 and −90..90) and an alarm bit. The year is not
// sent: it is the year of the receive time, or the year before when that
// would put the record more than a day ahead of it.
func minimalSet(sig *signal.Signal, b []byte, recv time.Time) {
	// bit reads n bits from bit offset from, most significant bit first.
	bits := func(from, n int) uint64 {
		var x uint64
		for i := from; i < from+n; i++ {
			x = x<<1 | uint64(b[i/8]>>(7-i%8)&1)
		}
		return x
	}
	secs := bits(1, 25)
	invalid := bits(26, 1)
	lon := bits(27, 22)
	lat := bits(49, 21)
	alarm := bits(70, 1)
	recv = recv.UTC()
	start := time.Date(recv.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	ts := start.Add(time.Duration(secs) * time.Second)
	if ts.After(recv.Add(24 * time.Hour)) {
		start = time.Date(recv.Year()-1, 1, 1, 0, 0, 0, 0, time.UTC)
		ts = start.Add(time.Duration(secs) * time.Second)
	}
	sig.TS = ts
	sig.Valid = signal.FlagOf(invalid == 0)
	sig.Lon = 360*float64(lon)/4194304 - 180
	sig.Lat = 180*float64(lat)/2097152 - 90
	if alarm != 0 {
		sig.SetAttr("alarm", "general")
	}
}

// compressedRecords reads records of the compressed form until stop bytes
// are left: the minimal data set, a tag count, the tags, their values.
func compressedRecords(r *reader, stop int, recv time.Time) ([]signal.Signal, error) {
	var sigs []signal.Signal
	for r.left() > stop {
		rc := newRecord()
		ms := r.take(10)
		n := r.take(1)
		if r.err != nil {
			return nil, fmt.Errorf("reading compressed record %d: %w", len(sigs)+1, r.err)
		}
		minimalSet(&rc.sig, ms, recv)
		tags := r.take(int(n[0]))
		if r.err != nil {
			return nil, fmt.Errorf("reading compressed record %d: %w", len(sigs)+1, r.err)
		}
		for _, tag := range tags {
			if err := decodeTag(rc, r, tag); err != nil {
				return nil, fmt.Errorf("reading compressed record %d: %w", len(sigs)+1, err)
			}
		}
		sigs = append(sigs, rc.sig)
	}
	return sigs, nil
}

func (s *Session) compressedPacket(data []byte, recv time.Time) ([]signal.Signal, error) {
	r := &reader{b: data}
	sigs, err := compressedRecords(r, 0, recv)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: compressed packet without records", plugins.ErrMalformed)
	}
	return sigs, nil
}

// iridium decodes an Iridium SBD mobile-originated message as the Iridium
// gateway forwards it (DirectIP): the header element (CDR reference, the
// modem's IMEI, session status, MOMSN, MTMSN, session time), the location
// element (Iridium's own coarse fix) and the payload, Galileosky tags in
// plain or compressed form (option compressed).
func (s *Session) iridium(b []byte) (signal.Signal, error) {
	be := func(v []byte) uint64 {
		var x uint64
		for _, c := range v {
			x = x<<8 | uint64(c)
		}
		return x
	}
	r := &reader{b: b}
	r.take(3) // header element id and length
	cdr := r.take(4)
	imei := r.take(imeiLen)
	status := r.take(1)
	momsn := r.take(2)
	r.take(2) // MTMSN
	when := r.take(4)
	if r.err != nil {
		return signal.Signal{}, r.err
	}
	if err := s.setIMEI(imei); err != nil {
		return signal.Signal{}, err
	}
	rc := newRecord()
	sig := &rc.sig
	sig.TS = time.Unix(int64(be(when)), 0).UTC()
	sig.SetAttr("cdr_reference", int64(be(cdr)))
	sig.SetAttr("session_status", int64(status[0]))
	sig.SetAttr("momsn", int64(be(momsn)))
	for r.left() > 0 && r.err == nil {
		hdr := r.take(3)
		if hdr == nil {
			break
		}
		el := r.take(int(be(hdr[1:3])))
		if el == nil {
			break
		}
		switch hdr[0] {
		case 0x03: // location: flags, lat deg + 1/1000 min, lon deg + 1/1000 min, CEP radius
			if len(el) < 11 {
				return signal.Signal{}, fmt.Errorf("%w: Iridium location element of %d bytes", plugins.ErrMalformed, len(el))
			}
			lat := float64(el[1]) + float64(be(el[2:4]))/60000
			lon := float64(el[4]) + float64(be(el[5:7]))/60000
			if el[0]&0x02 != 0 {
				lat = -lat
			}
			if el[0]&0x01 != 0 {
				lon = -lon
			}
			sig.Lat, sig.Lon = lat, lon
			sig.SetAttr("cep_radius_km", int64(be(el[7:11])))
		case 0x02: // payload
			if err := s.iridiumPayload(rc, el, sig.TS); err != nil {
				return signal.Signal{}, err
			}
		default:
			sig.SetAttr(fmt.Sprintf("iridium_ie_%02x", hdr[0]), hex.EncodeToString(el))
		}
	}
	if r.err != nil {
		return signal.Signal{}, r.err
	}
	return *sig, nil
}

func (s *Session) iridiumPayload(rc *record, p []byte, when time.Time) error {
	r := &reader{b: p}
	if s.compressed {
		sigs, err := compressedRecords(r, 0, when)
		if err != nil {
			return err
		}
		if len(sigs) != 1 {
			return fmt.Errorf("%w: Iridium payload with %d compressed records", plugins.ErrMalformed, len(sigs))
		}
		attrs := rc.sig.Attrs
		rc.sig = sigs[0]
		for k, v := range attrs {
			rc.sig.SetAttr(k, v)
		}
		return nil
	}
	for r.left() > 0 {
		tag := r.take(1)[0]
		if tag == 0x03 {
			r.take(imeiLen)
			continue
		}
		if err := decodeTag(rc, r, tag); err != nil {
			return err
		}
	}
	return r.err
}

// CRC16 is CRC-16/Modbus: polynomial 0x8005 reflected (0xA001), initial
// value 0xFFFF, no final xor; Galileosky sends it little-endian.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
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
