package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// jsonl speaks fleetcore's newline-delimited canonical JSON: one record
// per line, each answered with {"ok": N}. A frame of n records is n
// pipelined lines; its ack is n ack lines.
type jsonl struct{}

func init() { registerCodec(jsonl{}) }

func (jsonl) Name() string                       { return "jsonl" }
func (jsonl) Resolution() time.Duration          { return time.Millisecond }
func (jsonl) MaxPerFrame() int                   { return 64 }
func (jsonl) Hello(string, uint16) []byte        { return nil }
func (jsonl) ReadHelloAck(r *bufio.Reader) error { return nil }

func (jsonl) Encode(dst []byte, imei string, _ uint16, recs []Record, corrupt bool) []byte {
	for i, r := range recs {
		dst = append(dst, `{"device_id":"`...)
		dst = append(dst, imei...)
		dst = append(dst, `","ts":"`...)
		dst = r.TS.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
		dst = append(dst, `","lat":`...)
		dst = strconv.AppendFloat(dst, r.Lat, 'f', 7, 64)
		dst = append(dst, `,"lon":`...)
		dst = strconv.AppendFloat(dst, r.Lon, 'f', 7, 64)
		dst = append(dst, `,"alt":`...)
		dst = strconv.AppendFloat(dst, r.Alt, 'f', 0, 64)
		dst = append(dst, `,"speed":`...)
		dst = strconv.AppendFloat(dst, r.Speed, 'f', 1, 64)
		dst = append(dst, `,"heading":`...)
		dst = strconv.AppendFloat(dst, r.Heading, 'f', 0, 64)
		dst = append(dst, `,"sats":`...)
		dst = strconv.AppendInt(dst, int64(r.Sats), 10)
		dst = append(dst, `,"valid":`...)
		dst = strconv.AppendBool(dst, !r.ZeroFix())
		dst = append(dst, `,"odometer":`...)
		dst = strconv.AppendFloat(dst, r.Odo, 'f', 3, 64)
		dst = append(dst, `,"voltage":`...)
		dst = strconv.AppendFloat(dst, r.Volt, 'f', 2, 64)
		if corrupt && i == len(recs)-1 {
			dst = append(dst, ",\n"...) // cut short: not a JSON object
			continue
		}
		dst = append(dst, "}\n"...)
	}
	return dst
}

func (jsonl) ReadAck(r *bufio.Reader, _ uint16, n int) error {
	for range n {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading jsonl ack: %w", err)
		}
		if !bytes.HasPrefix(line, []byte(`{"ok":`)) {
			return &ErrNack{Got: string(bytes.TrimSpace(line))}
		}
	}
	return nil
}
