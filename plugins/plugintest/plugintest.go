package plugintest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Cases are a decoder's inputs for the conformance suite.
type Cases struct {
	// Frames are valid frames in the order a device sends them, login
	// frames first. Each is exactly one frame (TCP) or one datagram (UDP).
	// Together they must yield at least one signal.
	Frames [][]byte
	// Oversized are inputs whose length field claims more than MaxFrame
	// (or an impossible length); each must be refused with
	// plugins.ErrTooLarge or plugins.ErrMalformed without allocating what
	// it claims. They are fed in a session primed with the setup frames
	// (those of Frames that yield no signals, such as a login).
	Oversized [][]byte
	// Transport to test; default TCP when the decoder supports it, else UDP.
	Transport plugins.Transport
	// MaxFrame handed to sessions; default 64 KiB.
	MaxFrame int
	// Options handed to sessions (listener options).
	Options map[string]string
	// Seed for the random inputs; default 1.
	Seed uint64
}

// Receive times: the resend check receives the second copy later.
var (
	recvFirst  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	recvResend = recvFirst.Add(90 * time.Second)
)

// allocBudget bounds what one refused input may allocate: far below what
// an absurd length field (hundreds of MiB and more) claims.
const allocBudget = 16 << 20

// Run runs the conformance suite for dec over cs as subtests of t.
func Run(t *testing.T, dec plugins.Decoder, cs Cases) {
	t.Helper()
	c := &suite{dec: dec, cs: cs, name: dec.Info().Name}
	if c.cs.MaxFrame <= 0 {
		c.cs.MaxFrame = 64 << 10
	}
	if c.cs.Seed == 0 {
		c.cs.Seed = 1
	}
	if c.cs.Transport == "" {
		c.cs.Transport = plugins.UDP
		if slices.Contains(dec.Info().Transports, plugins.TCP) {
			c.cs.Transport = plugins.TCP
		}
	}
	if !slices.Contains(dec.Info().Transports, c.cs.Transport) {
		t.Fatalf("decoder %q does not list transport %q in Info().Transports", c.name, c.cs.Transport)
	}
	if len(cs.Frames) == 0 {
		t.Fatal("plugintest: Cases.Frames is empty")
	}
	var want []string
	if !t.Run("sequence", func(t *testing.T) { want = c.sequence(t) }) {
		return // the other checks compare against the sequence
	}
	if len(want) == 0 {
		t.Fatal("the valid frames yield no signals; the other checks need them")
	}
	if c.tcp() {
		t.Run("stream", func(t *testing.T) { c.stream(t, want) })
	}
	t.Run("resend", func(t *testing.T) { c.resend(t, want) })
	t.Run("truncated", c.truncated)
	t.Run("garbage", c.garbage)
	t.Run("oversized", c.oversized)
	t.Run("gateway_panic", c.gatewayPanic)
}

type suite struct {
	dec   plugins.Decoder
	cs    Cases
	name  string
	setup []bool // setup[i]: frame i yielded no signals (login, handshake)
}

// setupBefore returns the frames before i that yielded no signals: what a
// session needs to reach frame i's state (a login), without the cost of
// replaying every record.
func (c *suite) setupBefore(i int) [][]byte {
	var out [][]byte
	for j := 0; j < i && j < len(c.setup); j++ {
		if c.setup[j] {
			out = append(out, c.cs.Frames[j])
		}
	}
	return out
}

func (c *suite) tcp() bool { return c.cs.Transport == plugins.TCP }

// eof reports whether the decoder's sessions end their last frame at the
// end of the input (plugins.EOFFramer): then the stream and some garbage
// inputs are also fed as a whole input, as replay does.
func (c *suite) eof() bool {
	_, ok := c.session().(plugins.EOFFramer)
	return ok && c.tcp()
}

