package loadgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// ruptela speaks the Ruptela protocol's records command (1): no login
// (every packet carries the IMEI), each packet answered with
// 00 02 64 01 13 BC (command 100, "received").
type ruptela struct{}

func init() { registerCodec(ruptela{}) }

func (ruptela) Name() string              { return "ruptela" }
func (ruptela) Resolution() time.Duration { return time.Second }

// MaxPerFrame keeps a packet under the 1 KiB Ruptela devices send at most
// (37 bytes per record as encoded here).
func (ruptela) MaxPerFrame() int { return 25 }

func (ruptela) Hello(string, uint16) []byte { return nil }

func (ruptela) ReadHelloAck(*bufio.Reader) error { return nil }

// ruptelaAck is the server's answer to a records packet.
var ruptelaAck = []byte{0x00, 0x02, 0x64, 0x01, 0x13, 0xbc}

func (ruptela) Encode(dst []byte, imei string, _ uint16, recs []Record, corrupt bool) []byte {
	id, _ := strconv.ParseUint(imei, 10, 64) // the generator's IMEIs are 15 digits
	start := len(dst)
	dst = append(dst, 0, 0) // length, patched below
	body := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, 1, 0, byte(len(recs))) // command 1, records left, count
	for _, r := range recs {
		dst = binary.BigEndian.AppendUint32(dst, uint32(r.TS.Unix()))
		dst = append(dst, 0, 0) // timestamp extension, priority
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(math.Round(r.Lon*1e7))))
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(math.Round(r.Lat*1e7))))
		dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(max(r.Alt, 0)*10)))
		dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Heading*100)))
		dst = append(dst, byte(r.Sats))
		dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Speed)))
		dst = append(dst, 10, 0) // HDOP 1.0, event 0
		ign := byte(0)
		if r.Speed > 0 {
			ign = 1
		}
		dst = append(dst, 1, 251, ign) // 1-byte IOs: ignition
		dst = append(dst, 1, 29)       // 2-byte IOs: power supply (mV)
		dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Volt*1000)))
		dst = append(dst, 1, 65) // 4-byte IOs: odometer (m)
		dst = binary.BigEndian.AppendUint32(dst, uint32(math.Round(r.Odo*1000)))
		dst = append(dst, 0) // no 8-byte IOs
	}
	binary.BigEndian.PutUint16(dst[start:], uint16(len(dst)-body))
	crc := ruptelaCRC(dst[body:])
	if corrupt {
		crc ^= 0x5a5a
	}
	return binary.BigEndian.AppendUint16(dst, crc)
}

func (ruptela) ReadAck(r *bufio.Reader, _ uint16, _ int) error {
	var b [6]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("reading ruptela ack: %w", err)
	}
	if string(b[:]) != string(ruptelaAck) {
		return &ErrNack{Got: fmt.Sprintf("ack % x", b)}
	}
	return nil
}

// ruptelaCRC is CRC-16/Kermit (reflected 0x8408, init 0), written here so
// the device side does not borrow the decoder's implementation.
func ruptelaCRC(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
