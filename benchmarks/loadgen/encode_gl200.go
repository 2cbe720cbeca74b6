package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// gl200 speaks Queclink @Track text as a GV300W does: a GTHBD heartbeat
// when it connects and every 16th frame (answered
// +SACK:GTHBD,<version>,<count>$), and +RESP:GTFRI reports of up to four
// fixes, each answered +SACK:<count>$ (SACK mode) once durable.
type gl200 struct{}

func init() { registerCodec(gl200{}) }

const (
	gl200Version  = "270703"
	gl200HBDEvery = 16
)

func (gl200) Name() string              { return "gl200" }
func (gl200) Resolution() time.Duration { return time.Second }
func (gl200) MaxPerFrame() int          { return 4 }

func gl200Count(serial uint16) string { return fmt.Sprintf("%04X", serial) }

func gl200Heartbeat(dst []byte, imei string, serial uint16, now time.Time) []byte {
	dst = append(dst, "+ACK:GTHBD,"+gl200Version+","+imei+",,"...)
	dst = now.UTC().AppendFormat(dst, "20060102150405")
	return append(dst, ","+gl200Count(serial)+"$"...)
}

func (gl200) Hello(imei string, serial uint16) []byte {
	return gl200Heartbeat(nil, imei, serial, time.Now())
}

func (gl200) ReadHelloAck(r *bufio.Reader) error {
	return readGL200(r, "+SACK:GTHBD,"+gl200Version+",")
}

func (gl200) Encode(dst []byte, imei string, serial uint16, recs []Record, corrupt bool) []byte {
	last := recs[len(recs)-1].TS.UTC()
	if serial%gl200HBDEvery == 0 {
		dst = gl200Heartbeat(dst, imei, serial, last)
	}
	dst = append(dst, "+RESP:GTFRI,"+gl200Version+","+imei+",,"...)
	dst = strconv.AppendInt(dst, int64(recs[0].Volt*1000), 10)
	dst = append(dst, ",10,"...)
	dst = strconv.AppendInt(dst, int64(len(recs)), 10)
	for _, r := range recs {
		hdop := "1"
		if r.ZeroFix() {
			hdop = "0" // the last known position, no fix
		}
		dst = append(dst, ","+hdop+","...)
		dst = strconv.AppendFloat(dst, r.Speed, 'f', 1, 64)
		dst = append(dst, ',')
		dst = strconv.AppendFloat(dst, r.Heading, 'f', 0, 64)
		dst = append(dst, ',')
		dst = strconv.AppendFloat(dst, r.Alt, 'f', 1, 64)
		dst = append(dst, ',')
		dst = strconv.AppendFloat(dst, r.Lon, 'f', 6, 64)
		dst = append(dst, ',')
		dst = strconv.AppendFloat(dst, r.Lat, 'f', 6, 64)
		dst = append(dst, ',')
		dst = r.TS.UTC().AppendFormat(dst, "20060102150405")
		dst = append(dst, ",0208,0001,4E20,0001A2B3,00"...)
	}
	dst = append(dst, ',')
	dst = strconv.AppendFloat(dst, recs[len(recs)-1].Odo, 'f', 1, 64)
	dst = append(dst, ",,,,100,220100,,,,"...)
	if corrupt {
		dst = append(dst, "20261399999999"...) // no such send time
	} else {
		dst = last.AppendFormat(dst, "20060102150405")
	}
	return append(dst, ","+gl200Count(serial)+"$"...)
}

func (gl200) ReadAck(r *bufio.Reader, serial uint16, _ int) error {
	if serial%gl200HBDEvery == 0 {
		if err := readGL200(r, "+SACK:GTHBD,"+gl200Version+","+gl200Count(serial)); err != nil {
			return err
		}
	}
	return readGL200(r, "+SACK:"+gl200Count(serial))
}

// readGL200 reads one +SACK reply up to its '$' and checks its start (the
// whole reply before '$' when it names the count).
func readGL200(r *bufio.Reader, want string) error {
	b, err := r.ReadSlice('$')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = io.ErrShortBuffer
		}
		return fmt.Errorf("reading gl200 reply: %w", err)
	}
	got := string(b[:len(b)-1])
	if len(got) < len(want) || got[:len(want)] != want || (want[len(want)-1] != ',' && got != want) {
		return &ErrNack{Got: fmt.Sprintf("gl200 reply %q, want %q", b, want+"…$")}
	}
	return nil
}
