package plugins

import (
	"errors"
	"fmt"
	"io"
)

// EOFFramer is an optional Session capability of protocols whose last
// frame may be ended by the end of the input, such as a line protocol
// whose last line has no line end. FrameAtEOF is called with the bytes
// left unframed when the input ends (Frame returned 0 for them) and
// returns how many of them form one last frame, 0 when they do not form
// one (they are a truncated frame), or an error as Frame does.
//
// Only inputs whose end is a frame boundary call it: `fleetcore decode`
// and replay, where each input line is one or more whole frames. The
// gateway does not: a TCP stream that ends mid-frame is a connection cut
// in the middle of a frame, which the device resends whole once it
// reconnects, and storing its first part could store a wrong record.
type EOFFramer interface {
	FrameAtEOF(buf []byte) (int, error)
}

// DefaultSlack is the Framer's initial buffer size and the slack it
// allows over MaxFrame, so that a length field over the cap is seen as
// such by the framer rather than as a frame that never ends.
const DefaultSlack = 2048

// ErrBufferRefused is returned when the Framer must grow its buffer for a
// partial frame and its Grow hook refuses (the gateway's buffer budget is
// spent). The bytes are not the sender's fault: they are not quarantined.
var ErrBufferRefused = errors.New("no buffer room for the partial frame")

// FrameError is the Framer's refusal of buffered bytes: the framer's
// error, a framer that claimed more bytes than it has, or bytes that form
// no frame within the cap. Raw is the refused bytes (for the quarantine);
// it aliases the Framer's buffer and is valid until the Framer is used
// again. A FrameHandler may return one for a frame it refuses.
type FrameError struct {
	Err error
	Raw []byte
}

func (e *FrameError) Error() string { return e.Err.Error() }

func (e *FrameError) Unwrap() error { return e.Err }

// FramerConfig configures a Framer.
type FramerConfig struct {
	// Frame frames the buffered bytes: Session.Frame, or a wrapper that
	// recovers its panic. Required.
	Frame func(buf []byte) (int, error)
	// FrameAtEOF, when set, frames the bytes left at the end of the input
	// (see EOFFramer). Nil: bytes left at the end stay buffered.
	FrameAtEOF func(buf []byte) (int, error)
	// MaxFrame is the cap on a frame's length; the buffer grows up to
	// MaxFrame plus Slack. Required.
	MaxFrame int
	// Slack is the initial buffer size and the room allowed over
	// MaxFrame; default DefaultSlack.
	Slack int
	// Grow, when set, is asked before the buffer grows by n bytes and may
	// refuse (ErrBufferRefused); Release gives back n grown bytes (when
	// the buffer shrinks, and in Close). The gateway's buffer budget
	// reserves through them.
	Grow    func(n int) bool
	Release func(n int)
}

// FramerConfigFor is the configuration that frames with sess: its Frame,
// and its FrameAtEOF when it is an EOFFramer and atEOF is true.
func FramerConfigFor(sess Session, maxFrame int, atEOF bool) FramerConfig {
	cfg := FramerConfig{Frame: sess.Frame, MaxFrame: maxFrame}
	if e, ok := sess.(EOFFramer); ok && atEOF {
		cfg.FrameAtEOF = e.FrameAtEOF
	}
	return cfg
}

// FrameHandler is what a Framer's Run hands frames to.
type FrameHandler interface {
	// Frame takes one complete frame (valid only during the call). An
	// error ends Run with it; stop ends the input after the frames so
	// far are flushed (the frame closes the connection).
	Frame(frame []byte) (stop bool, err error)
	// Flush is called after the frames of one read (the gateway acks
	// them). An error ends Run with it.
	Flush() error
}

// Framer is the one framing loop of the stream transports, used by the
// gateway's TCP connections, the conformance suite (plugintest) and replay
// (`fleetcore decode`): it owns the read buffer (compaction, growth up to
// MaxFrame plus slack, shrinking back), asks the session's framer for each
// frame (0: more bytes needed), refuses a framer that claims more bytes
// than it has (ErrMalformed) and a partial frame over the cap
// (ErrTooLarge), and at the end of the input frames the rest where the
// protocol allows (EOFFramer). A Framer is used by one goroutine.
type Framer struct {
	cfg        FramerConfig
	buf        []byte // len(buf)-Slack bytes were granted by Grow
	start, end int    // buffered, unframed bytes: buf[start:end]
}

// NewFramer returns a Framer with an empty buffer of cfg.Slack bytes.
func NewFramer(cfg FramerConfig) *Framer {
	if cfg.Slack <= 0 {
		cfg.Slack = DefaultSlack
	}
	return &Framer{cfg: cfg, buf: make([]byte, cfg.Slack)}
}

// Buffered returns the number of bytes read and not yet framed.
func (f *Framer) Buffered() int { return f.end - f.start }

// Pending returns the bytes read and not yet framed. It aliases the
// buffer: valid until the Framer is used again.
func (f *Framer) Pending() []byte { return f.buf[f.start:f.end] }

