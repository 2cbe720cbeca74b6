package wasmdecoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// ABIVersion is the decoder ABI version this host implements.
const ABIVersion = 1

// Sizes of the fixed headers.
const (
	InputHeaderSize  = 32
	OutputHeaderSize = 48
	recordHeaderSize = 16
)

// Magics: the first four bytes of the input ("FCI1") and of an output
// ("FCR1").
var (
	InputMagic  = [4]byte{'F', 'C', 'I', '1'}
	OutputMagic = [4]byte{'F', 'C', 'R', '1'}
)

// Output flags.
const (
	FlagClose uint32 = 1 << 0 // close the connection after the ack
	FlagState uint32 = 1 << 1 // the state section replaces the session's state
)

// Transport codes of the input.
const (
	transportTCP = 1
	transportUDP = 2
)

// errorCodes maps fc_frame codes and output statuses to the plugins
// sentinels.
var errorCodes = [...]error{
	1: plugins.ErrMalformed, 2: plugins.ErrChecksum, 3: plugins.ErrTooLarge,
	4: plugins.ErrUnauthorized, 5: plugins.ErrNoDevice, 6: plugins.ErrUnsupported,
}

// sentinelOf returns the sentinel of a negative code, nil for another
// value.
func sentinelOf(code int32) error {
	if code < 0 && -int64(code) < int64(len(errorCodes)) {
		return errorCodes[-code]
	}
	return nil
}

// Input is what the host hands fc_frame and fc_decode (ABI.md "Input").
type Input struct {
	Transport plugins.Transport
	RecvMs    int64 // 0 in fc_frame
	MaxFrame  uint32
	Options   []byte // compact JSON object, keys sorted
	State     []byte
	Data      []byte
}

// Size is the input's length in bytes.
func (in *Input) Size() int {
	return InputHeaderSize + len(in.Options) + len(in.State) + len(in.Data)
}

// AppendInput appends the input's bytes, exactly as the host writes them
// into guest memory, to dst.
func AppendInput(dst []byte, in Input) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, in.Size())...)
	putInput(dst[n:], &in)
	return dst
}

// putInput writes in into dst, which holds at least in.Size() bytes.
func putInput(dst []byte, in *Input) {
	le := binary.LittleEndian
	copy(dst[0:4], InputMagic[:])
	dst[4] = transportTCP
	if in.Transport == plugins.UDP {
		dst[4] = transportUDP
	}
	dst[5], dst[6], dst[7] = 0, 0, 0
	le.PutUint64(dst[8:], uint64(in.RecvMs))
	le.PutUint32(dst[16:], in.MaxFrame)
	le.PutUint32(dst[20:], uint32(len(in.Options)))
	le.PutUint32(dst[24:], uint32(len(in.State)))
	le.PutUint32(dst[28:], uint32(len(in.Data)))
	off := InputHeaderSize
	off += copy(dst[off:], in.Options)
	off += copy(dst[off:], in.State)
	copy(dst[off:], in.Data)
}

// abiError is a guest output that breaks the ABI layout or a cap.
type abiError struct{ msg string }

func (e *abiError) Error() string { return e.msg }

func abiErrorf(format string, args ...any) error { return &abiError{msg: fmt.Sprintf(format, args...)} }

// outHeader is a parsed output header; its byte slices alias the output.
type outHeader struct {
	status  int32
	flags   uint32
	nrec    int
	device  []byte
	ack     []byte
	reject  []byte
	message []byte
	state   []byte
	records []byte
}

