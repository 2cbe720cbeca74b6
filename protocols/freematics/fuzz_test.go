package freematics

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
			f.Add([]byte(line + "\r\n"))
		}
	}
	f.Add(withChecksum("0#EV=1,TS=1,ID=DEV12345"))
	f.Add(withChecksum("100#0:1,10:1,11:1,A:1,20:1;2;3,10C:1"))
}

func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(&Decoder{}, plugins.UDP, nil)
		res, err := s.Decode(data, recv)
		if err != nil && len(res.Signals) > 0 {
			t.Fatalf("error %v with %d signals", err, len(res.Signals))
		}
		for _, sig := range res.Signals {
			if sig.DeviceID == "" || sig.Protocol != Name || len(sig.Frame) != len(data) {
				t.Fatalf("bad signal %+v", sig)
			}
		}
	})
}

func FuzzFrame(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(&Decoder{}, plugins.TCP, nil)
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
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