// Room makes room for a read when the buffer is full: compact, else grow
// by doubling up to MaxFrame plus Slack. It returns ErrBufferRefused when
// Grow refuses, or a *FrameError wrapping ErrTooLarge when the partial
// frame already fills the largest buffer.
func (f *Framer) Room() error {
	if f.end < len(f.buf) {
		return nil
	}
	if f.start > 0 {
		f.end = copy(f.buf, f.buf[f.start:f.end])
		f.start = 0
		return nil
	}
	limit := f.cfg.MaxFrame + f.cfg.Slack
	if len(f.buf) >= limit {
		return &FrameError{Err: fmt.Errorf("%w: no complete frame within %d bytes", ErrTooLarge, f.cfg.MaxFrame), Raw: f.Pending()}
	}
	size := min(2*len(f.buf), limit)
	if f.cfg.Grow != nil && !f.cfg.Grow(size-len(f.buf)) {
		return ErrBufferRefused
	}
	nb := make([]byte, size)
	copy(nb, f.buf[:f.end])
	f.buf = nb
	return nil
}

// Read reads once from r into the free end of the buffer (call Room
// first; with no room it returns io.ErrShortBuffer).
func (f *Framer) Read(r io.Reader) (int, error) {
	if f.end == len(f.buf) {
		return 0, io.ErrShortBuffer
	}
	n, err := r.Read(f.buf[f.end:])
	f.end += n
	return n, err
}

// Next returns the next complete frame in the buffer and consumes it, nil
// when more bytes are needed (or none are buffered), or a *FrameError.
// The frame aliases the buffer: valid until the Framer is used again.
func (f *Framer) Next() ([]byte, error) {
	return f.next(f.cfg.Frame)
}

// NextAtEOF is Next at the end of the input: when the framer asks for
// more, the rest is offered to FrameAtEOF (if configured) as one last
// frame.
func (f *Framer) NextAtEOF() ([]byte, error) {
	frame, err := f.Next()
	if err != nil || frame != nil || f.cfg.FrameAtEOF == nil || f.Buffered() == 0 {
		return frame, err
	}
	return f.next(f.cfg.FrameAtEOF)
}

func (f *Framer) next(framer func([]byte) (int, error)) ([]byte, error) {
	if f.start == f.end {
		return nil, nil
	}
	buf := f.Pending()
	n, err := framer(buf)
	switch {
	case err != nil:
		return nil, &FrameError{Err: err, Raw: buf}
	case n < 0 || n > len(buf):
		return nil, &FrameError{Err: fmt.Errorf("%w: framer claimed %d of %d bytes", ErrMalformed, n, len(buf)), Raw: buf}
	case n == 0:
		return nil, nil
	}
	f.start += n
	return buf[:n], nil
}

// Shrink empties a drained buffer and drops a grown one once what it
// holds fits half the initial size, giving the grown bytes back through
// Release.
func (f *Framer) Shrink() {
	if f.start == f.end {
		f.start, f.end = 0, 0
	}
	if len(f.buf) == f.cfg.Slack || f.end-f.start > f.cfg.Slack/2 {
		return
	}
	nb := make([]byte, f.cfg.Slack)
	f.end = copy(nb, f.buf[f.start:f.end])
	f.start = 0
	f.release()
	f.buf = nb
}

// Close gives the grown bytes back through Release. The Framer is not
// used after.
func (f *Framer) Close() {
	f.release()
	f.buf = f.buf[:0]
	f.start, f.end = 0, 0
}

func (f *Framer) release() {
	if n := len(f.buf) - f.cfg.Slack; n > 0 && f.cfg.Release != nil {
		f.cfg.Release(n)
	}
}

// Run is the framing loop over r: make room, read once, hand every
// complete frame to h, shrink, flush; until the input ends, h stops it or
// an error. A read of no bytes hands nothing and flushes nothing. At the end of the input (io.EOF) the rest is framed with
// NextAtEOF and flushed, and Run returns nil: bytes still buffered then
// (Buffered) are a truncated frame, for the caller to judge. Errors are
// returned as they come: Room's, a *FrameError from framing, h's, and a
// read error other than io.EOF (after the frames read with it are
// handled and flushed).
func (f *Framer) Run(r io.Reader, h FrameHandler) error {
	for {
		if err := f.Room(); err != nil {
			return err
		}
		n, rerr := f.Read(r)
		eof := errors.Is(rerr, io.EOF)
		if n == 0 && !eof {
			if rerr != nil {
				return rerr
			}
			continue
		}
		stop, err := f.handleAll(h, eof)
		if err != nil {
			return err
		}
		f.Shrink()
		if err := h.Flush(); err != nil {
			return err
		}
		switch {
		case stop || eof:
			return nil
		case rerr != nil:
			return rerr
		}
	}
}

// handleAll hands every complete frame to h, with NextAtEOF at the end
// of the input.
func (f *Framer) handleAll(h FrameHandler, eof bool) (bool, error) {
	next := f.Next
	if eof {
		next = f.NextAtEOF
	}
	for {
		frame, err := next()
		if err != nil || frame == nil {
			return false, err
		}
		stop, err := h.Frame(frame)
		if stop || err != nil {
			return stop, err
		}
	}
}
