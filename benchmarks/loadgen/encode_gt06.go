package loadgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// gt06 speaks the Concox GT06 protocol: a login packet (0x01) with the
// IMEI in BCD, then GPS packets (0x10), each answered with a response
// packet echoing the protocol number and serial.
type gt06 struct{}

func init() { registerCodec(gt06{}) }

func (gt06) Name() string              { return "gt06" }
func (gt06) Resolution() time.Duration { return time.Second }
func (gt06) MaxPerFrame() int          { return 1 }

// gt06Packet frames content as 0x7878 | len | proto | content | serial |
// CRC-ITU | 0x0D0A.
func gt06Packet(dst []byte, proto byte, content []byte, serial uint16, corrupt bool) []byte {
	start := len(dst)
	dst = append(dst, 0x78, 0x78, byte(1+len(content)+2+2), proto)
	dst = append(dst, content...)
	dst = binary.BigEndian.AppendUint16(dst, serial)
	crc := gt06CRC(dst[start+2:])
	if corrupt {
		crc ^= 0x5a5a
	}
	dst = binary.BigEndian.AppendUint16(dst, crc)
	return append(dst, 0x0D, 0x0A)
}

func (gt06) Hello(imei string, serial uint16) []byte {
	digits := imei
	if len(digits)%2 == 1 {
		digits = "0" + digits
	}
	var id [8]byte
	for i := 0; i < len(id) && 2*i+1 < len(digits); i++ {
		id[i] = (digits[2*i]-'0')<<4 | (digits[2*i+1] - '0')
	}
	return gt06Packet(nil, 0x01, id[:], serial, false)
}

func (g gt06) ReadHelloAck(r *bufio.Reader) error { return readGT06Response(r, 0x01, -1) }

func (gt06) Encode(dst []byte, _ string, serial uint16, recs []Record, corrupt bool) []byte {
	for _, rec := range recs {
		t := rec.TS.UTC()
		c := make([]byte, 0, 18)
		c = append(c, byte(t.Year()-2000), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()))
		c = append(c, 0xC0|byte(min(rec.Sats, 15)))
		c = binary.BigEndian.AppendUint32(c, uint32(math.Round(math.Abs(rec.Lat)*1800000)))
		c = binary.BigEndian.AppendUint32(c, uint32(math.Round(math.Abs(rec.Lon)*1800000)))
		c = append(c, byte(min(math.Round(rec.Speed), 255)))
		cs := uint16(math.Round(rec.Heading)) & 0x03FF
		if rec.Lat >= 0 {
			cs |= 1 << 10
		}
		if rec.Lon < 0 {
			cs |= 1 << 11
		}
		if !rec.ZeroFix() {
			cs |= 1 << 12
		}
		c = binary.BigEndian.AppendUint16(c, cs)
		dst = gt06Packet(dst, 0x10, c, serial, corrupt)
	}
	return dst
}

func (gt06) ReadAck(r *bufio.Reader, serial uint16, _ int) error {
	return readGT06Response(r, 0x10, int(serial))
}

// readGT06Response reads one 0x7878 response and checks its protocol
// number and (when serial ≥ 0) its serial.
func readGT06Response(r *bufio.Reader, proto byte, serial int) error {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("reading gt06 response: %w", err)
	}
	if hdr[0] != 0x78 || hdr[1] != 0x78 || hdr[2] < 5 {
		return &ErrNack{Got: fmt.Sprintf("gt06 response header % x", hdr)}
	}
	rest := make([]byte, int(hdr[2])+2)
	if _, err := io.ReadFull(r, rest); err != nil {
		return fmt.Errorf("reading gt06 response: %w", err)
	}
	n := len(rest)
	gotSerial := int(binary.BigEndian.Uint16(rest[n-6:]))
	if rest[0] != proto || (serial >= 0 && gotSerial != serial) {
		return &ErrNack{Got: fmt.Sprintf("gt06 response protocol 0x%02x serial %d, want 0x%02x serial %d", rest[0], gotSerial, proto, serial)}
	}
	return nil
}

// gt06CRC is CRC-16/X-25 (reflected 0x1021, init and xorout 0xFFFF).
func gt06CRC(b []byte) uint16 {
	c := uint16(0xFFFF)
	for _, x := range b {
		c = c>>8 ^ crcX25[byte(c)^x]
	}
	return ^c
}

var crcX25 = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0x8408
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()
