package replay

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"github.com/fleetcore/fleetcore/plugins"
)

// MaxCorpusPayloadBytes caps a corpus row's payload (hex: twice the
// frame): more than the largest max_frame a listener accepts.
const MaxCorpusPayloadBytes = 32 << 20

// CorpusRow is one line of a capture corpus in the format of
// shared/testdata/traccar-frames*.jsonl (its README): a device capture with
// what the upstream test asserts about it. Replay reads the fields it needs
// to feed the payload to a decoder; unknown fields are ignored.
type CorpusRow struct {
	Protocol   string `json:"protocol"`
	TestClass  string `json:"test_class"`
	TestMethod string `json:"test_method"`
	// Encoding is hex (Payload is lowercase hex bytes) or text (the exact
	// string).
	Encoding  string `json:"encoding"`
	Payload   string `json:"payload"`
	Check     string `json:"check"`
	Transport string `json:"transport"` // tcp, udp, http, tcp|udp or empty
	Direction string `json:"direction"` // device_to_server (or empty) is replayed
	// DecoderState holds the upstream decoder's settings for the capture
	// (modelOverride, Suntech hbm, …).
	DecoderState map[string]any `json:"decoder_state"`
}

// ParseCorpusRow reads one corpus line. Errors wrap ErrNoFrame.
func ParseCorpusRow(b []byte) (*CorpusRow, error) {
	var r CorpusRow
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, noFrame("reading corpus row: %v", err)
	}
	switch {
	case r.Protocol == "":
		return nil, noFrame("corpus row without a protocol")
	case r.Encoding != "hex" && r.Encoding != "text":
		return nil, noFrame("corpus row encoding %s is neither hex nor text", clip(r.Encoding))
	case len(r.Payload) > MaxCorpusPayloadBytes:
		return nil, noFrame("corpus row payload of %d bytes exceeds %d", len(r.Payload), MaxCorpusPayloadBytes)
	}
	return &r, nil
}

// Decodable reports whether the row is a device's frame to decode: not a
// server-to-device message and not a framing-only case (Traccar's frame
// splitter tests feed a buffer and assert only its first frame).
func (r *CorpusRow) Decodable() bool {
	switch r.Check {
	case "frame_split", "encoder_output":
		return false
	}
	return r.Direction == "" || r.Direction == "device_to_server"
}

// TransportFor picks the transport to replay the row over among those a
// decoder supports: udp captures over UDP, tcp and http ones over TCP,
// others (tcp|udp, unset) over TCP when supported, else UDP.
func (r *CorpusRow) TransportFor(supported []plugins.Transport) (plugins.Transport, bool) {
	var prefs []plugins.Transport
	switch r.Transport {
	case "udp":
		prefs = []plugins.Transport{plugins.UDP}
	case "tcp", "http":
		prefs = []plugins.Transport{plugins.TCP}
	default:
		prefs = []plugins.Transport{plugins.TCP, plugins.UDP}
	}
	for _, p := range prefs {
		if slices.Contains(supported, p) {
			return p, true
		}
	}
	return "", false
}

// Options are the listener options of the row's session: base, plus every
// decoder_state key the decoder declares as an option (Traccar's
// modelOverride is the option "model", as in the corpus test), as text.
func (r *CorpusRow) Options(dec plugins.Decoder, base map[string]string) map[string]string {
	out := maps.Clone(base)
	for _, o := range dec.Info().Options {
		name := o.Spec().Name
		key := name
		if name == "model" {
			key = "modelOverride"
		}
		v, ok := r.DecoderState[key]
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		switch x := v.(type) {
		case string:
			out[name] = x
		case bool:
			out[name] = strconv.FormatBool(x)
		case float64:
			out[name] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			b, _ := json.Marshal(x)
			out[name] = string(b)
		}
	}
	return out
}

// corpusGroup is what a corpus session is kept for: rows of one upstream
// test method over one transport with the same options share a session (a
// login frame and the frames after it).
type corpusGroup struct {
	class, method string
	tr            plugins.Transport
	opts          map[string]string
	set           bool
}

func (g *corpusGroup) same(o corpusGroup) bool {
	return g.set && g.class == o.class && g.method == o.method && g.tr == o.tr && maps.Equal(g.opts, o.opts)
}

func clip(s string) string {
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return strconv.Quote(s)
}