func (c *suite) session() plugins.Session {
	return c.dec.NewSession(plugins.SessionConfig{
		Transport: c.cs.Transport,
		MaxFrame:  c.cs.MaxFrame,
		Options:   decodedOptions(c.dec, c.cs.Options),
		Logger:    hclog.NewNullLogger(),
	})
}

// decode runs one complete frame through sess the way a gateway does: from
// a buffer that is overwritten right after Decode returns. It recovers a
// panic into an error so one bad input names itself.
func decode(sess plugins.Session, frame []byte, recv time.Time) (res plugins.Result, err error) {
	buf := append([]byte(nil), frame...)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w in Decode: %v", errPanic, p)
			return
		}
		before := make([]string, len(res.Signals))
		for i := range res.Signals {
			before[i] = describe(&res.Signals[i])
		}
		for i := range buf {
			buf[i] ^= 0xA5
		}
		for i := range res.Signals {
			if describe(&res.Signals[i]) != before[i] {
				err = errors.Join(err, fmt.Errorf("%w: signal %d changed when the input buffer was overwritten after Decode", errRetained, i))
			}
		}
	}()
	return sess.Decode(buf, recv)
}

// errRetained marks a signal that aliases the frame buffer.
var errRetained = errors.New("signal retains the frame buffer")

// frame calls sess.Frame, turning a panic into an error and checking the
// returned length is within the buffer.
func frame(sess plugins.Session, buf []byte) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w in Frame: %v", errPanic, p)
		}
	}()
	n, err = sess.Frame(buf)
	if err == nil && (n < 0 || n > len(buf)) {
		return n, fmt.Errorf("framer returned %d for %d buffered bytes (Frame returned out of range)", n, len(buf))
	}
	return n, err
}

// errPanic marks a recovered panic.
var errPanic = errors.New("panic")

// feedResult is what the gateway's framing loop made of a byte stream.
type feedResult struct {
	sigs    []signal.Signal
	err     error // the error that ended the stream, if any
	pending int   // bytes left waiting for more
	waits   bool  // Frame asked for more with MaxFrame or more bytes buffered
}

// feed runs chunks through sess in the gateway's framing loop
// (plugins.Framer), each chunk arriving as one read: frame, decode every
// complete frame, stop at the first error. For UDP each chunk is one
// datagram.
func (c *suite) feed(sess plugins.Session, chunks [][]byte, recv time.Time) feedResult {
	return c.feedTo(sess, chunks, recv, false)
}

// feedTo is feed; with atEOF the end of the chunks ends the last frame
// where the session allows (plugins.EOFFramer), as in replay.
func (c *suite) feedTo(sess plugins.Session, chunks [][]byte, recv time.Time, atEOF bool) feedResult {
	h := &feeder{sess: sess, recv: recv}
	if !c.tcp() {
		for _, chunk := range chunks {
			if len(chunk) == 0 {
				continue
			}
			if _, err := h.Frame(chunk); err != nil {
				h.out.err = err
				break
			}
		}
		return h.out
	}
	cfg := plugins.FramerConfig{
		Frame: func(buf []byte) (int, error) {
			n, err := frame(sess, buf)
			if err == nil && n == 0 && len(buf) >= c.cs.MaxFrame {
				h.out.waits = true
			}
			return n, err
		},
		MaxFrame: c.cs.MaxFrame,
	}
	if e, ok := sess.(plugins.EOFFramer); ok && atEOF {
		cfg.FrameAtEOF = func(buf []byte) (n int, err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("%w in FrameAtEOF: %v", errPanic, p)
				}
			}()
			return e.FrameAtEOF(buf)
		}
	}
	fr := plugins.NewFramer(cfg)
	defer fr.Close()
	readers := make([]io.Reader, len(chunks))
	for i, chunk := range chunks {
		readers[i] = bytes.NewReader(chunk)
	}
	if err := fr.Run(io.MultiReader(readers...), h); err != nil {
		h.out.err = err
	}
	h.out.pending = fr.Buffered()
	return h.out
}

