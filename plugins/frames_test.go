package plugins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// lenFramer frames "length byte, then length-1 more bytes"; a zero
// length is malformed; claim, when set, is returned instead for a whole
// frame (a lying framer).
func lenFramer(claim int) func([]byte) (int, error) {
	return func(buf []byte) (int, error) {
		if len(buf) == 0 {
			return 0, nil
		}
		n := int(buf[0])
		switch {
		case n == 0:
			return 0, fmt.Errorf("framing toy: %w: zero length", ErrMalformed)
		case len(buf) < n:
			return 0, nil
		case claim != 0:
			return claim, nil
		}
		return n, nil
	}
}

// lineFramer frames LF-ended lines.
func lineFramer(buf []byte) (int, error) {
	return bytes.IndexByte(buf, '\n') + 1, nil
}

// recorder is a FrameHandler that keeps copies of the frames, flushes
// and stops after stopAfter frames when set.
type recorder struct {
	frames    []string
	flushes   int
	stopAfter int
	fail      error
}

func (r *recorder) Frame(f []byte) (bool, error) {
	if r.fail != nil {
		return false, r.fail
	}
	r.frames = append(r.frames, string(f))
	return r.stopAfter > 0 && len(r.frames) >= r.stopAfter, nil
}

func (r *recorder) Flush() error { r.flushes++; return nil }

// budget is a Grow/Release pair that counts what is reserved.
type budget struct{ held, max, grants int }

func (b *budget) grow(n int) bool {
	if b.held+n > b.max {
		return false
	}
	b.held += n
	b.grants++
	return true
}

func (b *budget) release(n int) { b.held -= n }

// chunks is a reader that returns one chunk per Read (as reads from a
// socket return what arrived).
func chunks(cs ...string) io.Reader {
	rs := make([]io.Reader, len(cs))
	for i, c := range cs {
		rs[i] = bytes.NewReader([]byte(c))
	}
	return io.MultiReader(rs...)
}

func frameOf(n int, fill byte) string {
	return string(append([]byte{byte(n)}, bytes.Repeat([]byte{fill}, n-1)...))
}

func TestFramerRun(t *testing.T) {
	errRead := errors.New("connection reset")
	big := frameOf(200, 'b') // grows an 8-byte buffer to 256
	for _, tc := range []struct {
		name       string
		cfg        FramerConfig
		in         io.Reader
		h          *recorder
		frames     []string
		buffered   int
		err        error  // errors.Is target; nil: Run returns nil
		raw        string // the FrameError's bytes, when err is one
		noFrameErr bool   // err is not a *FrameError
	}{
		{name: "frames_across_reads", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 255, Slack: 8},
			in: chunks("\x03a", "a\x02b\x04", "ccc\x05dd"), h: &recorder{},
			frames: []string{"\x03aa", "\x02b", "\x04ccc"}, buffered: 3},
		{name: "byte_at_a_time_compacts", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 255, Slack: 4},
			in: iotest.OneByteReader(bytes.NewReader([]byte("\x03aa\x03bb\x03cc\x03dd"))), h: &recorder{},
			frames: []string{"\x03aa", "\x03bb", "\x03cc", "\x03dd"}},
		{name: "grows_for_a_large_frame", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 250, Slack: 8},
			in: iotest.HalfReader(bytes.NewReader([]byte(big + "\x02z"))), h: &recorder{},
			frames: []string{big, "\x02z"}},
		{name: "no_frame_within_the_cap", cfg: FramerConfig{Frame: func([]byte) (int, error) { return 0, nil }, MaxFrame: 20, Slack: 8},
			in: bytes.NewReader(bytes.Repeat([]byte{'x'}, 100)), h: &recorder{},
			err: ErrTooLarge, raw: string(bytes.Repeat([]byte{'x'}, 28))},
		{name: "framer_error", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 255},
			in: chunks("\x02a\x00junk"), h: &recorder{},
			frames: []string{"\x02a"}, err: ErrMalformed, raw: "\x00junk"},
		{name: "framer_claims_more_than_it_has", cfg: FramerConfig{Frame: lenFramer(9), MaxFrame: 255},
			in: chunks("\x02a"), h: &recorder{}, err: ErrMalformed, raw: "\x02a"},
		{name: "handler_error_ends_the_loop", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 255},
			in: chunks("\x02a\x02b"), h: &recorder{fail: ErrChecksum}, err: ErrChecksum, noFrameErr: true},
		{name: "handler_stops", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 255},
			in: chunks("\x02a\x02b\x02c"), h: &recorder{stopAfter: 1},
			frames: []string{"\x02a"}, buffered: 4},
		{name: "read_error_after_frames", cfg: FramerConfig{Frame: lenFramer(0), MaxFrame: 255},
			in: io.MultiReader(chunks("\x02a\x03"), iotest.ErrReader(errRead)), h: &recorder{},
			frames: []string{"\x02a"}, buffered: 1, err: errRead, noFrameErr: true},
		{name: "end_of_input_without_eof_framer", cfg: FramerConfig{Frame: lineFramer, MaxFrame: 255},
			in: chunks("one\ntwo"), h: &recorder{}, frames: []string{"one\n"}, buffered: 3},
		{name: "end_of_input_ends_the_last_line", cfg: FramerConfig{Frame: lineFramer, FrameAtEOF: func(b []byte) (int, error) { return len(b), nil }, MaxFrame: 255},
			in: chunks("one\ntw", "o"), h: &recorder{}, frames: []string{"one\n", "two"}},
		{name: "eof_framer_refuses", cfg: FramerConfig{Frame: lineFramer, FrameAtEOF: func([]byte) (int, error) { return 0, ErrTooLarge }, MaxFrame: 255},
			in: chunks("one\ntwo"), h: &recorder{}, frames: []string{"one\n"}, err: ErrTooLarge, raw: "two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := NewFramer(tc.cfg)
			err := fr.Run(tc.in, tc.h)
			if tc.err == nil && err != nil || !errors.Is(err, tc.err) {
				t.Fatalf("Run: %v, want %v", err, tc.err)
			}
			var fe *FrameError
			switch {
			case tc.err != nil && !tc.noFrameErr && !errors.As(err, &fe):
				t.Errorf("Run: %T %v, want a *FrameError", err, err)
			case fe != nil && string(fe.Raw) != tc.raw:
				t.Errorf("refused bytes %q, want %q", fe.Raw, tc.raw)
			}
			if fmt.Sprint(tc.h.frames) != fmt.Sprint(tc.frames) {
				t.Errorf("frames %q, want %q", tc.h.frames, tc.frames)
			}
			if tc.err == nil && fr.Buffered() != tc.buffered {
				t.Errorf("%d bytes buffered, want %d", fr.Buffered(), tc.buffered)
			}
		})
	}
}

