package meiligao

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

func seeds(f *testing.F) {
	file, err := os.Open(filepath.Join("testdata", "traccar.hex"))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if b, err := hex.DecodeString(line); err == nil {
			f.Add(b)
		}
	}
	for _, fr := range conversation(f) {
		f.Add(fr)
	}
}

// FuzzSession feeds arbitrary bytes through the framer and decoder of one
// TCP session: no panics, every frame within the input, and every record
// that comes out passes signal.Check.
func FuzzSession(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sess := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, Logger: hclog.NewNullLogger()})
		if n, err := sess.Frame(data); n > len(data) || (err != nil && n != 0) {
			t.Fatalf("Frame = %d, %v for %d bytes", n, err, len(data))
		}
		sigs, err := replay.Frame(sess, plugins.TCP, data, time.Unix(1700000000, 0))
		if err == nil {
			if err := plugins.CheckSignals(sigs); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzContent wraps an arbitrary command and data in a valid frame
// (length and CRC right) so the fuzzer reaches the message decoders.
func FuzzContent(f *testing.F) {
	for _, fr := range conversation(f) {
		f.Add(uint16(fr[11])<<8|uint16(fr[12]), fr[13:len(fr)-4])
	}
	f.Fuzz(func(t *testing.T, cmd uint16, data []byte) {
		if len(data) > 2000 {
			return
		}
		sess := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.UDP, MaxFrame: 4096, Logger: hclog.NewNullLogger()})
		res, err := sess.Decode(build(cmd, string(data)), time.Unix(1700000000, 0))
		if err != nil && len(res.Signals) > 0 {
			t.Fatalf("error %v with %d signals", err, len(res.Signals))
		}
	})
}
