// Package osmand decodes the HTTP protocol of phone tracking apps: the
// OsmAnd query-string protocol (OsmAnd, Traccar Client, GPSLogger, many
// custom apps) and the JSON body Traccar Client sends. HTTP/1.1 is framed
// over TCP by the session itself: Frame finds one complete request in the
// byte stream, Decode parses it, the ack is the HTTP response. See README.md.
package osmand

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "osmand"

// DefaultPort is the conventional OsmAnd port (Traccar's).
const DefaultPort = 5055

const (
	defaultMaxFrame = 64 << 10
	maxMethod       = 16
	knotKMH         = 1.852
)

// Decoder is the OsmAnd protocol. The zero value is ready to use. It is
// shared by every session of every OsmAnd listener: it remembers the receive
// time it gave each report without a timestamp, so that a resend of the
// report gets the same time and key (plugins.ServerTimes).
type Decoder struct {
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP},
		DefaultPort: DefaultPort,
		Description: "OsmAnd / Traccar Client HTTP: query string, form body or Traccar Client JSON; HTTP 200 ack, 400 with reason on rejection",
		Options:     []plugins.Option{optSpeedUnit},
	}
}

// optSpeedUnit is the unit of the query-string speed parameter.
var optSpeedUnit = plugins.EnumOption{
	Name: "speed_unit", Default: "kn", Values: []string{"kn", "kmh", "mps", "mph"},
	Aliases: map[string]string{"km/h": "kmh", "kph": "kmh", "m/s": "mps"},
	Doc:     "the unit of the query-string `speed` parameter (`kn` is the OsmAnd protocol's; km/h, kph and m/s are accepted as kmh and mps)",
}

// NewSession starts one HTTP connection. Listener options:
//
//	speed_unit = "kn" (default, the OsmAnd protocol), "kmh", "mps" or "mph":
//	             the unit of the query-string speed parameter.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Session{dec: d, cfg: cfg, log: log.Named(Name), speedFactor: knotKMH}
	switch optSpeedUnit.Get(cfg.Options) {
	case "kmh":
		s.speedFactor = 1
	case "mps":
		s.speedFactor = 3.6
	case "mph":
		s.speedFactor = 1.609344
	}
	return s
}