// parseHeader checks an output's header and section lengths against the
// caps. stateMax is the module's state_max.
func parseHeader(b []byte, caps *Caps, stateMax int) (outHeader, error) {
	var h outHeader
	if len(b) < OutputHeaderSize {
		return h, abiErrorf("output of %d bytes is shorter than its %d-byte header", len(b), OutputHeaderSize)
	}
	if len(b) > caps.Output {
		return h, abiErrorf("output of %d bytes exceeds the cap of %d", len(b), caps.Output)
	}
	if [4]byte(b[0:4]) != OutputMagic {
		return h, abiErrorf("output magic %x, want %x (\"FCR1\")", b[0:4], OutputMagic[:])
	}
	le := binary.LittleEndian
	h.status = int32(le.Uint32(b[4:]))
	if h.status != 0 && sentinelOf(h.status) == nil {
		return h, abiErrorf("output status %d: want 0 or -1..-6", h.status)
	}
	h.flags = le.Uint32(b[8:])
	if h.flags&^(FlagClose|FlagState) != 0 {
		return h, abiErrorf("output flags %#x: only bits 0 and 1 are defined", h.flags)
	}
	nrec := le.Uint32(b[12:])
	if nrec > uint32(caps.Records) {
		return h, abiErrorf("%d records exceed the cap of %d", nrec, caps.Records)
	}
	h.nrec = int(nrec)
	if le.Uint64(b[40:]) != 0 {
		return h, abiErrorf("output bytes 40..47 are not zero")
	}
	lens := [6]uint32{le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[24:]), le.Uint32(b[28:]), le.Uint32(b[32:]), le.Uint32(b[36:])}
	caps6 := [6]struct {
		name string
		max  int
	}{{"device id", caps.DeviceID}, {"ack", caps.Reply}, {"reject", caps.Reply}, {"message", caps.Output}, {"state", stateMax}, {"records", caps.Output}}
	total := uint64(OutputHeaderSize)
	for i, n := range lens {
		if uint64(n) > uint64(caps6[i].max) {
			if i == 4 {
				return h, abiErrorf("state of %d bytes exceeds state_max %d", n, stateMax)
			}
			return h, abiErrorf("%s of %d bytes exceeds the cap of %d", caps6[i].name, n, caps6[i].max)
		}
		total += uint64(n)
	}
	if total != uint64(len(b)) {
		return h, abiErrorf("output sections add up to %d bytes, the output is %d", total, len(b))
	}
	off := uint32(OutputHeaderSize)
	sec := func(n uint32) []byte {
		s := b[off : off+n : off+n]
		off += n
		return s
	}
	h.device, h.ack, h.reject, h.message, h.state, h.records = sec(lens[0]), sec(lens[1]), sec(lens[2]), sec(lens[3]), sec(lens[4]), sec(lens[5])
	if len(h.message) > maxMessageBytes {
		h.message = h.message[:maxMessageBytes]
	}
	if h.nrec == 0 && len(h.records) != 0 {
		return h, abiErrorf("0 records in %d bytes of records", len(h.records))
	}
	return h, nil
}

// recordDecoder turns records into signals. It interns attribute names and
// DTCs so steady traffic does not allocate them; one is used by one
// goroutine at a time (it belongs to an instance).
type recordDecoder struct {
	names map[string]string
}

const maxInterned = 4096

func (d *recordDecoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string, 64)
	}
	if len(d.names) < maxInterned {
		d.names[s] = s
	}
	return s
}

// reader reads a record's bytes; a read past the end sets short.
type reader struct {
	b     []byte
	off   int
	short bool
}

