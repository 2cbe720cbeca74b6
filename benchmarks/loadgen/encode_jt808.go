package loadgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// jt808 speaks JT/T 808-2019 (the version with a 10-byte BCD phone, which
// holds a 15-digit IMEI): a registration (0x0100, answered 0x8100 with an
// auth code) and an authentication (0x0102, answered 0x8001), then one
// location report (0x0200) per frame of one record, or a batch (0x0704)
// for more, each answered with the platform general response 0x8001 that
// names the frame's serial and message id.
type jt808 struct{}

func init() { registerCodec(jt808{}) }

func (jt808) Name() string              { return "jt808" }
func (jt808) Resolution() time.Duration { return time.Second }

// MaxPerFrame: a body holds at most 1023 bytes (10 bits of length);
// 0x0704 items are 2 + 34 bytes.
func (jt808) MaxPerFrame() int { return 28 }

const (
	jt808Version = 1 // 2019
	jt808Props   = 0x4000
)

var jt808Zone = time.FixedZone("GMT+8", 8*3600)

// jt808Phone is the IMEI as the 20-digit BCD terminal phone number.
func jt808Phone(imei string) []byte {
	digits := fmt.Sprintf("%020s", imei)
	var p [10]byte
	for i := range p {
		p[i] = (digits[2*i]-'0')<<4 | (digits[2*i+1] - '0')
	}
	return p[:]
}

// jt808Message appends one escaped message to dst; corrupt spoils its XOR.
func jt808Message(dst []byte, id uint16, imei string, serial uint16, body []byte, corrupt bool) []byte {
	m := binary.BigEndian.AppendUint16(make([]byte, 0, 20+len(body)), id)
	m = binary.BigEndian.AppendUint16(m, jt808Props|uint16(len(body)))
	m = append(m, jt808Version)
	m = append(m, jt808Phone(imei)...)
	m = binary.BigEndian.AppendUint16(m, serial)
	m = append(m, body...)
	var x byte
	for _, c := range m {
		x ^= c
	}
	if corrupt {
		x ^= 0x5a
	}
	m = append(m, x)
	dst = append(dst, 0x7e)
	for _, c := range m {
		switch c {
		case 0x7e:
			dst = append(dst, 0x7d, 0x02)
		case 0x7d:
			dst = append(dst, 0x7d, 0x01)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, 0x7e)
}

func (jt808) Hello(imei string, serial uint16) []byte {
	// 0x0100: province, city, maker (5), model (30 in 2019), terminal id
	// (30), plate colour, plate.
	reg := make([]byte, 0, 76)
	reg = append(reg, 0, 0, 0, 0)
	reg = append(reg, "FLEET"...)
	reg = append(reg, make([]byte, 30)...)
	reg = append(reg, fmt.Sprintf("%-30s", imei)...)
	reg = append(reg, 0)
	b := jt808Message(nil, 0x0100, imei, serial, reg, false)
	// 0x0102 (2019): code length, code, IMEI (15), software version (20).
	auth := append([]byte{byte(len(imei))}, imei...)
	auth = append(auth, fmt.Sprintf("%-15s", imei)...)
	auth = append(auth, fmt.Sprintf("%-20s", "loadgen")...)
	return jt808Message(b, 0x0102, imei, serial+1, auth, false)
}

// ReadHelloAck reads the registration reply (0x8100, result 0) and the
// general response to the authentication (0x8001 naming 0x0102).
func (jt808) ReadHelloAck(r *bufio.Reader) error {
	id, body, err := readJT808(r)
	if err != nil {
		return err
	}
	if id != 0x8100 || len(body) < 3 || body[2] != 0 {
		return &ErrNack{Got: fmt.Sprintf("jt808 registration reply 0x%04x % x", id, body)}
	}
	id, body, err = readJT808(r)
	if err != nil {
		return err
	}
	if id != 0x8001 || len(body) != 5 || binary.BigEndian.Uint16(body[2:]) != 0x0102 || body[4] != 0 {
		return &ErrNack{Got: fmt.Sprintf("jt808 authentication reply 0x%04x % x", id, body)}
	}
	return nil
}

func jt808Location(dst []byte, rec Record) []byte {
	var status uint32 = 0x01 // ACC on
	if !rec.ZeroFix() {
		status |= 0x02
	}
	if rec.Lat < 0 {
		status |= 0x04
	}
	if rec.Lon < 0 {
		status |= 0x08
	}
	dst = binary.BigEndian.AppendUint32(dst, 0) // alarm
	dst = binary.BigEndian.AppendUint32(dst, status)
	dst = binary.BigEndian.AppendUint32(dst, uint32(math.Round(math.Abs(rec.Lat)*1e6)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(math.Round(math.Abs(rec.Lon)*1e6)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(math.Round(rec.Alt))))
	dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(rec.Speed*10)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(rec.Heading))%360)
	t := rec.TS.In(jt808Zone)
	for _, v := range []int{t.Year() % 100, int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()} {
		dst = append(dst, byte(v/10)<<4|byte(v%10))
	}
	dst = append(dst, 0x01, 4) // mileage, 1/10 km
	dst = binary.BigEndian.AppendUint32(dst, uint32(math.Round(rec.Odo*10)))
	return append(dst, 0x31, 1, byte(min(max(rec.Sats, 0), 255)))
}

