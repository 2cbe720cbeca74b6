package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationSimulateRuptela runs `fleetcore simulate -protocol
// ruptela` against the default config's ruptela listener of an in-process
// node and checks, with -verify-db, that every record the simulated
// devices saw acked is stored exactly once.
func TestIntegrationSimulateRuptela(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg, err := config.Load("../../configs/fleetcore.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	cfg.Ingest.BatchMaxAge = "2ms"
	cfg.AMQP.URL = ""
	// The file's folders resolve into the checkout: keep this test off
	// the spool and the rules of `make run`.
	cfg.Spool.Dir = t.TempDir()
	off := false
	cfg.Rules.Enabled = &off
	cfg.API.Address = "127.0.0.1:0"
	var keep []*config.Listener
	for _, l := range cfg.Listeners {
		if l.Name == "ruptela" {
			l.Address = "127.0.0.1:0"
			keep = append(keep, l)
		}
	}
	if len(keep) != 1 {
		t.Fatalf("the default config has %d ruptela listeners, want 1", len(keep))
	}
	cfg.Listeners = keep
	n, _ := runTestNode(t, cfg, hclog.Error)
	out := filepath.Join(t.TempDir(), "summary.json")
	code := simulateCmd([]string{
		"-target", n.Addr("ruptela").String(), "-protocol", "ruptela", "-devices", "4", "-rate", "1",
		"-per-frame", "1", "-duration", "3s", "-ramp", "100ms", "-seed", "3", "-quiet",
		"-verify-db", db, "-json", out,
	})
	if code != 0 {
		t.Fatalf("simulate exited %d", code)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Generator struct {
			Frames  uint64 `json:"frames_acked"`
			Refused uint64 `json:"frames_refused"`
		} `json:"generator"`
		Verify struct {
			Acked      int64 `json:"signals_acked"`
			Lost       int64 `json:"lost"`
			Duplicates int64 `json:"duplicates"`
		} `json:"verify"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	// Four devices at one record per second for 3 s (the 1 s resolution
	// caps the rate): several frames each.
	if sum.Generator.Frames < 4 || sum.Generator.Refused != 0 {
		t.Errorf("frames acked %d, refused %d (%s)", sum.Generator.Frames, sum.Generator.Refused, b)
	}
	if sum.Verify.Acked == 0 || sum.Verify.Lost != 0 || sum.Verify.Duplicates != 0 {
		t.Errorf("verify: %s", b)
	}
}
