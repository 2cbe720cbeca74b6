package main

// Wialon IPS 1.1 and 2.0 parsing as plain functions of the frame text and
// the session's state: no SDK types, so every rule is tested natively.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Protocol versions kept in the state blob.
const (
	v11 byte = 1 // Wialon IPS 1.1: no checksums, no version field
	v20 byte = 2 // Wialon IPS 2.0: CRC-16 in L, SD, D, B, M; version in L and UDP packets
)

// Caps of what a frame may carry, from the decoder ABI's host defaults.
const (
	maxIMEI    = 64   // bytes of a login id
	maxAttrs   = 64   // attrs per record (host default cap)
	maxString  = 1024 // bytes of a string attr
	maxRecords = 1024 // records per frame (host default cap)
)

// failure is a refused frame: the sentinel kind, the reason and the
// negative answer the protocol defines for it (written before the close).
type failure struct {
	kind   kind
	msg    string
	answer string
}

type kind int

const (
	kMalformed kind = iota
	kChecksum
	kNoDevice
	kUnsupported
	kTooLarge
)

func (f *failure) Error() string { return f.msg }

func fail(k kind, answer, format string, args ...any) *failure {
	return &failure{kind: k, msg: fmt.Sprintf(format, args...), answer: answer}
}

// state is the session's state blob: the protocol version of the login and
// the login id.
type state struct {
	version byte
	imei    string
}

func parseState(b []byte) state {
	if len(b) < 2 || (b[0] != v11 && b[0] != v20) {
		return state{}
	}
	return state{version: b[0], imei: string(b[1:])}
}

func (s state) bytes() []byte { return append([]byte{s.version}, s.imei...) }

// packet is one message split into its parts: "[version;][imei]#type#body".
type packet struct {
	version string // from the UDP/2.0 prefix "2.0;IMEI", else ""
	imei    string // from the prefix, else ""
	typ     string
	body    string
}

// splitPacket splits a message without its line end.
func splitPacket(s string) (packet, error) {
	i := strings.IndexByte(s, '#')
	if i < 0 {
		return packet{}, fail(kMalformed, "", "no '#' in %.40q", s)
	}
	var p packet
	if pre := s[:i]; pre != "" {
		if v, id, ok := strings.Cut(pre, ";"); ok {
			if !isVersion(v) {
				return packet{}, fail(kMalformed, "", "prefix version %.20q is not d.d", v)
			}
			p.version, pre = v, id
		}
		if err := checkID(pre); err != nil {
			return packet{}, err
		}
		p.imei = pre
	}
	rest := s[i+1:]
	j := strings.IndexByte(rest, '#')
	if j <= 0 {
		return packet{}, fail(kMalformed, "", "no packet type in %.40q", s)
	}
	p.typ, p.body = rest[:j], rest[j+1:]
	for k := 0; k < len(p.typ); k++ {
		if c := p.typ[k]; c < 'A' || c > 'Z' {
			return packet{}, fail(kMalformed, "", "packet type %.10q", p.typ)
		}
	}
	return p, nil
}

func isVersion(v string) bool {
	return len(v) == 3 && v[0] >= '0' && v[0] <= '9' && v[1] == '.' && v[2] >= '0' && v[2] <= '9'
}

func checkID(id string) error {
	if id == "" || len(id) > maxIMEI {
		return fail(kMalformed, "", "device id of %d bytes (1–%d)", len(id), maxIMEI)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == ';' || c == '#' {
			return fail(kMalformed, "", "device id %.70q is not printable ASCII", id)
		}
	}
	return nil
}

// CRC16 is the Wialon IPS 2.0 checksum: CRC-16/ARC (polynomial 0x8005
// reflected, initial value 0, no final XOR).
func CRC16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i])
		for k := 0; k < 8; k++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// checkCRC splits "content<sep>CRC" at the last sep and verifies the CRC
// (hex, 1–4 digits, an optional 0x) over content including sep.
func checkCRC(body string, sep byte, answerStructure, answerCRC string) (string, error) {
	i := strings.LastIndexByte(body, sep)
	if i < 0 {
		return "", fail(kMalformed, answerStructure, "no checksum field")
	}
	field := body[i+1:]
	h := strings.TrimPrefix(strings.TrimPrefix(field, "0x"), "0X")
	if h == "" || len(h) > 4 {
		return "", fail(kMalformed, answerStructure, "checksum field %.10q is not 1–4 hex digits", field)
	}
	want, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return "", fail(kMalformed, answerStructure, "checksum field %.10q is not hex", field)
	}
	if got := CRC16(body[:i+1]); got != uint16(want) {
		return "", fail(kChecksum, answerCRC, "CRC-16 %04X, packet says %04X", got, want)
	}
	return body[:i], nil
}

