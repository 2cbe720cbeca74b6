package h02

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

func seeds(f *testing.F) {
	for _, name := range []string{"traccar-text.txt", "traccar-binary.hex", "frame-split.txt"} {
		file, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if name == "traccar-text.txt" {
				f.Add([]byte(strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\\`, `\`).Replace(line)))
				continue
			}
			stream, _, _ := strings.Cut(line, " ")
			b, err := hex.DecodeString(stream)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
		file.Close()
	}
}

func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := newSession(nil).Decode(data, recv)
		if err != nil && len(res.Signals) > 0 {
			t.Fatalf("error %v with %d signals", err, len(res.Signals))
		}
		for _, sig := range res.Signals {
			if sig.DeviceID == "" || sig.Protocol != Name || sig.TS.IsZero() || len(sig.Frame) != len(data) {
				t.Fatalf("bad signal %+v", sig)
			}
		}
	})
}

func FuzzFrame(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 512})
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				if err == nil && len(data) >= 512 {
					t.Fatalf("framer waits with %d bytes buffered", len(data))
				}
				return
			}
			if n > len(data) {
				t.Fatalf("framed %d of %d bytes", n, len(data))
			}
			_, _ = s.Decode(data[:n], recv)
			data = data[n:]
		}
	})
}
