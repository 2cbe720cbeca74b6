package loadgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// teltonika speaks codec 8 over TCP: an IMEI login answered with 0x01,
// then AVL frames answered with the record count (4 bytes).
type teltonika struct{}

func init() { registerCodec(teltonika{}) }

func (teltonika) Name() string              { return "teltonika" }
func (teltonika) Resolution() time.Duration { return time.Millisecond }

// MaxPerFrame: the count is one byte; 255 records of ~45 bytes fit the
// default 64 KiB frame cap easily.
func (teltonika) MaxPerFrame() int { return 255 }

func (teltonika) Hello(imei string, _ uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(imei)))
	return append(b, imei...)
}

func (teltonika) ReadHelloAck(r *bufio.Reader) error {
	b, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("reading teltonika login reply: %w", err)
	}
	if b != 0x01 {
		return &ErrNack{Got: fmt.Sprintf("login reply 0x%02x", b)}
	}
	return nil
}

func (teltonika) Encode(dst []byte, _ string, _ uint16, recs []Record, corrupt bool) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // preamble, data length (patched below)
	data := len(dst)
	dst = append(dst, 0x08, byte(len(recs)))
	for _, r := range recs {
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.TS.UnixMilli()))
		dst = append(dst, 0) // priority
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(math.Round(r.Lon*1e7))))
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(math.Round(r.Lat*1e7))))
		dst = binary.BigEndian.AppendUint16(dst, uint16(int16(math.Round(r.Alt))))
		dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Heading)))
		dst = append(dst, byte(r.Sats))
		dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Speed)))
		ign := byte(0)
		if r.Speed > 0 {
			ign = 1
		}
		if e := r.Engine; e != nil {
			ign = 0
			if e.Ignition {
				ign = 1
			}
			motion := byte(0)
			if r.Speed > 0 {
				motion = 1
			}
			dst = append(dst, 0, 7) // event io id, total io count
			// 1-byte IOs: ignition, movement, coolant (IO 32, signed °C)
			dst = append(dst, 3, 239, ign, 240, motion, 32, byte(int8(math.Round(e.Coolant))))
			dst = append(dst, 3, 66) // 2-byte IOs: external voltage (mV), RPM (IO 36), HDOP×10 (IO 182)
			dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Volt*1000)))
			dst = append(dst, 36)
			dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(e.RPM)))
			dst = append(dst, 182)
			dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(e.HDOP*10)))
		} else {
			dst = append(dst, 0, 4)                  // event io id, total io count
			dst = append(dst, 2, 239, ign, 240, ign) // 1-byte IOs: ignition, movement
			dst = append(dst, 1, 66)                 // 2-byte IOs: external voltage (mV)
			dst = binary.BigEndian.AppendUint16(dst, uint16(math.Round(r.Volt*1000)))
		}
		dst = append(dst, 1, 16) // 4-byte IOs: total odometer (m)
		dst = binary.BigEndian.AppendUint32(dst, uint32(math.Round(r.Odo*1000)))
		dst = append(dst, 0) // no 8-byte IOs
	}
	dst = append(dst, byte(len(recs)))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(len(dst)-data))
	crc := uint32(teltonikaCRC(dst[data:]))
	if corrupt {
		crc ^= 0x5a5a
	}
	return binary.BigEndian.AppendUint32(dst, crc)
}

func (teltonika) ReadAck(r *bufio.Reader, _ uint16, n int) error {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("reading teltonika ack: %w", err)
	}
	if got := binary.BigEndian.Uint32(b[:]); got != uint32(n) {
		return &ErrNack{Got: fmt.Sprintf("ack of %d records for a frame of %d", got, n)}
	}
	return nil
}

// teltonikaCRC is CRC-16/IBM (reflected 0xA001, init 0), written here so
// the device side does not borrow the decoder's implementation.
func teltonikaCRC(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc>>8 ^ crcIBM[byte(crc)^c]
	}
	return crc
}

var crcIBM = func() (t [256]uint16) {
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