// Session is one HTTP connection (several requests with keep-alive).
type Session struct {
	dec         *Decoder
	cfg         plugins.SessionConfig
	log         hclog.Logger
	speedFactor float64 // query speed unit → km/h
	device      string  // last device id seen
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.Rejecter         = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID returns the device id of the last request, or "".
func (s *Session) DeviceID() string { return s.device }

// Frame returns the length of the first complete HTTP/1.x request in buf
// (request line, headers, and a Content-Length or chunked body), 0 when
// more bytes are needed. Bytes that cannot start a request are
// ErrMalformed; a request that exceeds MaxFrame is ErrTooLarge; a
// transfer coding other than chunked is ErrUnsupported.
func (s *Session) Frame(buf []byte) (int, error) {
	n, err := frameLen(buf, s.cfg.MaxFrame)
	if err != nil {
		return 0, fmt.Errorf("framing HTTP request: %w", err)
	}
	return n, nil
}

func frameLen(buf []byte, max int) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	// Empty lines before a request line are ignored (RFC 9112 §2.2): they
	// form a frame of their own that decodes to nothing.
	if buf[0] == '\n' {
		return 1, nil
	}
	if buf[0] == '\r' {
		if len(buf) < 2 {
			return 0, nil
		}
		if buf[1] == '\n' {
			return 2, nil
		}
		return 0, fmt.Errorf("%w: bare CR before the request line", plugins.ErrMalformed)
	}
	// The method: upper-case letters up to the first space.
	sp := -1
	for i := 0; i < len(buf) && i <= maxMethod; i++ {
		c := buf[i]
		if c == ' ' {
			sp = i
			break
		}
		if c < 'A' || c > 'Z' {
			return 0, fmt.Errorf("%w: byte 0x%02x at %d is not part of an HTTP method", plugins.ErrMalformed, c, i)
		}
	}
	if sp < 0 {
		if len(buf) > maxMethod {
			return 0, fmt.Errorf("%w: no HTTP method in the first %d bytes", plugins.ErrMalformed, maxMethod)
		}
		return 0, nil
	}
	if sp == 0 {
		return 0, fmt.Errorf("%w: empty HTTP method", plugins.ErrMalformed)
	}
	lineEnd := bytes.IndexByte(buf, '\n')
	if lineEnd < 0 {
		if len(buf) >= max {
			return 0, fmt.Errorf("%w: request line longer than %d bytes", plugins.ErrTooLarge, max)
		}
		return 0, nil
	}
	line := string(bytes.TrimRight(buf[:lineEnd], "\r"))
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[1] == "" || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return 0, fmt.Errorf("%w: request line %q is not METHOD TARGET HTTP/1.x", plugins.ErrMalformed, truncate(line, 80))
	}
	hdrEnd, err := headerEnd(buf, lineEnd+1)
	if err != nil {
		return 0, err
	}
	if hdrEnd == 0 {
		if len(buf) >= max {
			return 0, fmt.Errorf("%w: request headers longer than %d bytes", plugins.ErrTooLarge, max)
		}
		return 0, nil
	}
	if hdrEnd > max {
		return 0, fmt.Errorf("%w: request headers of %d bytes exceed %d", plugins.ErrTooLarge, hdrEnd, max)
	}
	clen, chunked, err := bodyFraming(buf[lineEnd+1 : hdrEnd])
	if err != nil {
		return 0, err
	}
	if chunked {
		return chunkedEnd(buf, hdrEnd, max)
	}
	total := hdrEnd + clen
	if clen > max || total > max {
		return 0, fmt.Errorf("%w: request of %d bytes (Content-Length %d) exceeds %d", plugins.ErrTooLarge, total, clen, max)
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// headerEnd returns the offset just past the empty line that ends the
// header block starting at from, or 0 when it is not complete yet.
func headerEnd(buf []byte, from int) (int, error) {
	i := from
	for {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0, nil
		}
		line := bytes.TrimRight(buf[i:i+j], "\r")
		i += j + 1
		if len(line) == 0 {
			return i, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return 0, fmt.Errorf("%w: obsolete header line folding", plugins.ErrMalformed)
		}
		if bytes.IndexByte(line, ':') <= 0 {
			return 0, fmt.Errorf("%w: header line %q has no name", plugins.ErrMalformed, truncate(string(line), 60))
		}
	}
}

// bodyFraming reads Content-Length and Transfer-Encoding from the header
// lines.
func bodyFraming(hdr []byte) (clen int, chunked bool, err error) {
	clen = -1
	for line := range strings.SplitSeq(string(hdr), "\n") {
		line = strings.TrimRight(line, "\r")
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, perr := strconv.ParseUint(value, 10, 31)
			if perr != nil {
				if ne := (*strconv.NumError)(nil); errors.As(perr, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
					return 0, false, fmt.Errorf("%w: Content-Length %s", plugins.ErrTooLarge, truncate(value, 24))
				}
				return 0, false, fmt.Errorf("%w: Content-Length %q", plugins.ErrMalformed, truncate(value, 24))
			}
			if clen >= 0 && clen != int(n) {
				return 0, false, fmt.Errorf("%w: conflicting Content-Length headers", plugins.ErrMalformed)
			}
			clen = int(n)
		case "transfer-encoding":
			if !strings.EqualFold(value, "chunked") {
				return 0, false, fmt.Errorf("%w: Transfer-Encoding %q (only chunked is accepted)", plugins.ErrUnsupported, truncate(value, 40))
			}
			chunked = true
		}
	}
	if chunked && clen >= 0 {
		return 0, false, fmt.Errorf("%w: both Content-Length and Transfer-Encoding", plugins.ErrMalformed)
	}
	if clen < 0 {
		clen = 0
	}
	return clen, chunked, nil
}

