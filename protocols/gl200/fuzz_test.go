package gl200

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

func seeds(f *testing.F) {
	file, err := os.Open(filepath.Join("testdata", "traccar.txt"))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			f.Add([]byte(line))
		}
	}
	f.Add([]byte("+RSP\x01\x00\x00\x00\x00\x00\x0d\x00\x00"))
	for _, b := range binarySeeds() {
		f.Add(b)
	}
}

// FuzzDecode: no panic, no signal with an error, every signal passes
// signal.Check and carries its device, protocol, time and frame.
func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tr := range []plugins.Transport{plugins.TCP, plugins.UDP} {
			res, err := newSession(tr, nil).Decode(data, recv)
			if err != nil && len(res.Signals) > 0 {
				t.Fatalf("error %v with %d signals", err, len(res.Signals))
			}
			if err == nil {
				if cerr := plugins.CheckSignals(res.Signals); cerr != nil {
					t.Fatalf("record fails Check: %v", cerr)
				}
			}
			for _, sig := range res.Signals {
				if sig.DeviceID == "" || sig.Protocol != Name || sig.TS.IsZero() || len(sig.Frame) != len(data) {
					t.Fatalf("bad signal %+v", sig)
				}
			}
		}
	})
}

// FuzzFrame: the framer never returns more than it was given, and what it
// frames decodes without panicking.
func FuzzFrame(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(plugins.TCP, nil)
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				return
			}
			if n > len(data) {
				t.Fatalf("Frame returned %d of %d bytes", n, len(data))
			}
			_, _ = s.Decode(data[:n], recv)
			data = data[n:]
		}
	})
}
