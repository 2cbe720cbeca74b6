// Package replay feeds captured frames through one decoder session, the
// engine behind `fleetcore decode` and the corpus conformance tests.
package replay

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/plugins"
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

// Frame runs one input frame through the session. TCP frames go through the
// session's framer first: the line must hold exactly the frames it frames
// (one or several); leftover bytes are reported as a truncated frame. Each
// frame's records go through plugins.CheckSignals, as in the gateway: a
// frame with a record the gateway would refuse is an error here too, and
// none of its records are returned.
func Frame(sess plugins.Session, tr plugins.Transport, data []byte, recv time.Time) ([]signal.Signal, error) {
	if tr == plugins.UDP {
		res, err := sess.Decode(data, recv)
		if err == nil {
			err = plugins.CheckSignals(res.Signals)
		}
		if err != nil {
			return nil, err
		}
		return res.Signals, nil
	}
	var out []signal.Signal
	for len(data) > 0 {
		n, err := sess.Frame(data)
		if err != nil {
			return out, fmt.Errorf("framing: %w", err)
		}
		if n == 0 {
			return out, fmt.Errorf("framing: %w: truncated frame (%d bytes left)", plugins.ErrMalformed, len(data))
		}
		if n > len(data) {
			return out, fmt.Errorf("framing: framer returned %d of %d bytes", n, len(data))
		}
		res, err := sess.Decode(data[:n], recv)
		if err == nil {
			err = plugins.CheckSignals(res.Signals)
		}
		if err != nil {
			return out, err
		}
		out = append(out, res.Signals...)
		data = data[n:]
	}
	return out, nil
}

// Run reads one frame per line from in and writes one JSON object per
// decoded signal (or rejected frame) to out. Blank lines and lines starting
// with # are skipped but still counted. In text mode the escapes \r and \n
// in a line stand for CR and LF, so multi-line frames fit on one line.
func Run(dec plugins.Decoder, in io.Reader, out io.Writer, o Options) error {
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
		return fmt.Errorf("decoding listener options: %w", err)
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
		var data []byte
		if o.Hex {
			b, err := hex.DecodeString(strings.TrimSpace(text))
			if err != nil {
				if err := enc.Encode(Output{Frame: line, Error: fmt.Sprintf("decoding hex: %v", err)}); err != nil {
					return err
				}
				continue
			}
			data = b
		} else {
			data = []byte(unescape(text))
		}
		sigs, err := Frame(sess, o.Transport, data, o.Now().UTC())
		for i := range sigs {
			if err := enc.Encode(Output{Frame: line, Signal: &sigs[i]}); err != nil {
				return err
			}
		}
		if err != nil {
			if err := enc.Encode(Output{Frame: line, Error: err.Error()}); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	return nil
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\\`, `\`).Replace(s)
}