func (r *reader) take(n int) []byte {
	if r.short || n > len(r.b)-r.off {
		r.short = true
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() byte {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if s := r.take(2); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// stampSeconds marks a record without a device time whose server time is
// truncated to the second (record byte 9 = 1); the session replaces it.
var stampSeconds = time.Unix(0, 1).UTC()

// fieldsMask: the canonical field bits a record may set (ts and 2..15).
const fieldsMask = 0xfffd

// decode reads n records from b into dst (appended) with the caps. A
// record without a device time has a zero TS. Layout and cap violations
// are *abiError; values a device's data made unusable (short OBD data, a
// non-finite scaled OBD value) wrap plugins.ErrMalformed.
func (d *recordDecoder) decode(dst []signal.Signal, b []byte, n int, caps *Caps) ([]signal.Signal, error) {
	off := 0
	for i := range n {
		if len(b)-off < recordHeaderSize {
			return dst, abiErrorf("record %d: %d bytes left, a record header is %d", i, len(b)-off, recordHeaderSize)
		}
		recLen := binary.LittleEndian.Uint32(b[off:])
		if recLen < recordHeaderSize || uint64(recLen) > uint64(len(b)-off) {
			return dst, abiErrorf("record %d: rec_len %d outside %d..%d", i, recLen, recordHeaderSize, len(b)-off)
		}
		s, err := d.record(b[off:off+int(recLen)], caps)
		if err != nil {
			return dst, fmt.Errorf("record %d: %w", i, err)
		}
		dst = append(dst, s)
		off += int(recLen)
	}
	if off != len(b) {
		return dst, abiErrorf("%d bytes after the last record", len(b)-off)
	}
	return dst, nil
}

func (d *recordDecoder) record(b []byte, caps *Caps) (signal.Signal, error) {
	s := signal.New("", time.Time{})
	s.TS = time.Time{}
	r := reader{b: b, off: 4}
	mask := binary.LittleEndian.Uint32(b[4:])
	if mask&^fieldsMask != 0 {
		return s, abiErrorf("field_mask %#x: only bits 0 and 2..15 may be set", mask)
	}
	r.off = 8
	valid := r.u8()
	if valid > 2 {
		return s, abiErrorf("valid %d: want 0, 1 or 2", valid)
	}
	s.Valid = signal.Flag(valid)
	stamp := r.u8()
	if stamp > 1 {
		return s, abiErrorf("stamp %d: want 0 (server time to the ms) or 1 (to the second)", stamp)
	}
	nAttrs, nDTCs, nOBD := int(r.u16()), int(r.u16()), int(r.u16())
	switch {
	case nAttrs > caps.Attrs:
		return s, abiErrorf("%d attrs exceed the cap of %d", nAttrs, caps.Attrs)
	case nDTCs > caps.DTCs:
		return s, abiErrorf("%d DTCs exceed the cap of %d", nDTCs, caps.DTCs)
	case nOBD > caps.OBD:
		return s, abiErrorf("%d OBD items exceed the cap of %d", nOBD, caps.OBD)
	}
	for f := range 16 {
		if mask&(1<<f) == 0 {
			continue
		}
		v := r.u64()
		if f == int(signal.FieldTS) {
			ms := int64(v)
			if ms < signal.MinTime.UnixMilli() || ms >= signal.EndTime.UnixMilli() {
				return s, fmt.Errorf("%w: ts %d ms is outside %s..%s", plugins.ErrMalformed, ms,
					signal.MinTime.Format(time.DateOnly), signal.EndTime.Format(time.DateOnly))
			}
			s.TS = time.UnixMilli(ms).UTC()
			continue
		}
		s.SetNumber(signal.Field(f), math.Float64frombits(v))
	}
	if stamp == 1 && mask&1 == 0 {
		s.TS = stampSeconds
	}
	if nAttrs+nOBD > 0 {
		s.Attrs = make(map[string]any, nAttrs+nOBD)
	}
	for i := range nAttrs {
		kind, nameLen := r.u8(), int(r.u8())
		name := r.take(nameLen)
		if r.short {
			break
		}
		if !attrName(name) {
			return s, abiErrorf("attr %d: name %q: want [a-z0-9_]+ of at most %d bytes", i, name, maxAttrNameBytes)
		}
		key := d.intern(name)
		if _, dup := s.Attrs[key]; dup {
			return s, abiErrorf("attr %q set twice", key)
		}
		switch kind {
		case 1:
			s.Attrs[key] = math.Float64frombits(r.u64())
		case 2:
			s.Attrs[key] = int64(r.u64())
		case 3:
			switch r.u8() {
			case 0:
				s.Attrs[key] = false
			case 1:
				s.Attrs[key] = true
			default:
				if !r.short {
					return s, abiErrorf("attr %q: bool byte not 0 or 1", key)
				}
			}
		case 4:
			n := int(r.u16())
			if n > maxAttrString {
				return s, abiErrorf("attr %q: string of %d bytes exceeds %d", key, n, maxAttrString)
			}
			if v := r.take(n); v != nil {
				s.Attrs[key] = string(v)
			}
		default:
			return s, abiErrorf("attr %q: kind %d: want 1 (f64), 2 (i64), 3 (bool) or 4 (string)", key, kind)
		}
	}
	if nDTCs > 0 && !r.short {
		s.DTCs = make([]string, 0, nDTCs)
	}
	for i := 0; i < nDTCs && !r.short; i++ {
		code := r.take(int(r.u8()))
		if r.short {
			break
		}
		if len(code) == 0 || len(code) > maxDTCBytes || !printableASCII(code) {
			return s, abiErrorf("DTC %d %q: want 1..%d printable ASCII bytes", i, code, maxDTCBytes)
		}
		s.DTCs = append(s.DTCs, d.intern(code))
	}
	for i := 0; i < nOBD && !r.short; i++ {
		var (
			v   obd2.Value
			err error
		)
		switch kind := r.u8(); kind {
		case 1:
			pid := r.u8()
			data := r.take(int(r.u8()))
			if r.short {
				break
			}
			v, err = obd2.Decode(pid, data)
		case 2:
			pid := r.u8()
			x := math.Float64frombits(r.u64())
			if r.short {
				break
			}
			v, err = obd2.Scaled(pid, x)
		default:
			if !r.short {
				return s, abiErrorf("OBD item %d: kind %d: want 1 (raw) or 2 (scaled)", i, kind)
			}
		}
		if r.short {
			break
		}
		if err != nil {
			return s, fmt.Errorf("%w: OBD item %d: %w", plugins.ErrMalformed, i, err)
		}
		v.Apply(&s)
	}
	if r.short {
		return s, abiErrorf("rec_len %d ends inside the record's content", len(b))
	}
	if r.off != len(b) {
		return s, abiErrorf("rec_len %d, the content ends at %d", len(b), r.off)
	}
	return s, nil
}

func attrName(b []byte) bool {
	if len(b) == 0 || len(b) > maxAttrNameBytes {
		return false
	}
	for _, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// Output is a parsed fc_decode output (ABI.md "Output"). Records carry
// only what the guest wrote: a zero TS when the record has no device time
// (ServerSeconds[i] then says whether the host stamps it with the receive
// time truncated to the second rather than the millisecond), no DeviceID,
// Recv, Protocol or Frame (the host sets them).
type Output struct {
	ServerSeconds []bool
	Status        int32
	Flags         uint32
	Device        []byte
	Ack           []byte
	Reject        []byte
	Message       []byte
	State         []byte
	Records       []signal.Signal
}

// ParseOutput validates output bytes against the caps (Caps zero fields:
// the defaults; state_max is taken as Caps.State) and returns them parsed,
// copied out of b. A layout or cap violation wraps ErrABI; a value the
// device's data made unusable wraps plugins.ErrMalformed.
func ParseOutput(b []byte, caps Caps) (Output, error) {
	caps = caps.withDefaults()
	h, err := parseHeader(b, &caps, caps.State)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %w", ErrABI, err)
	}
	var d recordDecoder
	recs, err := d.decode(nil, h.records, h.nrec, &caps)
	if err != nil {
		var ae *abiError
		if errors.As(err, &ae) {
			return Output{}, fmt.Errorf("%w: %w", ErrABI, err)
		}
		return Output{}, err
	}
	secs := make([]bool, len(recs))
	for i := range recs {
		if recs[i].TS.Equal(stampSeconds) {
			recs[i].TS, secs[i] = time.Time{}, true
		}
	}
	clone := func(s []byte) []byte { return append([]byte(nil), s...) }
	return Output{Status: h.status, Flags: h.flags, Device: clone(h.device), Ack: clone(h.ack),
		Reject: clone(h.reject), Message: clone(h.message), State: clone(h.state), Records: recs, ServerSeconds: secs}, nil
}

// validText reports whether b is valid UTF-8 without NUL (a device id).
func validText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

// isABI reports whether err is (or wraps) an ABI layout or cap violation.
func isABI(err error) bool {
	var ae *abiError
	return errors.As(err, &ae)
}