// chunkedEnd walks a chunked body starting at off and returns the offset
// past its last chunk and trailers, or 0 when incomplete.
func chunkedEnd(buf []byte, off, max int) (int, error) {
	for {
		j := bytes.IndexByte(buf[off:], '\n')
		if j < 0 {
			if len(buf) >= max {
				return 0, fmt.Errorf("%w: chunked request exceeds %d bytes", plugins.ErrTooLarge, max)
			}
			return 0, nil
		}
		line := strings.TrimRight(string(buf[off:off+j]), "\r")
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseUint(strings.TrimSpace(line), 16, 31)
		if err != nil {
			return 0, fmt.Errorf("%w: chunk size %q", plugins.ErrMalformed, truncate(line, 24))
		}
		off += j + 1
		if size == 0 {
			end, err := headerEnd(buf, off) // trailers up to the empty line
			if err != nil {
				return 0, err
			}
			if end == 0 {
				if len(buf) >= max {
					return 0, fmt.Errorf("%w: chunked request exceeds %d bytes", plugins.ErrTooLarge, max)
				}
				return 0, nil
			}
			if end > max {
				return 0, fmt.Errorf("%w: chunked request of %d bytes exceeds %d", plugins.ErrTooLarge, end, max)
			}
			return end, nil
		}
		next := off + int(size) + 2
		if int(size) > max || next > max {
			return 0, fmt.Errorf("%w: chunked request exceeds %d bytes", plugins.ErrTooLarge, max)
		}
		if len(buf) < next {
			return 0, nil
		}
		if buf[next-2] != '\r' || buf[next-1] != '\n' {
			return 0, fmt.Errorf("%w: chunk data not followed by CRLF", plugins.ErrMalformed)
		}
		off = next
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Decode parses one complete request. The ack is an HTTP/1.1 200 response
// (Connection: close, and Result.Close, when the client asked to close or
// spoke HTTP/1.0 without keep-alive).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(bytes.TrimLeft(frame, "\r\n")) == 0 {
		if len(frame) == 0 {
			return plugins.Result{}, fmt.Errorf("decoding HTTP request: %w: empty frame", plugins.ErrMalformed)
		}
		return plugins.Result{}, nil // blank line between requests
	}
	if n, err := frameLen(frame, s.cfg.MaxFrame); err != nil || n != len(frame) {
		if err == nil {
			err = fmt.Errorf("%w: %d bytes do not form exactly one request", plugins.ErrMalformed, len(frame))
		}
		return plugins.Result{}, fmt.Errorf("decoding HTTP request: %w", err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(frame)))
	if err != nil {
		return plugins.Result{}, fmt.Errorf("decoding HTTP request: %w: %v", plugins.ErrMalformed, err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return plugins.Result{}, fmt.Errorf("reading HTTP body: %w: %v", plugins.ErrMalformed, err)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost && req.Method != http.MethodPut {
		return plugins.Result{}, fmt.Errorf("decoding HTTP request: %w: method %s", plugins.ErrUnsupported, req.Method)
	}
	d := decoding{s: s, frame: append([]byte(nil), frame...), recv: recv.UTC()}
	var sigs []signal.Signal
	ct := strings.ToLower(req.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "application/json") {
		sigs, err = d.json(body)
	} else {
		sigs, err = d.query(req, body, ct)
	}
	if err != nil {
		return plugins.Result{DeviceID: d.device}, err
	}
	if d.device != "" {
		s.device = d.device
	}
	res := plugins.Result{Signals: sigs, DeviceID: d.device, Close: req.Close}
	res.Ack = response(http.StatusOK, "", req.Close)
	return res, nil
}

// Reject is the response written before the connection closes on a
// rejected request: 413 for an oversized request, 403 for a device not
// allowed, 400 with the reason for everything else.
func (s *Session) Reject(err error) []byte {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, plugins.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, plugins.ErrUnauthorized):
		code = http.StatusForbidden
	}
	return response(code, err.Error()+"\n", true)
}

func response(code int, body string, closeConn bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	if body != "" {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	if closeConn {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return []byte(b.String())
}
