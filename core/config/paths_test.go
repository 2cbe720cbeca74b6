package config_test

import (
	"path/filepath"
	"testing"

	"github.com/fleetcore/fleetcore/core/config"
)

// A loaded file's relative folders are relative to the file's folder, not
// to the working directory; absolute ones are kept.
func TestPathsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "fleetcore.hcl")
	src := []byte("spool {\n  dir = \"../state/spool\"\n}\nrules {\n  dir = \"/opt/rules\"\n}\n")
	c, err := config.ParseUnvalidated(path, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"spool.dir", c.Spool.Dir, filepath.Join(dir, "state", "spool")},
		{"rules.dir", c.Rules.Dir, "/opt/rules"},
		{"rules.cache_dir (default)", c.Rules.CacheDir, filepath.Join(dir, "etc", "var", "wasm-cache")},
		{"decoders.cache_dir (default)", c.Decoders.CacheDir, filepath.Join(dir, "etc", "var", "wasm-cache", "decoders")},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
