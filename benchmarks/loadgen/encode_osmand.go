package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"
)

// osmand speaks the OsmAnd / Traccar Client HTTP protocol: one record per
// request, the fields in the query string, answered with HTTP 200 on a
// keep-alive connection.
type osmand struct{}

func init() { registerCodec(osmand{}) }

func (osmand) Name() string                       { return "osmand" }
func (osmand) Resolution() time.Duration          { return time.Millisecond }
func (osmand) MaxPerFrame() int                   { return 1 }
func (osmand) Hello(string, uint16) []byte        { return nil }
func (osmand) ReadHelloAck(r *bufio.Reader) error { return nil }

func (osmand) Encode(dst []byte, imei string, _ uint16, recs []Record, corrupt bool) []byte {
	for _, r := range recs {
		dst = append(dst, "POST /?id="...)
		if corrupt {
			dst = append(dst, "%zz"...) // invalid percent escape
		}
		dst = append(dst, imei...)
		dst = append(dst, "&timestamp="...)
		dst = strconv.AppendInt(dst, r.TS.UnixMilli(), 10)
		dst = append(dst, "&lat="...)
		dst = strconv.AppendFloat(dst, r.Lat, 'f', 7, 64)
		dst = append(dst, "&lon="...)
		dst = strconv.AppendFloat(dst, r.Lon, 'f', 7, 64)
		dst = append(dst, "&altitude="...)
		dst = strconv.AppendFloat(dst, r.Alt, 'f', 0, 64)
		dst = append(dst, "&speed="...)
		dst = strconv.AppendFloat(dst, r.Speed/1.852, 'f', 2, 64) // knots
		dst = append(dst, "&bearing="...)
		dst = strconv.AppendFloat(dst, r.Heading, 'f', 0, 64)
		dst = append(dst, "&sat="...)
		dst = strconv.AppendInt(dst, int64(r.Sats), 10)
		dst = append(dst, "&valid="...)
		dst = strconv.AppendBool(dst, !r.ZeroFix())
		dst = append(dst, " HTTP/1.1\r\nHost: fleetcore\r\nUser-Agent: fleetcore-loadgen\r\nContent-Length: 0\r\n\r\n"...)
	}
	return dst
}

// ReadAck reads one HTTP response and requires a 2xx status.
func (osmand) ReadAck(r *bufio.Reader, _ uint16, n int) error {
	for range n {
		status, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading osmand response: %w", err)
		}
		fields := bytes.Fields(status)
		if len(fields) < 2 || !bytes.HasPrefix(fields[0], []byte("HTTP/1.")) || len(fields[1]) != 3 || fields[1][0] != '2' {
			return &ErrNack{Got: string(bytes.TrimSpace(status))}
		}
		length, closing := 0, false
		for {
			h, err := r.ReadSlice('\n')
			if err != nil {
				return fmt.Errorf("reading osmand response headers: %w", err)
			}
			h = bytes.TrimSpace(h)
			if len(h) == 0 {
				break
			}
			k, v, _ := bytes.Cut(h, []byte(":"))
			v = bytes.TrimSpace(v)
			switch {
			case bytes.EqualFold(k, []byte("Content-Length")):
				length, _ = strconv.Atoi(string(v))
			case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
				closing = true
			}
		}
		if _, err := r.Discard(length); err != nil {
			return fmt.Errorf("reading osmand response body: %w", err)
		}
		if closing {
			return errServerClosing
		}
	}
	return nil
}

// errServerClosing: the record was acked but the server closes the
// connection; the device reconnects before the next frame.
var errServerClosing = fmt.Errorf("server closes the connection after the response: %w", io.EOF)