// TestFramerBudget holds the grow hook: growth is asked for and may be
// refused, shrinking and Close give every granted byte back.
func TestFramerBudget(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		b := &budget{max: 8}
		fr := NewFramer(FramerConfig{Frame: lenFramer(0), MaxFrame: 250, Slack: 8, Grow: b.grow, Release: b.release})
		err := fr.Run(bytes.NewReader([]byte(frameOf(100, 'x'))), &recorder{})
		if !errors.Is(err, ErrBufferRefused) {
			t.Fatalf("Run: %v, want ErrBufferRefused", err)
		}
		if b.held != 8 || b.grants != 1 {
			t.Fatalf("held %d in %d grants, want 8 in 1 (8 → 16, then 16 → 32 refused)", b.held, b.grants)
		}
		fr.Close()
		if b.held != 0 {
			t.Fatalf("%d bytes still held after Close", b.held)
		}
	})
	t.Run("shrinks_back", func(t *testing.T) {
		b := &budget{max: 1 << 20}
		fr := NewFramer(FramerConfig{Frame: lenFramer(0), MaxFrame: 250, Slack: 8, Grow: b.grow, Release: b.release})
		h := &recorder{}
		// A large frame, then small ones: the buffer grows, then shrinks
		// once what it holds fits half the initial size.
		in := iotest.HalfReader(bytes.NewReader([]byte(frameOf(200, 'x') + "\x02a\x02b")))
		if err := fr.Run(in, h); err != nil {
			t.Fatal(err)
		}
		if len(h.frames) != 3 {
			t.Fatalf("%d frames, want 3", len(h.frames))
		}
		if b.held != 0 {
			t.Fatalf("%d bytes still held after the buffer drained", b.held)
		}
		if len(fr.buf) != 8 {
			t.Fatalf("buffer of %d bytes, want it shrunk to 8", len(fr.buf))
		}
	})
}

// TestFramerConfigFor holds the EOF capability: only an EOFFramer at an
// input whose end is a frame boundary frames the rest.
func TestFramerConfigFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sess  Session
		atEOF bool
		want  bool
	}{
		{"eof_framer_at_eof", eofSession{}, true, true},
		{"eof_framer_in_a_stream", eofSession{}, false, false},
		{"plain_session", plainSession{}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FramerConfigFor(tc.sess, 10, tc.atEOF).FrameAtEOF != nil; got != tc.want {
				t.Fatalf("FrameAtEOF set %v, want %v", got, tc.want)
			}
		})
	}
}

type plainSession struct{}

func (plainSession) Frame(buf []byte) (int, error) { return lineFramer(buf) }
func (plainSession) Decode([]byte, time.Time) (Result, error) {
	return Result{}, nil
}

type eofSession struct{ plainSession }

func (eofSession) FrameAtEOF(buf []byte) (int, error) { return len(buf), nil }
