package replay_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

// fuzzSeeds are the protocols' own captures, so the fuzzer starts from
// frames that decode into records (which is where Check has work to do).
var fuzzSeeds = []struct{ proto, path, format string }{
	{"teltonika", "../../protocols/teltonika/testdata/traccar-tcp.hex", "hex"},
	{"teltonika", "../../protocols/teltonika/testdata/traccar-udp.hex", "hex"},
	{"h02", "../../protocols/h02/testdata/traccar-text.txt", "text"},
	{"h02", "../../protocols/h02/testdata/traccar-binary.hex", "hex"},
	{"freematics", "../../protocols/freematics/testdata/traccar.txt", "text"},
	{"jsonl", "../../protocols/jsonl/testdata/valid.jsonl", "text"},
	{"gt06", "../../protocols/gt06/testdata/traccar-gt06.jsonl", "corpus"},
	{"osmand", "../../protocols/osmand/testdata/traccar-osmand.jsonl", "corpus"},
}

// teltonikaLogin identifies the device before a fuzzed Teltonika frame.
var teltonikaLogin, _ = hex.DecodeString("000f313233343536373839303132333435")

func seedFrames(tb testing.TB, path, format string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch format {
		case "hex":
			if b, err := hex.DecodeString(line); err == nil {
				out = append(out, b)
			}
		case "text":
			out = append(out, []byte(strings.NewReplacer(`\r`, "\r", `\n`, "\n").Replace(line)+"\n"))
		case "corpus":
			var r struct{ Encoding, Payload string }
			if json.Unmarshal([]byte(line), &r) != nil {
				continue
			}
			if r.Encoding == "hex" {
				if b, err := hex.DecodeString(r.Payload); err == nil {
					out = append(out, b)
				}
			} else {
				out = append(out, []byte(r.Payload))
			}
		}
	}
	return out
}

// FuzzFrame runs arbitrary bytes through every registered decoder and the
// record check, as the gateway does: no panic in a decoder or in
// signal.Check on whatever a decoder makes of them, and every record that
// comes out passes Check.
func FuzzFrame(f *testing.F) {
	names := plugins.Decoders.Names()
	index := map[string]uint8{}
	for i, n := range names {
		index[n] = uint8(i)
	}
	for _, s := range fuzzSeeds {
		i, ok := index[s.proto]
		if !ok {
			continue
		}
		for _, b := range seedFrames(f, s.path, s.format) {
			f.Add(i, false, b)
			f.Add(i, true, b)
		}
	}
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, which uint8, udp bool, data []byte) {
		name := names[int(which)%len(names)]
		dec, _ := plugins.Decoders.Lookup(name)
		tr := plugins.TCP
		if udp {
			tr = plugins.UDP
		}
		sess := dec.NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: 64 << 10})
		if name == "teltonika" && tr == plugins.TCP {
			_, _ = sess.Decode(teltonikaLogin, recv)
		}
		sigs, err := replay.Frame(sess, tr, data, recv)
		if err == nil {
			if err := plugins.CheckSignals(sigs); err != nil {
				t.Fatalf("replay returned a record that fails Check: %v", err)
			}
		}
	})
}
