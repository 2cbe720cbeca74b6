// Package replay feeds captured frames through one decoder session, the
// engine behind `fleetcore decode` and the corpus conformance tests.
package replay

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Options tunes a replay.
type Options struct {
	Hex       bool              // each line is the frame as hex
	Transport plugins.Transport // default TCP
	MaxFrame  int               // default 64 KiB
	Options   map[string]string // listener options for the session
	// Now returns the receive time of each frame (default time.Now).
	Now func() time.Time
	// Corpus: each line is a row of a capture corpus (the format of
	// shared/testdata/traccar-frames*.jsonl, see CorpusRow) instead of a
	// frame; Hex and Transport are then taken from the row. Only the rows
	// of CorpusProtocol (default: the decoder's name) are replayed; the
	// others, server-to-device rows and framing-only cases (check
	// frame_split, encoder_output) are skipped like comment lines.
	Corpus         bool
	CorpusProtocol string
}

// ErrNoFrame is wrapped by the error of an input line that holds no frame
// to decode: text that is not hex in Hex mode, a corpus row that cannot be
// read, or one that came over a transport the decoder does not support.
var ErrNoFrame = errors.New("no frame on the line")

// noFrameError is a line without a frame: its text is the reason alone
// (what `fleetcore decode` prints), and it wraps ErrNoFrame.
type noFrameError struct{ msg string }

func (e *noFrameError) Error() string { return e.msg }
func (e *noFrameError) Unwrap() error { return ErrNoFrame }

func noFrame(format string, args ...any) error {
	return &noFrameError{msg: fmt.Sprintf(format, args...)}
}

// Output is one line `fleetcore decode` prints: a decoded signal with the
// input line number, or the reason a frame was rejected.
type Output struct {
	Frame  int            `json:"frame"`
	Error  string         `json:"error,omitempty"`
	Signal *signal.Signal `json:"-"`
}

// MarshalJSON flattens the signal's canonical fields next to "frame".
func (o Output) MarshalJSON() ([]byte, error) {
	if o.Signal == nil {
		type plain Output
		return json.Marshal(plain(o))
	}
	b, err := json.Marshal(o.Signal.ToJSON())
	if err != nil {
		return nil, err
	}
	return append([]byte(fmt.Sprintf(`{"frame":%d,`, o.Frame)), b[1:]...), nil
}

// Frame runs one input frame through the session. TCP frames go through
// the framing loop the gateway runs (plugins.Framer) with the session's
// framer: the input must hold exactly the frames it frames (one or
// several), and its end ends the last frame where the protocol allows it
// (plugins.EOFFramer: a line protocol's last line needs no line end);
// bytes left then are reported as a truncated frame. Each frame's records
// go through plugins.CheckSignals, as in the gateway: a frame with a
// record the gateway would refuse is an error here too, and none of its
// records are returned. The records of the frames before an error are.
func Frame(sess plugins.Session, tr plugins.Transport, data []byte, recv time.Time) ([]signal.Signal, error) {
	sigs, _, err := run(sess, tr, data, recv, false)
	return sigs, err
}

// FrameAcks is Frame that also returns the acks the frames of data
// produced, in order (an empty ack writes nothing and is left out).
func FrameAcks(sess plugins.Session, tr plugins.Transport, data []byte, recv time.Time) ([]signal.Signal, [][]byte, error) {
	return run(sess, tr, data, recv, true)
}

func run(sess plugins.Session, tr plugins.Transport, data []byte, recv time.Time, acks bool) ([]signal.Signal, [][]byte, error) {
	h := &collector{sess: sess, recv: recv, acks: acks}
	var err error
	if tr == plugins.UDP {
		_, err = h.Frame(data)
		return h.sigs, h.ackList, err
	}
	fr := plugins.NewFramer(plugins.FramerConfigFor(sess, len(data), true))
	defer fr.Close()
	if err := fr.Run(bytes.NewReader(data), h); err != nil {
		return h.sigs, h.ackList, err
	}
	if n := fr.Buffered(); n > 0 {
		return h.sigs, h.ackList, fmt.Errorf("%w: truncated frame (%d bytes left)", plugins.ErrMalformed, n)
	}
	return h.sigs, h.ackList, nil
}

// collector is Frame's frame handler: it decodes each frame and keeps its
// records (and, with acks, its acks).
type collector struct {
	sess    plugins.Session
	recv    time.Time
	sigs    []signal.Signal
	acks    bool
	ackList [][]byte
}

func (c *collector) Frame(frame []byte) (bool, error) {
	res, err := c.sess.Decode(frame, c.recv)
	if err == nil {
		err = plugins.CheckSignals(res.Signals)
	}
	if err != nil {
		return false, err
	}
	c.sigs = append(c.sigs, res.Signals...)
	if c.acks && len(res.Ack) > 0 {
		c.ackList = append(c.ackList, bytes.Clone(res.Ack))
	}
	return false, nil
}

func (c *collector) Flush() error { return nil }

// Summary counts what a replay made of its input.
type Summary struct {
	Frames   int // input lines holding a frame (blank and # lines are not)
	Rejected int // of them, lines with an error (not hex, or a frame refused)
	Signals  int // signals decoded
}