// login is a parsed #L# packet.
type login struct {
	version byte
	imei    string
}

// parseLogin reads "imei;password" (1.1) or "2.0;imei;password;crc" (2.0).
func parseLogin(body string) (login, error) {
	f := strings.Split(body, ";")
	if len(f) > 0 && strings.IndexByte(f[0], '.') >= 0 {
		if !isVersion(f[0]) {
			return login{}, fail(kMalformed, "#AL#0\r\n", "login version %.10q", f[0])
		}
		if len(f) != 4 {
			return login{}, fail(kMalformed, "#AL#0\r\n", "2.0 login of %d fields, want version;imei;password;crc", len(f))
		}
		if _, err := checkCRC(body, ';', "#AL#0\r\n", "#AL#10\r\n"); err != nil {
			return login{}, err
		}
		if err := checkID(f[1]); err != nil {
			return login{}, withAnswer(err, "#AL#0\r\n")
		}
		return login{version: v20, imei: f[1]}, nil
	}
	if len(f) > 2 {
		return login{}, fail(kMalformed, "#AL#0\r\n", "1.1 login of %d fields, want imei;password", len(f))
	}
	if err := checkID(f[0]); err != nil {
		return login{}, withAnswer(err, "#AL#0\r\n")
	}
	return login{version: v11, imei: f[0]}, nil
}

func withAnswer(err error, answer string) error {
	var f *failure
	if errors.As(err, &f) {
		g := *f
		g.answer = answer
		return &g
	}
	return err
}

// value is one attr of a record.
type value struct {
	name string
	kind byte // 'i' int64, 'f' float64, 'b' bool, 's' string
	i    int64
	f    float64
	b    bool
	s    string
}

// record is one decoded message.
type record struct {
	ts                      int64 // Unix ms, when hasTS
	hasTS                   bool
	lat, lon, speed, course float64 // NaN: absent
	alt, sats, hdop         float64
	valid                   int // -1 unknown, 0 false, 1 true
	inputs, outputs         int64
	hasInputs, hasOutputs   bool
	driverID                string
	archive                 bool   // a black box (#B#) message
	message                 string // a message to the driver (#M#)
	attrs                   []value
}

func newRecord() record {
	nan := math.NaN()
	return record{lat: nan, lon: nan, speed: nan, course: nan, alt: nan, sats: nan, hdop: nan, valid: -1}
}

// answers are the negative answers of SD and D packets by error kind.
type answers struct {
	structure, time, coords, motion, sats, io, adc, params string
}

var (
	answersSD = answers{"#ASD#-1\r\n", "#ASD#0\r\n", "#ASD#10\r\n", "#ASD#11\r\n", "#ASD#12\r\n", "", "", ""}
	answersD  = answers{"#AD#-1\r\n", "#AD#0\r\n", "#AD#10\r\n", "#AD#11\r\n", "#AD#12\r\n", "#AD#13\r\n", "#AD#14\r\n", "#AD#15\r\n"}
	answersB  = answers{"#AB#0\r\n", "#AB#0\r\n", "#AB#0\r\n", "#AB#0\r\n", "#AB#0\r\n", "#AB#0\r\n", "#AB#0\r\n", "#AB#0\r\n"}
)

func absent(s string) bool { return s == "" || s == "NA" }

