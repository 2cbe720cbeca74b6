package gt06

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// corpusFrame is one line of testdata/traccar-gt06.jsonl (GT06 frames from
// Traccar's decoder tests, see /work/shared/testdata/README.md).
type corpusFrame struct {
	Payload  string          `json:"payload"`
	Check    string          `json:"check"`
	Expects  json.RawMessage `json:"expects"`
	Note     string          `json:"note"`
	Seq      int             `json:"seq"`
	State    map[string]any  `json:"decoder_state"`
	Derived  derived         `json:"derived"`
	Encoding string          `json:"encoding"`
}

type derived struct {
	Start    string `json:"start"`
	Kind     string `json:"kind"`
	LengthOK *bool  `json:"length_ok"`
	CRCOK    *bool  `json:"crc_itu_ok"`
	StopOK   *bool  `json:"stop_ok"`
	Proto    string `json:"protocol_number"`
	Trailing int    `json:"trailing_bytes"`
}

func loadCorpus(t testing.TB) []corpusFrame {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "traccar-gt06.jsonl"))
	if err != nil {
		t.Fatalf("opening corpus: %v", err)
	}
	defer f.Close()
	var out []corpusFrame
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c corpusFrame
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("parsing corpus line %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading corpus: %v", err)
	}
	return out
}

// loginFrame is the login example of the Concox GT06 document.
var loginFrame = mustHex("78780d01012345678901234500018cdd0d0a")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

var recvTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// loggedIn returns a session that has seen a login packet.
func loggedIn(t testing.TB) plugins.Session { return loggedInModel(t, "") }

// loggedInModel is loggedIn with the listener option model (Traccar's
// modelOverride in the corpus's decoder_state).
func loggedInModel(t testing.TB, model string) plugins.Session {
	t.Helper()
	var opts map[string]string
	if model != "" {
		opts = map[string]string{"model": model}
	}
	s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10, Options: plugins.MustDecodeOptions(&Decoder{}, opts)})
	if _, err := s.Decode(loginFrame, recvTime); err != nil {
		t.Fatalf("login: %v", err)
	}
	return s
}

// outcome is what one corpus frame produced, as kept in the golden file.
type outcome struct {
	Line    int               `json:"line"`
	Proto   string            `json:"proto,omitempty"`
	Error   string            `json:"error,omitempty"`
	Class   string            `json:"class"`
	Ack     string            `json:"ack,omitempty"`
	Signals []json.RawMessage `json:"signals,omitempty"`
}

func errClass(err error) string {
	for _, e := range []error{plugins.ErrChecksum, plugins.ErrTooLarge, plugins.ErrMalformed, plugins.ErrUnsupported, plugins.ErrNoDevice, plugins.ErrUnauthorized} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if err != nil {
		return "other"
	}
	return "ok"
}

// decodeStream frames and decodes one payload as the gateway would.
func decodeStream(s plugins.Session, data []byte) (plugins.Result, error) {
	var all plugins.Result
	for len(data) > 0 {
		n, err := s.Frame(data)
		if err != nil {
			return all, err
		}
		if n == 0 {
			return all, fmt.Errorf("%w: truncated (%d bytes left)", plugins.ErrMalformed, len(data))
		}
		res, err := s.Decode(data[:n], recvTime)
		if err != nil {
			return all, err
		}
		all.Signals = append(all.Signals, res.Signals...)
		all.Ack = append(all.Ack, res.Ack...)
		data = data[n:]
	}
	return all, nil
}

// TestCorpus runs every GT06 frame of the corpus through a logged-in
// session. Frames whose CRC, length or stop bits are wrong (derived) must be
// rejected with that reason; the full outcome of every frame is compared
// with testdata/corpus.golden (go test -run TestCorpus -update rewrites it).
func TestCorpus(t *testing.T) {
	frames := loadCorpus(t)
	var got []outcome
	counts := map[string]int{}
	for i, c := range frames {
		data := mustHex(c.Payload)
		o := outcome{Line: i + 1, Proto: c.Derived.Proto}
		if c.Check == "frame_split" {
			var exp struct {
				Frame string `json:"frame"`
			}
			if err := json.Unmarshal(c.Expects, &exp); err != nil {
				t.Fatalf("line %d: expects: %v", i+1, err)
			}
			n, err := loggedIn(t).Frame(data)
			o.Class = errClass(err)
			if err != nil {
				o.Error = err.Error()
			} else if want := len(exp.Frame) / 2; n != want && (c.Derived.LengthOK == nil || *c.Derived.LengthOK) {
				t.Errorf("line %d: Frame = %d, want %d (expects.frame)", i+1, n, want)
			}
			counts["split:"+o.Class]++
			got = append(got, o)
			continue
		}
		model, _ := c.State["modelOverride"].(string)
		res, err := decodeStream(loggedInModel(t, model), data)
		o.Class = errClass(err)
		if err != nil {
			o.Error = err.Error()
		}
		o.Ack = hex.EncodeToString(res.Ack)
		for _, s := range res.Signals {
			if s.DeviceID != "123456789012345" || s.Protocol != Name || len(s.Frame) == 0 {
				t.Errorf("line %d: signal without device id / protocol / frame: %+v", i+1, s)
			}
			b, err := json.Marshal(s.ToJSON())
			if err != nil {
				t.Fatal(err)
			}
			o.Signals = append(o.Signals, b)
		}
		counts[o.Class]++
		got = append(got, o)

		// Hard rules from the corpus's derived framing facts.
		d := c.Derived
		switch {
		case d.Kind == "unknown_start":
			if !errors.Is(err, plugins.ErrMalformed) {
				t.Errorf("line %d: unknown start: got %v, want ErrMalformed", i+1, err)
			}
		case d.LengthOK != nil && !*d.LengthOK && d.Trailing > 0 && d.CRCOK != nil && *d.CRCOK:
			// A well-formed packet followed by more bytes: the first packet
			// decodes on its own merits.
		case d.LengthOK != nil && !*d.LengthOK, d.StopOK != nil && !*d.StopOK:
			if !errors.Is(err, plugins.ErrMalformed) {
				t.Errorf("line %d: bad length/stop bits: got %v, want ErrMalformed", i+1, err)
			}
		case d.CRCOK != nil && !*d.CRCOK:
			if !errors.Is(err, plugins.ErrChecksum) {
				t.Errorf("line %d: bad CRC: got %v, want ErrChecksum", i+1, err)
			}
		case c.Check == "decodes_position" || c.Check == "decodes_attributes":
			if err == nil && len(res.Signals) == 0 {
				t.Errorf("line %d: Traccar decodes a record here, this decoder produced none", i+1)
			}
		}
	}
	t.Logf("corpus outcomes: %v", counts)
	compareGolden(t, "corpus.golden", got)
}

func compareGolden(t *testing.T, name string, got []outcome) {
	t.Helper()
	var sb strings.Builder
	for _, o := range got {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run with -update to create): %v", err)
	}
	gl, wl := strings.Split(sb.String(), "\n"), strings.Split(string(want), "\n")
	if len(gl) != len(wl) {
		t.Fatalf("golden %s: %d lines, want %d", name, len(gl), len(wl))
	}
	for i := range gl {
		if gl[i] != wl[i] {
			t.Errorf("golden %s line %d:\n got %s\nwant %s", name, i+1, gl[i], wl[i])
		}
	}
}
