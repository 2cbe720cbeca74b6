package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcore/fleetcore/configs"
)

// TestConfigDefault: `config default` prints configs/fleetcore.hcl as
// built in, byte for byte; other arguments are usage errors.
func TestConfigDefault(t *testing.T) {
	want, err := os.ReadFile("../../configs/fleetcore.hcl")
	if err != nil {
		t.Fatal(err)
	}
	code, out := runCaptured(t, "config", "default")
	if code != 0 || out != string(want) {
		t.Fatalf("config default: exit %d, output differs from configs/fleetcore.hcl (%d bytes, want %d)", code, len(out), len(want))
	}
	if code, _ := runCaptured(t, "config"); code != 2 {
		t.Errorf("config without a subcommand: exit %d, want 2", code)
	}
}

// TestServeConfigFallsBackToTheEmbeddedOne: without -config and without
// configs/fleetcore.hcl in the working directory, serve loads the embedded
// config as that file (paths relative to ./configs); with the file there,
// or with -config given, the file is read (a missing one is an error).
func TestServeConfigFallsBackToTheEmbeddedOne(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cfg, embedded, err := loadServeConfig(configs.DefaultPath, false)
	if err != nil || !embedded {
		t.Fatalf("no file: embedded %v, %v", embedded, err)
	}
	if want, _ := filepath.Abs(filepath.Join("var", "spool")); mustAbs(t, cfg.Spool.Dir) != want {
		t.Errorf("spool.dir %s, want %s (relative to ./configs)", cfg.Spool.Dir, want)
	}
	if _, _, err := loadServeConfig(configs.DefaultPath, true); err == nil {
		t.Error("-config given and missing: loaded anyway")
	}
	if err := os.MkdirAll("configs", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configs.DefaultPath, []byte("log_level = \"warn\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, embedded, err = loadServeConfig(configs.DefaultPath, false)
	if err != nil || embedded || cfg.LogLevel != "warn" {
		t.Fatalf("with the file: embedded %v, level %v, %v", embedded, cfg, err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
