package wasmdecoder

import (
	"bufio"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/acme"
)

// seeds adds every frame of protocols/acme's captures to the corpus.
func seeds(f *testing.F) {
	paths, _ := filepath.Glob("../../protocols/acme/testdata/*/input.hex")
	for _, p := range paths {
		file, err := os.Open(p)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if b, err := hex.DecodeString(line); err == nil {
				f.Add(b)
			}
		}
		file.Close()
	}
}

func sentinel(err error) string {
	if err == nil {
		return ""
	}
	for _, e := range sentinelTexts {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "other: " + err.Error()
}

// FuzzSession feeds arbitrary bytes through a logged-in session of the
// WAT example and of the native acme decoder side by side: no panic, no
// guest failure, and the same framing, refusals and signals.
func FuzzSession(f *testing.F) {
	seeds(f)
	m := load(f, newHost(f, Config{Budget: testBudget}), examplePath, exampleWasm(f))
	hello := mustHex(f, helloHex)
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096}
		w, n := m.NewSession(cfg), (&acme.Decoder{}).NewSession(cfg)
		for _, s := range []plugins.Session{w, n} {
			if _, err := s.Decode(hello, recv); err != nil {
				t.Fatal(err)
			}
		}
		for len(data) > 0 {
			wn, werr := w.Frame(data)
			nn, nerr := n.Frame(data)
			if errors.Is(werr, ErrGuest) || wn != nn || sentinel(werr) != sentinel(nerr) {
				t.Fatalf("Frame: wasm %d, %v; native %d, %v", wn, werr, nn, nerr)
			}
			if werr != nil || wn == 0 {
				return
			}
			wr, werr := w.Decode(data[:wn], recv)
			nr, nerr := n.Decode(data[:nn], recv)
			if errors.Is(werr, ErrGuest) || sentinel(werr) != sentinel(nerr) || len(wr.Signals) != len(nr.Signals) {
				t.Fatalf("Decode: wasm %d signals, %v; native %d, %v", len(wr.Signals), werr, len(nr.Signals), nerr)
			}
			for i := range wr.Signals {
				a, b := wr.Signals[i], nr.Signals[i]
				a.Protocol, a.DecoderVersion = b.Protocol, b.DecoderVersion
				if a.RecordHash() != b.RecordHash() || string(wr.Ack) != string(nr.Ack) {
					t.Fatalf("signal %d differs: wasm %+v, native %+v", i, a, b)
				}
			}
			data = data[wn:]
		}
	})
}

// FuzzPayload wraps arbitrary payloads in valid frames so the fuzzer gets
// past the CRC into the guest's message decoders.
func FuzzPayload(f *testing.F) {
	f.Add(byte(acme.TypeRecords), []byte{0, 1, 0})
	f.Add(byte(acme.TypeHello), []byte("356307042441013"))
	m := load(f, newHost(f, Config{Budget: testBudget}), examplePath, exampleWasm(f))
	hello := mustHex(f, helloHex)
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		if len(payload) > 0xFFFF-8 {
			return
		}
		frame := acme.AppendFrame(nil, typ, payload)
		w := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 1 << 20})
		n := (&acme.Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 1 << 20})
		_, _ = w.Decode(hello, recv)
		_, _ = n.Decode(hello, recv)
		wr, werr := w.Decode(frame, recv)
		nr, nerr := n.Decode(frame, recv)
		if errors.Is(werr, ErrGuest) || sentinel(werr) != sentinel(nerr) || len(wr.Signals) != len(nr.Signals) {
			t.Fatalf("wasm %d signals, %v; native %d, %v", len(wr.Signals), werr, len(nr.Signals), nerr)
		}
	})
}

// FuzzParseOutput: whatever bytes a guest returns, the host's parser
// returns an error or a valid output, never panics, and never claims more
// records than the caps allow.
func FuzzParseOutput(f *testing.F) {
	f.Add(goodOutput())
	f.Add(out{status: -1, message: []byte("no"), reject: []byte("x")}.bytes())
	f.Add(out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 1, ndtc: 1, nob: 1,
		body: append(append(attrBool("a"), "\x05P0301"...), 1, 0x0c, 2, 0x1a, 0xf8)}.bytes()}.bytes())
	caps := Caps{Records: 8, Attrs: 8, DTCs: 8, OBD: 8, Output: 1 << 16}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOutput(b, caps)
		if err != nil {
			if !errors.Is(err, ErrABI) && !errors.Is(err, plugins.ErrMalformed) {
				t.Fatalf("error %v wraps neither ErrABI nor ErrMalformed", err)
			}
			return
		}
		if len(o.Records) > 8 {
			t.Fatalf("%d records over the cap", len(o.Records))
		}
		for _, r := range o.Records {
			if len(r.Attrs) > 16 || len(r.DTCs) > 8 {
				t.Fatalf("record over the caps: %+v", r)
			}
		}
	})
}
