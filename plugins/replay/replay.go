// Package replay feeds captured frames through one decoder session, the
// engine behind `fleetcore decode` and the corpus conformance tests.
package replay

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
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
	h := &collector{sess: sess, recv: recv}
	if tr == plugins.UDP {
		_, err := h.Frame(data)
		return h.sigs, err
	}
	fr := plugins.NewFramer(plugins.FramerConfigFor(sess, len(data), true))
	defer fr.Close()
	if err := fr.Run(bytes.NewReader(data), h); err != nil {
		return h.sigs, err
	}
	if n := fr.Buffered(); n > 0 {
		return h.sigs, fmt.Errorf("%w: truncated frame (%d bytes left)", plugins.ErrMalformed, n)
	}
	return h.sigs, nil
}

// collector is Frame's frame handler: it decodes each frame and keeps its
// records.
type collector struct {
	sess plugins.Session
	recv time.Time
	sigs []signal.Signal
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
	opts, err := plugins.DecodeOptions(dec, o.Options)
	if err != nil {
		return sum, fmt.Errorf("decoding listener options: %w", err)
	}
	sess := dec.NewSession(plugins.SessionConfig{Transport: o.Transport, MaxFrame: o.MaxFrame, Options: opts, Logger: hclog.NewNullLogger()})
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	enc := json.NewEncoder(out)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		sum.Frames++
		var data []byte
		if o.Hex {
			b, err := hex.DecodeString(strings.TrimSpace(text))
			if err != nil {
				sum.Rejected++
				if err := enc.Encode(Output{Frame: line, Error: fmt.Sprintf("decoding hex: %v", err)}); err != nil {
					return sum, fmt.Errorf("writing output: %w", err)
				}
				continue
			}
			data = b
		} else {
			data = []byte(unescape(text))
		}
		sigs, err := Frame(sess, o.Transport, data, o.Now().UTC())
		sum.Signals += len(sigs)
		for i := range sigs {
			if err := enc.Encode(Output{Frame: line, Signal: &sigs[i]}); err != nil {
				return sum, fmt.Errorf("writing output: %w", err)
			}
		}
		if err != nil {
			sum.Rejected++
			if err := enc.Encode(Output{Frame: line, Error: err.Error()}); err != nil {
				return sum, fmt.Errorf("writing output: %w", err)
			}
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