// parseRecord reads the fields of an SD message (date;time;lat;N;lon;E;
// speed;course;height;sats) or a D message (… ;hdop;inputs;outputs;adc;
// ibutton;params).
func parseRecord(msg string, a answers) (record, error) {
	f := strings.Split(msg, ";")
	if len(f) != 10 && len(f) != 16 {
		return record{}, fail(kMalformed, a.structure, "%d fields, want 10 (short data) or 16 (data)", len(f))
	}
	r := newRecord()
	var err error
	switch {
	case absent(f[0]) && absent(f[1]):
	case absent(f[0]) || absent(f[1]):
		return record{}, fail(kMalformed, a.time, "date %q with time %q: both or neither", f[0], f[1])
	default:
		t, err := parseTime(f[0], f[1])
		if err != nil {
			return record{}, fail(kMalformed, a.time, "%v", err)
		}
		r.ts, r.hasTS = t.UnixMilli(), true
	}
	if r.lat, err = coordinate(f[2], f[3], "NS", 90); err != nil {
		return record{}, fail(kMalformed, a.coords, "latitude: %v", err)
	}
	if r.lon, err = coordinate(f[4], f[5], "EW", 180); err != nil {
		return record{}, fail(kMalformed, a.coords, "longitude: %v", err)
	}
	if math.IsNaN(r.lat) != math.IsNaN(r.lon) {
		return record{}, fail(kMalformed, a.coords, "latitude %q;%q without longitude %q;%q or the reverse", f[2], f[3], f[4], f[5])
	}
	for _, x := range []struct {
		s        string
		dst      *float64
		what     string
		lo, hi   float64
		negative bool
	}{
		{f[6], &r.speed, "speed", 0, 2000, false},
		{f[7], &r.course, "course", 0, 360, false},
		{f[8], &r.alt, "height", -12000, 100000, true},
	} {
		if absent(x.s) {
			continue
		}
		v, ok := decimal(x.s)
		if !ok || v < x.lo || v > x.hi {
			return record{}, fail(kMalformed, a.motion, "%s %.20q", x.what, x.s)
		}
		*x.dst = v
	}
	if !absent(f[9]) {
		n, err := strconv.ParseUint(f[9], 10, 8)
		if err != nil {
			return record{}, fail(kMalformed, a.sats, "satellites %.20q", f[9])
		}
		r.sats = float64(n)
		// Wialon IPS has no fix flag: as Traccar, 3 satellites or more is a fix.
		if n >= 3 {
			r.valid = 1
		} else {
			r.valid = 0
		}
	}
	if len(f) == 10 {
		return r, nil
	}
	if !absent(f[10]) {
		v, ok := decimal(f[10])
		if !ok || v < 0 || v > 1000 {
			return record{}, fail(kMalformed, a.sats, "hdop %.20q", f[10])
		}
		r.hdop = v
	}
	for k, dst := range []*int64{&r.inputs, &r.outputs} {
		if absent(f[11+k]) {
			continue
		}
		v, err := strconv.ParseInt(f[11+k], 10, 64)
		if err != nil || v < 0 {
			return record{}, fail(kMalformed, a.io, "inputs/outputs %.20q", f[11+k])
		}
		*dst = v
		if k == 0 {
			r.hasInputs = true
		} else {
			r.hasOutputs = true
		}
	}
	if !absent(f[13]) {
		for k, s := range strings.Split(f[13], ",") {
			v, ok := decimal(s)
			if !ok {
				return record{}, fail(kMalformed, a.adc, "adc %d %.20q", k+1, s)
			}
			if len(r.attrs) >= maxAttrs-8 {
				return record{}, fail(kMalformed, a.adc, "more than %d adc values", maxAttrs-8)
			}
			r.attrs = append(r.attrs, value{name: "adc" + strconv.Itoa(k+1), kind: 'f', f: v})
		}
	}
	if !absent(f[14]) {
		if len(f[14]) > maxString {
			return record{}, fail(kMalformed, a.structure, "ibutton of %d bytes", len(f[14]))
		}
		r.driverID = f[14]
	}
	if !absent(f[15]) {
		if err := r.params(f[15], a.params); err != nil {
			return record{}, err
		}
	}
	return r, nil
}

// params reads "NAME:TYPE:VALUE,…" (type 1 integer, 2 real, 3 string).
// Names become attr names (see attrName). Numbers in any type become
// numbers, true/false booleans, the rest strings (as Traccar does). What
// does not fit in the record's attrs is kept verbatim in attr params_more.
func (r *record) params(s, answer string) error {
	budget := maxAttrs - len(r.attrs) - 5 // input, output, driver_id, archive, params_more
	var more []string
	for _, p := range strings.Split(s, ",") {
		if p == "" {
			continue
		}
		name, rest, ok1 := strings.Cut(p, ":")
		typ, raw, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || name == "" || len(typ) != 1 || typ[0] < '1' || typ[0] > '3' {
			return fail(kMalformed, answer, "param %.40q is not NAME:TYPE:VALUE with TYPE 1, 2 or 3", p)
		}
		if len(raw) > maxString {
			return fail(kMalformed, answer, "param %.40q: value of %d bytes", name, len(raw))
		}
		if budget <= 0 {
			more = append(more, p)
			continue
		}
		v := value{name: attrName(name)}
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil && typ == "1" {
			v.kind, v.i = 'i', n
		} else if f, ok := decimal(raw); ok {
			v.kind, v.f = 'f', f
		} else if strings.EqualFold(raw, "true") || strings.EqualFold(raw, "false") {
			v.kind, v.b = 'b', strings.EqualFold(raw, "true")
		} else {
			v.kind, v.s = 's', raw
		}
		r.attrs = append(r.attrs, v)
		budget--
	}
	if len(more) > 0 {
		m := strings.Join(more, ",")
		if len(m) > maxString {
			return fail(kMalformed, answer, "%d params over the %d attrs of a record: %d bytes left over", len(more), maxAttrs, len(m))
		}
		r.attrs = append(r.attrs, value{name: "params_more", kind: 's', s: m})
	}
	return nil
}

