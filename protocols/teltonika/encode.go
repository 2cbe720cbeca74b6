package teltonika

import (
	"encoding/binary"
	"time"
)

// Record is one AVL record for the encoders below: what a simulated
// device sends. Coordinates are degrees; IO holds 1-byte IO elements.
type Record struct {
	Time     time.Time
	Lat, Lon float64
	Alt      int16
	Angle    uint16
	Sats     uint8
	Speed    uint16 // km/h
	IO       map[uint8]uint8
}

// LoginFrame is the IMEI packet a device sends when it connects over TCP
// (the server answers 0x01 to accept it).
func LoginFrame(imei string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(imei)))
	return append(b, imei...)
}

// Codec8Frame builds a codec 8 TCP data frame (preamble, length, data,
// CRC-16/IBM) holding recs. The server acks it with the record count as a
// 4-byte big-endian integer. Tests and the load generator use it.
func Codec8Frame(recs ...Record) []byte {
	data := []byte{0x08, byte(len(recs))}
	for _, r := range recs {
		data = binary.BigEndian.AppendUint64(data, uint64(r.Time.UnixMilli()))
		data = append(data, 0) // priority
		data = binary.BigEndian.AppendUint32(data, uint32(int32(r.Lon*1e7)))
		data = binary.BigEndian.AppendUint32(data, uint32(int32(r.Lat*1e7)))
		data = binary.BigEndian.AppendUint16(data, uint16(r.Alt))
		data = binary.BigEndian.AppendUint16(data, r.Angle)
		data = append(data, r.Sats)
		data = binary.BigEndian.AppendUint16(data, r.Speed)
		// IO: event id 0, total count, then 1-byte elements only.
		n := byte(len(r.IO))
		data = append(data, 0, n, n)
		for id := 0; id < 256; id++ { // sorted, so equal records encode equally
			if v, ok := r.IO[uint8(id)]; ok {
				data = append(data, byte(id), v)
			}
		}
		data = append(data, 0, 0, 0) // no 2-, 4- or 8-byte elements
	}
	data = append(data, byte(len(recs)))
	frame := make([]byte, 8, 8+len(data)+4)
	binary.BigEndian.PutUint32(frame[4:], uint32(len(data)))
	frame = append(frame, data...)
	return binary.BigEndian.AppendUint32(frame, uint32(CRC16(data)))
}
