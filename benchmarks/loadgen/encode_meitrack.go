package loadgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// meitrack speaks the Meitrack GPRS protocol as a T622 or T366 does with
// its cache upload on: `$$<flag><length>,<IMEI>,CCC,<batch>*<sum>\r\n`
// text envelopes carrying up to eight 52-byte CCC position records each,
// and waits for the server's `@@<flag><length>,<IMEI>,CCC,<count>*<sum>`
// confirmation before it deletes them. (Real-time AAA reports are not
// confirmed in Meitrack's protocol, so a device that must not lose data
// reports through CCC.) The flag character cycles with the frame serial
// and the reply must echo it.
type meitrack struct{}

func init() { registerCodec(meitrack{}) }

func (meitrack) Name() string              { return "meitrack" }
func (meitrack) Resolution() time.Duration { return time.Second }
func (meitrack) MaxPerFrame() int          { return 8 }

// meitrackEpoch is the origin of CCC timestamps.
var meitrackEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func meitrackFlag(serial uint16) byte { return 'A' + byte(serial%26) }

// meitrackSum is the byte sum of b as two uppercase hex digits.
func meitrackSum(b []byte) []byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return []byte(fmt.Sprintf("%02X", s))
}

// meitrackEnvelope wraps rest (",<imei>,<cmd>,<data>") as $$ or @@ frame.
func meitrackEnvelope(dst []byte, lead byte, flag byte, rest []byte) []byte {
	start := len(dst)
	dst = append(dst, lead, lead, flag)
	dst = strconv.AppendInt(dst, int64(len(rest)+5), 10) // + "*XX\r\n"
	dst = append(dst, rest...)
	dst = append(dst, '*')
	dst = append(dst, meitrackSum(dst[start:])...)
	return append(dst, '\r', '\n')
}

func (meitrack) Hello(string, uint16) []byte      { return nil }
func (meitrack) ReadHelloAck(*bufio.Reader) error { return nil }

func (meitrack) Encode(dst []byte, imei string, serial uint16, recs []Record, corrupt bool) []byte {
	rest := make([]byte, 0, 32+52*len(recs))
	rest = append(rest, ","+imei+",CCC,"...)
	rest = binary.LittleEndian.AppendUint16(rest, 1)  // CCC version
	rest = binary.LittleEndian.AppendUint16(rest, 52) // record length
	rest = binary.LittleEndian.AppendUint32(rest, uint32(len(recs)))
	for _, r := range recs {
		fix, sats := byte(1), byte(r.Sats)
		if r.ZeroFix() {
			fix = 0
		}
		rest = append(rest, 35) // event: timed report
		rest = binary.LittleEndian.AppendUint32(rest, uint32(int32(math.Round(r.Lat*1e6))))
		rest = binary.LittleEndian.AppendUint32(rest, uint32(int32(math.Round(r.Lon*1e6))))
		rest = binary.LittleEndian.AppendUint32(rest, uint32(r.TS.Sub(meitrackEpoch)/time.Second))
		rest = append(rest, fix, sats, 20)
		rest = binary.LittleEndian.AppendUint16(rest, uint16(math.Round(r.Speed)))
		rest = binary.LittleEndian.AppendUint16(rest, uint16(math.Round(r.Heading)))
		rest = binary.LittleEndian.AppendUint16(rest, 9) // hdop 0.9
		rest = binary.LittleEndian.AppendUint16(rest, uint16(int16(math.Round(r.Alt))))
		rest = binary.LittleEndian.AppendUint32(rest, uint32(math.Round(r.Odo*1000)))
		rest = binary.LittleEndian.AppendUint32(rest, 3600) // runtime
		for _, v := range []uint16{208, 1, 0x4E20, 0xA2B3, 0x0100, 0, uint16(math.Round(r.Volt * 100)), 0} {
			rest = binary.LittleEndian.AppendUint16(rest, v) // mcc, mnc, lac, cid, io, adc, battery, power
		}
		rest = binary.LittleEndian.AppendUint32(rest, 0) // geofence
	}
	dst = meitrackEnvelope(dst, '$', meitrackFlag(serial), rest)
	if corrupt {
		dst[len(dst)-3] ^= 0x01 // a wrong checksum digit
	}
	return dst
}

func (meitrack) ReadAck(r *bufio.Reader, serial uint16, n int) error {
	b, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = io.ErrShortBuffer
		}
		return fmt.Errorf("reading meitrack confirmation: %w", err)
	}
	// The IMEI is the device's: check the flag, the command, the count
	// and the envelope (length and checksum).
	got := string(b)
	if len(b) < 12 || b[0] != '@' || b[1] != '@' || b[2] != meitrackFlag(serial) {
		return &ErrNack{Got: fmt.Sprintf("meitrack reply %q, want @@%c…", got, meitrackFlag(serial))}
	}
	tail := ",CCC," + strconv.Itoa(n) + "*"
	star := len(b) - 5
	if star < len(tail) || string(b[star-len(tail)+1:star+1]) != tail || string(b[star+1:star+3]) != string(meitrackSum(b[:star+1])) || string(b[star+3:]) != "\r\n" {
		return &ErrNack{Got: fmt.Sprintf("meitrack reply %q, want …%s<sum>", got, tail)}
	}
	return nil
}
