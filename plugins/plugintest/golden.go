package plugintest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

// GoldenCase is one golden replay of a decoder's captures: In (under
// testdata/, one frame per line, hex when Hex) replayed through
// replay.Run (what `fleetcore decode` prints) must equal Golden (under
// testdata/), and print OK signals and Bad rejected frames.
type GoldenCase struct {
	In, Golden string
	Hex        bool
	OK, Bad    int
}

// Golden runs each case as a subtest with the receive time now. With
// update the output is written to the golden file first (-update).
func Golden(t *testing.T, dec plugins.Decoder, now time.Time, update bool, cases ...GoldenCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.In, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", c.In))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := replay.Run(dec, bytes.NewReader(in), &out, replay.Options{Hex: c.Hex, Now: func() time.Time { return now }}); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", c.Golden)
			if update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("replay differs from %s (check, then -update):\n%s", golden, out.String())
			}
			ok, bad := 0, 0
			for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
				if strings.Contains(line, `"error"`) {
					bad++
				} else if line != "" {
					ok++
				}
			}
			if ok != c.OK || bad != c.Bad {
				t.Errorf("%d signals, %d rejected frames; want %d, %d", ok, bad, c.OK, c.Bad)
			}
		})
	}
}
