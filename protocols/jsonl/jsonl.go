// Package jsonl decodes newline-delimited JSON records in fleetcore's
// canonical signal shape (signal.JSON, DESIGN.md §3) over TCP: one object
// per line, for simulators, load generators and custom devices.
//
// Each accepted line is acknowledged, once its record is durable, with
// `{"ok": N}` and a newline, N being the line's 1-based sequence number on
// the connection. A rejected line gets `{"error": "..."}` and the
// connection closes.
package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "jsonl"

// Decoder is the jsonl decoder; its zero value is ready to use.
type Decoder struct{}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(Decoder{}) }

// Info describes the decoder.
func (Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP},
		DefaultPort: 5099,
		Description: "newline-delimited canonical signal JSON (simulators, custom devices)",
	}
}

// NewSession starts a connection.
func (Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{cfg: cfg}
}

// Session is one connection: it numbers the lines it acknowledges.
type Session struct {
	cfg  plugins.SessionConfig
	seq  int
	last string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.Rejecter         = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the device of the last accepted line (a connection may carry
// several devices).
func (s *Session) DeviceID() string { return s.last }

// Frame returns the length of the first line including its LF. A line
// longer than MaxFrame is ErrTooLarge.
func (s *Session) Frame(buf []byte) (int, error) {
	limit := buf
	if len(limit) > s.cfg.MaxFrame {
		limit = limit[:s.cfg.MaxFrame]
	}
	if i := bytes.IndexByte(limit, '\n'); i >= 0 {
		return i + 1, nil
	}
	if len(buf) >= s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing jsonl line: %w: no line end within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
	}
	return 0, nil
}

// FrameAtEOF frames the last line of an input that ends without a line
// end (plugins.EOFFramer): the rest is the line. Over MaxFrame it is
// ErrTooLarge.
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	if len(buf) > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing jsonl line: %w: %d bytes without a line end, cap %d", plugins.ErrTooLarge, len(buf), s.cfg.MaxFrame)
	}
	return len(buf), nil
}

// Decode decodes one line. A blank line is a keep-alive: no record, no
// ack, not counted.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("decoding jsonl line: %w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	line := bytes.TrimSpace(frame)
	if len(line) == 0 {
		return plugins.Result{DeviceID: s.last}, nil
	}
	sig, err := Parse(line)
	if err != nil {
		return plugins.Result{DeviceID: s.last}, fmt.Errorf("decoding jsonl line %d: %w", s.seq+1, err)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(sig.DeviceID) {
		return plugins.Result{DeviceID: sig.DeviceID, Close: true}, fmt.Errorf("decoding jsonl line %d: %w: %s", s.seq+1, plugins.ErrUnauthorized, sig.DeviceID)
	}
	s.seq++
	s.last = sig.DeviceID
	sig.Recv = recv
	sig.Frame = append([]byte(nil), frame...)
	ack := make([]byte, 0, 16)
	ack = append(ack, `{"ok": `...)
	ack = strconv.AppendInt(ack, int64(s.seq), 10)
	ack = append(ack, "}\n"...)
	return plugins.Result{Signals: []signal.Signal{sig}, Ack: ack, DeviceID: sig.DeviceID}, nil
}

// Reject is the reply to a refused line: {"error": "..."} and a newline.
func (s *Session) Reject(err error) []byte {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	// json.Marshal writes {"error":"..."}; keep the documented spacing.
	out := append([]byte(`{"error": `), b[len(`{"error":`):]...)
	return append(out, '\n')
}

// Parse decodes one canonical JSON object into a signal. device_id and ts
// are required; unknown keys, trailing data and a second object are
// errors wrapping plugins.ErrMalformed. recv and path belong to the server
// and are ignored; a protocol other than "jsonl" is kept as attr
// source_protocol.
//
// The common shape is decoded by a hand-written scanner (parseFast,
// a few allocations per line); everything else, errors included, by
// encoding/json.
func Parse(line []byte) (signal.Signal, error) {
	var p parsed
	if !parseFast(line, &p) {
		p = parsed{}
		if err := p.slow(line); err != nil {
			return signal.Signal{}, err
		}
	}
	return p.check()
}

// parsed is a decoded line before the checks Parse applies to it.
type parsed struct {
	sig   signal.Signal // without TS and Protocol
	ts    time.Time
	hasTS bool
	src   string // the line's protocol key
}

// slow decodes a line with encoding/json.
func (p *parsed) slow(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var j signal.JSON
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %s", plugins.ErrMalformed, describe(err))
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: one JSON object per line: trailing data after the object", plugins.ErrMalformed)
	}
	if j.TS != nil {
		p.ts, p.hasTS = *j.TS, true
	}
	p.src = j.Protocol
	// The server sets recv, path and the decoder version (builtin:… for
	// jsonl): a row of `fleetcore decode` output carries them, they are
	// accepted and ignored.
	j.TS, j.Recv, j.Path, j.Protocol, j.DecoderVersion = nil, nil, "", "", ""
	p.sig = j.Signal()
	return nil
}

func (p *parsed) check() (signal.Signal, error) {
	if p.sig.DeviceID == "" {
		return signal.Signal{}, fmt.Errorf("%w: device_id is required", plugins.ErrMalformed)
	}
	if !p.hasTS || p.ts.IsZero() {
		return signal.Signal{}, fmt.Errorf("%w: ts is required (RFC 3339 time)", plugins.ErrMalformed)
	}
	// RFC 3339 allows years 0000–9999 with any offset, so the UTC time can
	// fall outside what RFC 3339 (and therefore the canonical JSON) can
	// write back.
	if y := p.ts.UTC().Year(); y < 1 || y > 9999 {
		return signal.Signal{}, fmt.Errorf("%w: ts %s is outside the years 0001–9999 in UTC", plugins.ErrMalformed, p.ts.Format(time.RFC3339))
	}
	sig := p.sig
	sig.TS = p.ts.UTC()
	if p.src != "" && p.src != Name {
		sig.SetAttr("source_protocol", p.src)
	}
	for i, d := range sig.DTCs {
		if d == "" {
			return signal.Signal{}, fmt.Errorf("%w: dtcs[%d] is empty", plugins.ErrMalformed, i)
		}
	}
	sig.Protocol = Name
	return sig, nil
}

// describe turns encoding/json errors into messages that name the field.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %s: %s is not a valid %s", te.Field, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "incomplete JSON object"
	}
	return err.Error()
}