func (jt808) Encode(dst []byte, imei string, serial uint16, recs []Record, corrupt bool) []byte {
	if len(recs) == 1 {
		return jt808Message(dst, 0x0200, imei, serial, jt808Location(nil, recs[0]), corrupt)
	}
	body := binary.BigEndian.AppendUint16(nil, uint16(len(recs)))
	body = append(body, 0) // normal, not blind-area, upload
	for _, rec := range recs {
		item := jt808Location(nil, rec)
		body = binary.BigEndian.AppendUint16(body, uint16(len(item)))
		body = append(body, item...)
	}
	return jt808Message(dst, 0x0704, imei, serial, body, corrupt)
}

// ReadAck reads the general response 0x8001 and checks that it names the
// frame's serial, its message id and result 0.
func (jt808) ReadAck(r *bufio.Reader, serial uint16, n int) error {
	id, body, err := readJT808(r)
	if err != nil {
		return err
	}
	want := uint16(0x0200)
	if n > 1 {
		want = 0x0704
	}
	if id != 0x8001 || len(body) != 5 || binary.BigEndian.Uint16(body) != serial || binary.BigEndian.Uint16(body[2:]) != want || body[4] != 0 {
		return &ErrNack{Got: fmt.Sprintf("jt808 reply 0x%04x % x, want 0x8001 for serial %d id 0x%04x", id, body, serial, want)}
	}
	return nil
}

// readJT808 reads one platform message (escaped, 0x7e-delimited), checks
// its XOR and returns its id and body.
func readJT808(r *bufio.Reader) (uint16, []byte, error) {
	if b, err := r.ReadByte(); err != nil {
		return 0, nil, fmt.Errorf("reading jt808 reply: %w", err)
	} else if b != 0x7e {
		return 0, nil, &ErrNack{Got: fmt.Sprintf("jt808 reply starting 0x%02x", b)}
	}
	raw, err := r.ReadBytes(0x7e)
	if err != nil {
		return 0, nil, fmt.Errorf("reading jt808 reply: %w", err)
	}
	raw = raw[:len(raw)-1]
	m := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == 0x7d && i+1 < len(raw) && (raw[i+1] == 1 || raw[i+1] == 2) {
			m = append(m, 0x7c+raw[i+1])
			i++
			continue
		}
		m = append(m, raw[i])
	}
	var x byte
	for _, c := range m {
		x ^= c
	}
	if x != 0 || len(m) < 13 {
		return 0, nil, &ErrNack{Got: fmt.Sprintf("jt808 reply % x with a bad XOR or length", m)}
	}
	props := binary.BigEndian.Uint16(m[2:])
	hl := 12
	if props&0x4000 != 0 {
		hl = 17
	}
	body := m[hl : len(m)-1]
	if len(body) != int(props&0x03FF) {
		return 0, nil, &ErrNack{Got: fmt.Sprintf("jt808 reply % x: body %d bytes, properties say %d", m, len(body), props&0x03FF)}
	}
	return binary.BigEndian.Uint16(m), body, nil
}
