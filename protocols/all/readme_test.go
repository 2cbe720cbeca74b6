package all_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/acme"
	_ "github.com/fleetcore/fleetcore/protocols/all"
)

var update = flag.Bool("update", false, "rewrite the option tables in the protocol READMEs")

const (
	beginMark = "<!-- options: generated from Info.Options by `go test ./protocols/all -update`; do not edit -->\n"
	endMark   = "<!-- end options -->\n"
)

// decoders is every built-in decoder, by its folder under protocols/.
func decoders() map[string]plugins.Decoder {
	out := map[string]plugins.Decoder{}
	for _, name := range plugins.Decoders.Names() {
		d, _ := plugins.Decoders.Lookup(name)
		out[name] = d
	}
	out[acme.Name] = &acme.Decoder{} // the worked example, registered or not
	return out
}

// TestReadmeOptionTables fails when a protocol README's option table is not
// the one its decoder's declaration renders (plugins.OptionsTable).
func TestReadmeOptionTables(t *testing.T) {
	for name, dec := range decoders() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", name, "README.md")
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text := string(src)
			i := strings.Index(text, beginMark)
			j := strings.Index(text, endMark)
			if i < 0 || j < i {
				t.Fatalf("%s has no option table between %q and %q", path, beginMark, endMark)
			}
			want := plugins.OptionsTable(dec.Info().Options)
			got := text[i+len(beginMark) : j]
			if got == want {
				return
			}
			if *update {
				if err := os.WriteFile(path, []byte(text[:i+len(beginMark)]+want+text[j:]), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Errorf("%s option table differs from %s's Info.Options (run go test ./protocols/all -update):\ngot:\n%s\nwant:\n%s", path, name, got, want)
		})
	}
}
