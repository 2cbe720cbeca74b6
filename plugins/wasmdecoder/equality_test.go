package wasmdecoder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/protocols/acme"
)

// sentinels in the order they are looked for in an error text.
var sentinelTexts = []error{plugins.ErrChecksum, plugins.ErrTooLarge, plugins.ErrUnauthorized,
	plugins.ErrNoDevice, plugins.ErrUnsupported, plugins.ErrMalformed}

func sentinelText(msg string) string {
	for _, e := range sentinelTexts {
		if strings.Contains(msg, e.Error()) {
			return e.Error()
		}
	}
	return "other: " + msg
}

// normalize drops what differs by design between the native and the WASM
// decoder (protocol, decoder version, the wording of an error beyond its
// sentinel).
func normalize(t *testing.T, out []byte) []string {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", sc.Bytes(), err)
		}
		delete(m, "protocol")
		delete(m, "decoder_version")
		if e, ok := m["error"].(string); ok {
			m["error"] = sentinelText(e)
		}
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	return lines
}

// TestSameAsNative replays protocols/acme's captures through the native
// decoder and the WAT port: the same signals (every field, attr and ts),
// frame for frame, and the same refusals.
func TestSameAsNative(t *testing.T) {
	m := load(t, newHost(t, Config{Budget: testBudget}), examplePath, exampleWasm(t))
	inputs, err := filepath.Glob("../../protocols/acme/testdata/*/input.hex")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no acme captures: %v", err)
	}
	now := func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	for _, in := range inputs {
		t.Run(filepath.Base(filepath.Dir(in)), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var native, wasm bytes.Buffer
			if err := replay.Run(&acme.Decoder{}, bytes.NewReader(src), &native, replay.Options{Hex: true, Now: now}); err != nil {
				t.Fatal(err)
			}
			if err := replay.Run(m, bytes.NewReader(src), &wasm, replay.Options{Hex: true, Now: now}); err != nil {
				t.Fatal(err)
			}
			a, b := normalize(t, native.Bytes()), normalize(t, wasm.Bytes())
			if len(a) == 0 {
				t.Fatal("the native decoder printed nothing")
			}
			for i := range max(len(a), len(b)) {
				var x, y string
				if i < len(a) {
					x = a[i]
				}
				if i < len(b) {
					y = b[i]
				}
				if x != y {
					t.Errorf("line %d:\nnative %s\nwasm   %s", i, x, y)
				}
			}
			if !strings.Contains(wasm.String(), `"decoder_version":"`+m.Version()+`"`) {
				t.Errorf("no decoder_version %s in the output", m.Version())
			}
		})
	}
}