// feeder is feed's frame handler: it decodes each frame and keeps the
// signals.
type feeder struct {
	sess plugins.Session
	recv time.Time
	out  feedResult
}

func (h *feeder) Frame(f []byte) (bool, error) {
	res, err := decode(h.sess, f, h.recv)
	h.out.sigs = append(h.out.sigs, res.Signals...)
	return false, err
}

func (h *feeder) Flush() error { return nil }

// describe renders a signal for comparison: key, canonical JSON, frame.
func describe(s *signal.Signal) string {
	j, err := json.Marshal(s.ToJSON())
	if err != nil {
		j = []byte("marshal error: " + err.Error())
	}
	return fmt.Sprintf("%+v %s frame=%x", s.Key(), j, s.Frame)
}

func describeAll(sigs []signal.Signal) []string {
	out := make([]string, len(sigs))
	for i := range sigs {
		out[i] = describe(&sigs[i])
	}
	return out
}

func (c *suite) sequence(t *testing.T) []string {
	sess := c.session()
	var all []signal.Signal
	for i, f := range c.cs.Frames {
		if c.tcp() {
			n, err := frame(sess, f)
			if err != nil {
				t.Fatalf("frame %d: Frame: %v", i, err)
			}
			if n != len(f) {
				t.Fatalf("frame %d: Frame returned %d, the frame has %d bytes", i, n, len(f))
			}
		}
		res, err := decode(sess, f, recvFirst)
		if err != nil {
			t.Fatalf("frame %d: Decode: %v", i, err)
		}
		for j := range res.Signals {
			s := &res.Signals[j]
			switch {
			case s.DeviceID == "":
				t.Errorf("frame %d signal %d: empty DeviceID", i, j)
			case s.Protocol != c.name:
				t.Errorf("frame %d signal %d: Protocol %q, want %q", i, j, s.Protocol, c.name)
			case !s.Recv.Equal(recvFirst):
				t.Errorf("frame %d signal %d: Recv %v, want the receive time %v", i, j, s.Recv, recvFirst)
			case len(s.Frame) == 0:
				t.Errorf("frame %d signal %d: Frame is empty, want a copy of the raw frame", i, j)
			case s.TS.IsZero():
				t.Errorf("frame %d signal %d: TS is zero", i, j)
			}
			if res.DeviceID != "" && res.DeviceID != s.DeviceID {
				t.Errorf("frame %d signal %d: DeviceID %q, Result.DeviceID %q", i, j, s.DeviceID, res.DeviceID)
			}
		}
		all = append(all, res.Signals...)
		c.setup = append(c.setup, len(res.Signals) == 0)
	}
	return describeAll(all)
}

func (c *suite) stream(t *testing.T, want []string) {
	whole := bytes.Join(c.cs.Frames, nil)
	rng := rand.New(rand.NewPCG(c.cs.Seed, 2))
	var random [][]byte
	for rest := whole; len(rest) > 0; {
		n := min(1+rng.IntN(64), len(rest))
		random = append(random, rest[:n])
		rest = rest[n:]
	}
	var bytewise [][]byte
	for i := range whole {
		bytewise = append(bytewise, whole[i:i+1])
	}
	cases := []struct {
		name   string
		chunks [][]byte
		atEOF  bool
	}{
		{"all_at_once", [][]byte{whole}, false},
		{"byte_at_a_time", bytewise, false},
		{"random_chunks", random, false},
	}
	if c.eof() {
		cases = append(cases, struct {
			name   string
			chunks [][]byte
			atEOF  bool
		}{"random_chunks_ending_the_input", random, true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := c.feedTo(c.session(), tc.chunks, recvFirst, tc.atEOF)
			if got.err != nil {
				t.Fatalf("stream failed: %v", got.err)
			}
			if got.pending != 0 {
				t.Fatalf("%d bytes left unframed", got.pending)
			}
			if d := diff(want, describeAll(got.sigs)); d != "" {
				t.Fatalf("signals differ from frame-by-frame decoding:\n%s", d)
			}
		})
	}
}

