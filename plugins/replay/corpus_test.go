package replay_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/signal"
)

// The ACME AT-1 trip of protocols/acme/testdata/trip.
const (
	acmeHello     = "ac3e0101000f3335363330373034323434313031332898"
	acmeBatch     = "ac3e0102001900020169259a7c1f4e5fb007fe3420002401f403840002ffff6927"
	acmeHeartbeat = "ac3e01030000ab24"
)

func corpusRow(proto, class, method, enc, payload, extra string) string {
	return fmt.Sprintf(`{"protocol":%q,"test_class":%q,"test_method":%q,"encoding":%q,"payload":%q%s}`, proto, class, method, enc, payload, extra)
}

// TestEachCorpus replays corpus rows: only the decoder's protocol, only
// device frames; one session per test method (a login carries over to the
// frames after it, not into the next method); the row's transport; rows
// that hold no frame say so.
func TestEachCorpus(t *testing.T) {
	dec, ok := plugins.Decoders.Lookup("acme")
	if !ok {
		t.Fatal("no acme decoder")
	}
	in := strings.Join([]string{
		corpusRow("acme", "A", "m1", "hex", acmeHello, `,"transport":"tcp","direction":"device_to_server"`), // 1
		corpusRow("gt06", "G", "m1", "hex", "78780d01", ""),                                                 // 2: another protocol
		corpusRow("acme", "A", "m1", "hex", acmeBatch, ""),                                                  // 3: after the hello
		corpusRow("acme", "A", "m1", "hex", "ac3e0181", `,"direction":"server_to_device"`),                  // 4: not a device frame
		corpusRow("acme", "A", "split", "hex", acmeHello+"ac3e", `,"check":"frame_split"`),                  // 5: framing case
		corpusRow("acme", "A", "m2", "hex", acmeBatch, ""),                                                  // 6: new method, no hello
		corpusRow("acme", "A", "m3", "hex", acmeHeartbeat, `,"transport":"udp"`),                            // 7: acme is TCP only
		`{"protocol":"acme","encoding":"base64","payload":"x"}`,                                             // 8
		`not json`, // 9
		corpusRow("acme", "A", "m4", "hex", "zz", ""), // 10
	}, "\n")
	recv := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var got []string
	sum, err := replay.Each(dec, strings.NewReader(in), replay.Options{Corpus: true, Now: func() time.Time { return recv }}, func(r *replay.LineResult) error {
		line := fmt.Sprintf("%d %s signals=%d acks=%d device=%s", r.Line, r.Transport, len(r.Signals), len(r.Acks), r.Device)
		if r.Err != nil {
			line += fmt.Sprintf(" noframe=%v err=%v", errors.Is(r.Err, replay.ErrNoFrame), r.Err)
		}
		got = append(got, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1 tcp signals=0 acks=1 device=356307042441013",
		"3 tcp signals=1 acks=1 device=356307042441013",
		"6 tcp signals=0 acks=0 device= noframe=false err=decoding acme records: no device identification",
		"7 tcp signals=0 acks=0 device= noframe=true err=the capture came over udp, acme supports [tcp]",
		`8 tcp signals=0 acks=0 device= noframe=true err=corpus row encoding "base64" is neither hex nor text`,
		"9 tcp signals=0 acks=0 device= noframe=true err=reading corpus row: invalid character 'o' in literal null (expecting 'u')",
		"10 tcp signals=0 acks=0 device= noframe=true err=decoding hex: encoding/hex: invalid byte: U+007A 'z'",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if sum.Frames != 7 || sum.Rejected != 5 || sum.Signals != 1 {
		t.Errorf("summary %+v, want 7 frames, 5 rejected, 1 signal", sum)
	}

	// CorpusProtocol replays another protocol's rows with this decoder (a
	// port under another name).
	var lines []int
	if _, err := replay.Each(dec, strings.NewReader(strings.ReplaceAll(in, `"protocol":"acme"`, `"protocol":"acme_port"`)),
		replay.Options{Corpus: true, CorpusProtocol: "acme_port"}, func(r *replay.LineResult) error {
			lines = append(lines, r.Line)
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lines) != "[1 3 6 7 8 9 10]" {
		t.Errorf("CorpusProtocol acme_port replayed lines %v", lines)
	}
}

// TestDecodeCorpusPrintsAsDecode: in corpus mode Decode prints what it
// prints for the same frames given as hex, at the corpus line numbers.
func TestDecodeCorpusPrintsAsDecode(t *testing.T) {
	dec, _ := plugins.Decoders.Lookup("acme")
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	var hexOut, corpusOut bytes.Buffer
	if _, err := replay.Decode(dec, strings.NewReader(acmeHello+"\n"+acmeBatch+"\n"), &hexOut, replay.Options{Hex: true, Now: now}); err != nil {
		t.Fatal(err)
	}
	in := corpusRow("acme", "A", "m", "hex", acmeHello, "") + "\n" + corpusRow("acme", "A", "m", "hex", acmeBatch, "") + "\n"
	if _, err := replay.Decode(dec, strings.NewReader(in), &corpusOut, replay.Options{Corpus: true, Now: now}); err != nil {
		t.Fatal(err)
	}
	if hexOut.String() != corpusOut.String() || !strings.Contains(hexOut.String(), `"frame":2,"device_id":"356307042441013"`) {
		t.Errorf("hex input printed\n%s\ncorpus input printed\n%s", hexOut.String(), corpusOut.String())
	}
}

// optDecoder declares options that corpus rows' decoder_state set.
type optDecoder struct{}

var (
	optModel = plugins.StringOption{Name: "model"}
	optHBM   = plugins.BoolOption{Name: "hbm"}
	optSize  = plugins.IntOption{Name: "flex_size"}
)

func (optDecoder) Info() plugins.Info {
	return plugins.Info{Name: "opt", Transports: []plugins.Transport{plugins.TCP}, Options: []plugins.Option{optModel, optHBM, optSize}}
}

func (optDecoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return &optSession{cfg: cfg}
}

type optSession struct{ cfg plugins.SessionConfig }

func (s *optSession) Frame(b []byte) (int, error) { return len(b), nil }

func (s *optSession) Decode(f []byte, recv time.Time) (plugins.Result, error) {
	sig := signal.New("d", recv)
	sig.SetAttr("model", optModel.Get(s.cfg.Options))
	sig.SetAttr("hbm", optHBM.Get(s.cfg.Options))
	sig.SetAttr("flex_size", optSize.Get(s.cfg.Options))
	return plugins.Result{Signals: []signal.Signal{sig}}, nil
}

// TestEachCorpusDecoderState: the decoder_state keys a decoder declares
// become its session's options (modelOverride is "model"), over the
// replay's own options; others are ignored.
func TestEachCorpusDecoderState(t *testing.T) {
	in := corpusRow("opt", "O", "m", "text", "x", `,"decoder_state":{"modelOverride":"TR-1","hbm":true,"flex_size":37,"other":1}`) + "\n" +
		corpusRow("opt", "O", "m", "text", "y", "") + "\n"
	var got []string
	_, err := replay.Each(optDecoder{}, strings.NewReader(in), replay.Options{Corpus: true, Options: map[string]string{"model": "base"}}, func(r *replay.LineResult) error {
		if r.Err != nil {
			t.Fatalf("line %d: %v", r.Line, r.Err)
		}
		a := r.Signals[0].Attrs
		got = append(got, fmt.Sprintf("%v %v %v", a["model"], a["hbm"], a["flex_size"]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "; ") != "TR-1 true 37; base false 0" {
		t.Errorf("options per row: %q", got)
	}
}

// FuzzEachCorpus feeds arbitrary input to a corpus-mode replay: no panic,
// one result per counted line, in line order, each either records or an
// error, and every record passes Check.
func FuzzEachCorpus(f *testing.F) {
	f.Add("gt06", corpusRow("gt06", "G", "m", "hex", "78780d01", ""))
	f.Add("acme", corpusRow("acme", "A", "m", "hex", acmeHello, `,"transport":"udp"`)+"\n"+corpusRow("acme", "A", "m", "hex", acmeBatch, ""))
	f.Add("h02", corpusRow("h02", "H", "m", "text", "*HQ,9001000002,V1,213945,A,3542.2043,N,13838.6508,E,0.00,170,221025,FBFFF9FF#", `,"decoder_state":{"x":1}`))
	f.Add("acme", "{\n\n#\n"+`{"protocol":"acme","encoding":"hex","payload":"`+strings.Repeat("ac3e", 40)+`"}`)
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, proto, in string) {
		dec, ok := plugins.Decoders.Lookup(proto)
		if !ok {
			return
		}
		last := 0
		n := 0
		sum, err := replay.Each(dec, strings.NewReader(in), replay.Options{Corpus: true, Now: func() time.Time { return recv }}, func(r *replay.LineResult) error {
			n++
			if r.Line <= last {
				t.Fatalf("line %d after line %d", r.Line, last)
			}
			last = r.Line
			if err := plugins.CheckSignals(r.Signals); err != nil {
				t.Fatalf("line %d: a record that fails Check: %v", r.Line, err)
			}
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "reading input") {
			t.Fatalf("Each: %v", err)
		}
		if sum.Frames != n || sum.Rejected > n {
			t.Fatalf("summary %+v for %d results", sum, n)
		}
	})
}

// nakDecoder refuses every frame and replies NAK, as a Rejecter.
type nakDecoder struct{}

func (nakDecoder) Info() plugins.Info {
	return plugins.Info{Name: "nak", Transports: []plugins.Transport{plugins.TCP}}
}
func (nakDecoder) NewSession(plugins.SessionConfig) plugins.Session { return nakSession{} }

type nakSession struct{}

func (nakSession) Frame(b []byte) (int, error) { return len(b), nil }
func (nakSession) Decode([]byte, time.Time) (plugins.Result, error) {
	return plugins.Result{}, fmt.Errorf("decoding nak frame: %w", plugins.ErrChecksum)
}
func (nakSession) Reject(err error) []byte { return []byte("NAK " + err.Error()) }

// TestEachReject: a rejected line carries the reply the gateway would
// write before the close; a decoded one none.
func TestEachReject(t *testing.T) {
	var got []string
	if _, err := replay.Each(nakDecoder{}, strings.NewReader("x\n"), replay.Options{}, func(r *replay.LineResult) error {
		got = append(got, string(r.Reject))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "NAK decoding nak frame: checksum mismatch" {
		t.Errorf("reject replies %q", got)
	}
	dec, _ := plugins.Decoders.Lookup("acme")
	if _, err := replay.Each(dec, strings.NewReader(acmeHello+"\n"), replay.Options{Hex: true}, func(r *replay.LineResult) error {
		if r.Err != nil || r.Reject != nil {
			t.Errorf("decoded line: err %v, reject %q", r.Err, r.Reject)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
