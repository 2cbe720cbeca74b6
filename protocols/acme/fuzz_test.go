package acme

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// seeds adds every frame of the golden inputs to the fuzz corpus.
func seeds(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*", "input.hex"))
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

// FuzzSession feeds arbitrary bytes through a logged-in session's framer
// and decoder: no panic, Frame within bounds, complete signals.
func FuzzSession(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096})
		if _, err := s.Decode(hello, recvTime); err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				return
			}
			if n > len(data) {
				t.Fatalf("Frame = %d for %d bytes", n, len(data))
			}
			res, err := s.Decode(data[:n], recvTime)
			if err == nil {
				for _, sg := range res.Signals {
					if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n {
						t.Fatalf("incomplete signal %+v", sg)
					}
				}
			}
			data = data[n:]
		}
	})
}

// FuzzPayload wraps arbitrary payloads in valid frames so the fuzzer gets
// past the CRC into the message decoders.
func FuzzPayload(f *testing.F) {
	f.Add(byte(TypeRecords), []byte{0, 1, 0})
	f.Add(byte(TypeHello), []byte("356307042441013"))
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		if len(payload) > 0xFFFF {
			return
		}
		s := (&Decoder{}).NewSession(plugins.SessionConfig{})
		if _, err := s.Decode(hello, recvTime); err != nil {
			t.Fatal(err)
		}
		_, _ = s.Decode(AppendFrame(nil, typ, payload), recvTime)
	})
}