func diff(want, got []string) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d signals, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] != got[i] {
			return fmt.Sprintf("signal %d:\n got  %s\n want %s", i, got[i], want[i])
		}
	}
	return ""
}

func (c *suite) resend(t *testing.T, want []string) {
	first := c.feed(c.session(), c.cs.Frames, recvFirst)
	again := c.feed(c.session(), c.cs.Frames, recvResend)
	if first.err != nil || again.err != nil {
		t.Fatalf("replaying the frames: %v / %v", first.err, again.err)
	}
	if len(first.sigs) != len(want) || len(again.sigs) != len(want) {
		t.Fatalf("%d and %d signals, want %d", len(first.sigs), len(again.sigs), len(want))
	}
	for i := range first.sigs {
		a, b := first.sigs[i].Key(), again.sigs[i].Key()
		if a != b {
			t.Errorf("signal %d: key %+v on first receipt, %+v on resend", i, a, b)
		}
	}
}

// prefixLengths picks the prefix lengths to try: all for short frames,
// else the first 64 and an even sample of the rest.
func prefixLengths(n int) []int {
	var out []int
	for l := 0; l < n; l++ {
		if n <= 512 || l < 64 || l%(n/256) == 0 {
			out = append(out, l)
		}
	}
	return out
}

func (c *suite) truncated(t *testing.T) {
	for i, f := range c.cs.Frames {
		sess := c.session()
		if got := c.feed(sess, c.setupBefore(i), recvFirst); got.err != nil {
			t.Fatalf("priming with frames before %d: %v", i, got.err)
		}
		for _, l := range prefixLengths(len(f)) {
			if c.tcp() {
				n, err := frame(sess, f[:l])
				if err == nil && n != 0 {
					t.Errorf("frame %d cut to %d of %d bytes: Frame returned %d, want 0 (need more) or an error", i, l, len(f), n)
				}
				if errors.Is(err, errPanic) {
					t.Errorf("frame %d cut to %d bytes: %v", i, l, err)
				}
			}
		}
		// Decode straight on a truncated frame (UDP always does this).
		for _, l := range sample(prefixLengths(len(f)), 24) {
			sess := c.session()
			c.feed(sess, c.setupBefore(i), recvFirst)
			res, err := decode(sess, f[:l], recvFirst)
			if errors.Is(err, errPanic) {
				t.Errorf("frame %d cut to %d bytes: %v", i, l, err)
				continue
			}
			if !c.tcp() && err == nil && len(res.Signals) > 0 {
				t.Errorf("datagram %d cut to %d of %d bytes decoded %d signals, want an error", i, l, len(f), len(res.Signals))
			}
		}
	}
}

func sample(xs []int, n int) []int {
	if len(xs) <= n {
		return xs
	}
	out := make([]int, 0, n)
	for i := range n {
		out = append(out, xs[i*len(xs)/n])
	}
	return out
}