// attrName turns a parameter name into an attr name: ASCII letters
// lowercased, digits and '_' kept, any other ASCII byte '_'. A name with
// non-ASCII letters (Cyrillic, …) becomes "x" and the hex of its UTF-8
// bytes, so it stays one distinct attr. At most 64 bytes.
func attrName(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			h := "x" + fmt.Sprintf("%x", s)
			return h[:min(len(h), 64)]
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	return string(b[:min(len(b), 64)])
}

// decimal parses a plain decimal number ("-12", "0.5", "12."), refusing
// what strconv also takes (NaN, Inf, hex, exponents, '_').
func decimal(s string) (float64, bool) {
	if s == "" || len(s) > 40 {
		return 0, false
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		case c == '-' && i == 0:
		default:
			return 0, false
		}
	}
	if digits == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && !math.IsInf(v, 0)
}

// parseTime reads DDMMYY and HHMMSS (2.1 adds .nnnnnnnnn), UTC.
func parseTime(d, t string) (time.Time, error) {
	frac := ""
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t, frac = t[:i], t[i+1:]
	}
	if len(d) != 6 || len(t) != 6 || len(frac) > 9 {
		return time.Time{}, fmt.Errorf("date %.10q time %.20q: want DDMMYY and HHMMSS", d, t)
	}
	n := func(s string) int {
		v := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return -1
			}
			v = v*10 + int(s[i]-'0')
		}
		return v
	}
	day, mon, yy := n(d[:2]), n(d[2:4]), n(d[4:])
	h, mi, sec := n(t[:2]), n(t[2:4]), n(t[4:])
	ns := 0
	if frac != "" {
		if ns = n(frac); ns < 0 {
			return time.Time{}, fmt.Errorf("time fraction %.10q", frac)
		}
		for k := len(frac); k < 9; k++ {
			ns *= 10
		}
	}
	ts := time.Date(2000+yy, time.Month(mon), day, h, mi, sec, ns, time.UTC)
	if day < 1 || mon < 1 || mon > 12 || yy < 0 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || ts.Day() != day {
		return time.Time{}, fmt.Errorf("date %s time %s is not a time", d, t)
	}
	return ts, nil
}

// coordinate reads DDMM.MM… (DDDMM.MM… for longitude) and its hemisphere;
// both NA (or empty): absent.
func coordinate(v, hemi, signs string, max float64) (float64, error) {
	if absent(v) && absent(hemi) {
		return math.NaN(), nil
	}
	if len(hemi) != 1 || strings.IndexByte(signs, hemi[0]) < 0 {
		return 0, fmt.Errorf("hemisphere %.5q, want one of %s", hemi, signs)
	}
	dot := strings.IndexByte(v, '.')
	if dot < 0 {
		dot = len(v)
	}
	if dot < 3 {
		return 0, fmt.Errorf("%.30q is not (D)DDMM.MM", v)
	}
	deg, ok1 := decimal(v[:dot-2])
	min, ok2 := decimal(v[dot-2:])
	// Minutes of 60 or more are not valid DDMM.MM, but a real device sends
	// them (a Traccar capture: 5364.0167): taken arithmetically, as Traccar
	// does, and left to the quality rules.
	if !ok1 || !ok2 || strings.IndexByte(v, '-') >= 0 {
		return 0, fmt.Errorf("%.30q is not (D)DDMM.MM", v)
	}
	x := deg + min/60
	if x > max {
		return 0, fmt.Errorf("%.30q is beyond %v°", v, max)
	}
	if hemi[0] == 'S' || hemi[0] == 'W' {
		x = -x
	}
	return x, nil
}