// Run is Decode without the summary.
func Run(dec plugins.Decoder, in io.Reader, out io.Writer, o Options) error {
	_, err := Decode(dec, in, out, o)
	return err
}

// Decode reads one frame per line from in and writes one JSON object per
// decoded signal (or rejected frame) to out, and returns what it counted.
// Blank lines and lines starting with # are skipped but still counted in
// the line numbers. In text mode the escapes \r and \n in a line stand
// for CR and LF, so multi-line frames fit on one line; the end of a line
// ends its last frame where the protocol allows (see Frame). The error is
// a reading or writing failure, not a rejected frame.
func Decode(dec plugins.Decoder, in io.Reader, out io.Writer, o Options) (Summary, error) {
	enc := json.NewEncoder(out)
	return Each(dec, in, o, func(r *LineResult) error {
		for i := range r.Signals {
			if err := enc.Encode(Output{Frame: r.Line, Signal: &r.Signals[i]}); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
		if r.Err != nil {
			if err := enc.Encode(Output{Frame: r.Line, Error: r.Err.Error()}); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
		return nil
	})
}

// LineResult is what one input line holding a frame made.
type LineResult struct {
	Line      int               // the input line number (from 1)
	Data      []byte            // the line's bytes (nil when it held no frame)
	Transport plugins.Transport // how the bytes were fed
	Signals   []signal.Signal   // the records of the line's frames before any error
	Acks      [][]byte          // the acks of those frames, in order (empty acks left out)
	Device    string            // the session's device id after the line (plugins.DeviceIdentifier)
	// Reject is the reply the gateway would write before closing the
	// connection on the rejected frame (plugins.Rejecter; nil for none).
	Reject []byte
	// Err is why the line's (last) frame was rejected, or wraps ErrNoFrame
	// when the line held no frame.
	Err error
}

// Each reads one frame per line from in, as Decode does, runs it through
// one decoder session (in Corpus mode: one per Traccar test method and
// transport, with the row's decoder_state options the decoder declares) and
// calls fn with what it made. An error from fn stops the replay and is
// returned; other errors are reading failures or listener options the
// decoder refuses.
func Each(dec plugins.Decoder, in io.Reader, o Options, fn func(*LineResult) error) (Summary, error) {
	var sum Summary
	if o.Transport == "" {
		o.Transport = plugins.TCP
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = 64 << 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CorpusProtocol == "" {
		o.CorpusProtocol = dec.Info().Name
	}
	opts, err := plugins.DecodeOptions(dec, o.Options)
	if err != nil {
		return sum, fmt.Errorf("decoding listener options: %w", err)
	}
	newSession := func(tr plugins.Transport, opts plugins.Options) plugins.Session {
		return dec.NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: o.MaxFrame, Options: opts, Logger: hclog.NewNullLogger()})
	}
	sess := newSession(o.Transport, opts)
	var group corpusGroup // the corpus session's test method, transport and options
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		r := &LineResult{Line: line, Transport: o.Transport}
		hexIn := o.Hex
		if o.Corpus {
			row, err := ParseCorpusRow([]byte(text))
			switch {
			case err != nil:
				r.Err = err
			case row.Protocol != o.CorpusProtocol || !row.Decodable():
				continue
			default:
				tr, ok := row.TransportFor(dec.Info().Transports)
				if !ok {
					r.Err = noFrame("the capture came over %s, %s supports %v", row.Transport, dec.Info().Name, dec.Info().Transports)
					break
				}
				g := corpusGroup{class: row.TestClass, method: row.TestMethod, tr: tr, opts: row.Options(dec, o.Options), set: true}
				if !group.same(g) {
					gopts, err := plugins.DecodeOptions(dec, g.opts)
					if err != nil {
						r.Err = noFrame("corpus row's decoder_state: %v", err)
						break
					}
					group = g
					sess = newSession(tr, gopts)
				}
				r.Transport = tr
				text, hexIn = row.Payload, row.Encoding == "hex"
			}
		}
		sum.Frames++
		if r.Err == nil {
			if hexIn {
				b, err := hex.DecodeString(strings.TrimSpace(text))
				if err != nil {
					r.Err = noFrame("decoding hex: %v", err)
				}
				r.Data = b
			} else if o.Corpus {
				r.Data = []byte(text) // a corpus payload is the exact string
			} else {
				r.Data = []byte(unescape(text))
			}
		}
		if r.Err == nil {
			r.Signals, r.Acks, r.Err = FrameAcks(sess, r.Transport, r.Data, o.Now().UTC())
			if di, ok := sess.(plugins.DeviceIdentifier); ok {
				r.Device = di.DeviceID()
			}
			if rj, ok := sess.(plugins.Rejecter); ok && r.Err != nil {
				r.Reject = bytes.Clone(rj.Reject(r.Err))
			}
		} else {
			r.Data = nil
		}
		sum.Signals += len(r.Signals)
		if r.Err != nil {
			sum.Rejected++
		}
		if err := fn(r); err != nil {
			return sum, err
		}
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("reading input: %w", err)
	}
	return sum, nil
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\\`, `\`).Replace(s)
}