func (c *suite) garbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(c.cs.Seed, 3))
	refused := 0
	const inputs = 64
	runs := []byte{0x00, 'A', ' ', 0xFF, '\r'} // long runs with no frame end in sight
	for k := range inputs + 2*len(runs) {
		var g []byte
		if k < inputs {
			size := 1 + rng.IntN(2*c.cs.MaxFrame)
			if k%4 == 0 {
				size = 1 + rng.IntN(64)
			}
			g = make([]byte, size)
			for i := range g {
				g[i] = byte(rng.UintN(256))
			}
		} else {
			g = bytes.Repeat([]byte{runs[(k-inputs)/2]}, c.cs.MaxFrame+16)
		}
		size := len(g)
		sess := c.session()
		primed := k%2 == 1 // half the inputs arrive after the first frame (a login)
		if primed {
			if got := c.feed(sess, c.cs.Frames[:1], recvFirst); got.err != nil {
				t.Fatalf("priming with frame 0: %v", got.err)
			}
		}
		var chunks [][]byte
		for rest := g; len(rest) > 0; {
			n := min(1+rng.IntN(4096), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		got := c.feedTo(sess, chunks, recvFirst, c.eof() && k%4 == 1)
		if errors.Is(got.err, errPanic) {
			t.Errorf("garbage %d (%d bytes): %v", k, size, got.err)
		}
		if len(got.sigs) > 0 {
			t.Errorf("garbage %d (%d bytes, primed=%v) decoded %d signals, first %s", k, size, primed, len(got.sigs), describe(&got.sigs[0]))
		}
		if got.waits {
			t.Errorf("garbage %d (%d bytes): framer keeps waiting with %d bytes buffered (MaxFrame %d): the buffer would grow without bound", k, size, got.pending, c.cs.MaxFrame)
		}
		if got.err != nil {
			refused++
			saysOnce(t, fmt.Sprintf("garbage %d", k), got.err)
		}
	}
	if refused == 0 {
		t.Errorf("none of the garbage inputs was refused with an error")
	}
}

// saysOnce fails t when err names its step ("framing …", "decoding …")
// more than once, as "framing: framing gt06 packet" or "decoding teltonika
// frame: framing teltonika data" did: the session says which step failed
// once, and the framing loop adds nothing.
func saysOnce(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if n := strings.Count(msg, "framing") + strings.Count(msg, "decoding"); n > 1 {
		t.Errorf("%s: the error names its step %d times: %q", what, n, msg)
	}
}

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func (c *suite) oversized(t *testing.T) {
	// Every frame with a run of 0xFF written over each of its first bytes,
	// where length fields live.
	for i, f := range c.cs.Frames {
		for off := 0; off < min(16, len(f)); off++ {
			for _, run := range []int{1, 2, 4} {
				m := append([]byte(nil), f...)
				for j := off; j < min(off+run, len(m)); j++ {
					m[j] = 0xFF
				}
				sess := c.session()
				c.feed(sess, c.setupBefore(i), recvFirst)
				var got feedResult
				n := allocated(func() { got = c.feed(sess, [][]byte{m}, recvFirst) })
				if errors.Is(got.err, errPanic) {
					t.Errorf("frame %d with 0xFF×%d at %d: %v", i, run, off, got.err)
				}
				saysOnce(t, fmt.Sprintf("frame %d with 0xFF×%d at %d", i, run, off), got.err)
				if n > allocBudget {
					t.Errorf("frame %d with 0xFF×%d at %d: allocated %d bytes for a %d-byte input", i, run, off, n, len(m))
				}
			}
		}
	}
	for k, o := range c.cs.Oversized {
		sess := c.session()
		if got := c.feed(sess, c.setupBefore(len(c.cs.Frames)), recvFirst); got.err != nil {
			t.Fatalf("priming: %v", got.err)
		}
		var got feedResult
		n := allocated(func() { got = c.feed(sess, [][]byte{o}, recvFirst) })
		if !errors.Is(got.err, plugins.ErrTooLarge) && !errors.Is(got.err, plugins.ErrMalformed) {
			t.Errorf("oversized input %d (%d bytes): error %v, want plugins.ErrTooLarge or ErrMalformed", k, len(o), got.err)
		}
		saysOnce(t, fmt.Sprintf("oversized input %d", k), got.err)
		if n > allocBudget {
			t.Errorf("oversized input %d: allocated %d bytes", k, n)
		}
	}
	if !c.tcp() {
		big := append(append([]byte(nil), c.cs.Frames[len(c.cs.Frames)-1]...), make([]byte, c.cs.MaxFrame)...)
		res, err := decode(c.session(), big, recvFirst)
		if err == nil {
			t.Errorf("a %d-byte datagram (MaxFrame %d) decoded %d signals without error", len(big), c.cs.MaxFrame, len(res.Signals))
		}
	}
}
