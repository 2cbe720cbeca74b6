package meitrack

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

func seeds(f *testing.F) {
	for _, name := range []string{"traccar.txt", "traccar-binary.hex"} {
		file, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasSuffix(name, ".hex") {
				if b, err := hex.DecodeString(line); err == nil {
					f.Add(b)
				}
				continue
			}
			f.Add([]byte(strings.NewReplacer(`\r`, "\r", `\n`, "\n").Replace(line)))
		}
		file.Close()
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

// FuzzContent wraps arbitrary content in a valid envelope (length and
// checksum right) so the fuzzer reaches the report and batch decoders.
func FuzzContent(f *testing.F) {
	for _, fr := range conversation(f) {
		m, err := parseEnvelope(fr)
		if err == nil {
			f.Add(m.cmd, m.data)
		}
	}
	f.Fuzz(func(t *testing.T, cmd string, data []byte) {
		if len(cmd) != 3 || strings.ContainsAny(cmd, ",*") {
			return
		}
		rest := ",123456789012345," + cmd + "," + string(data)
		fr := withSum("$$A" + strconv.Itoa(len(rest)+5) + rest + "*")
		sess := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.UDP, MaxFrame: 64 << 10, Logger: hclog.NewNullLogger()})
		res, err := sess.Decode(fr, time.Unix(1700000000, 0))
		if err != nil {
			if len(res.Signals) > 0 {
				t.Fatalf("error %v with %d signals", err, len(res.Signals))
			}
			return
		}
		// A record outside its field's domain is refused by CheckSignals in
		// the gateway (the frame is quarantined): not this target's concern.
		_ = plugins.CheckSignals(res.Signals)
	})
}
