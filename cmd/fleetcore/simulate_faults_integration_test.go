package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationSimulateFaults sends a labelled-fault fleet with
// `fleetcore simulate -faults` through the Teltonika listener of an
// in-process node and checks that every labelled record is stored exactly
// once (same-time twins included) and nothing else is.
func TestIntegrationSimulateFaults(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg, err := config.Load("../../configs/fleetcore.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	cfg.Ingest.BatchMaxAge = "2ms"
	cfg.AMQP.URL = ""
	cfg.Spool.Dir = t.TempDir()
	off := false
	cfg.Rules.Enabled = &off
	cfg.API.Address = "127.0.0.1:0"
	var keep []*config.Listener
	for _, l := range cfg.Listeners {
		if l.Name == "teltonika" {
			l.Address = "127.0.0.1:0"
			keep = append(keep, l)
		}
	}
	if len(keep) != 1 {
		t.Fatalf("the default config has %d teltonika listeners, want 1", len(keep))
	}
	cfg.Listeners = keep
	n, _ := runTestNode(t, cfg, hclog.Error)
	labelsPath := filepath.Join(t.TempDir(), "labels.jsonl")
	devices := len(loadgen.FaultKinds) + 4
	code := simulateCmd([]string{
		"-target", n.Addr("teltonika").String(), "-faults", "all=1,isolated=2", "-devices", fmt.Sprint(devices),
		"-records", "120", "-seed", "11", "-labels", labelsPath, "-quiet",
	})
	if code != 0 {
		t.Fatalf("simulate exited %d", code)
	}
	f, err := os.Open(labelsPath)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := loadgen.ReadLabels(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		imei string
		ts   int64
		mv   int64
	}
	want := map[key]string{}
	for _, l := range labels {
		want[key{l.IMEI, l.TS, int64(math.Round(l.Volt * 1000))}] = l.Kind
	}
	if len(want) != len(labels) {
		t.Fatalf("%d labels name only %d distinct records", len(labels), len(want))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT device_id, ts, voltage FROM signals`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[key]int{}
	for rows.Next() {
		var k key
		var ts time.Time
		var v float64
		if err := rows.Scan(&k.imei, &ts, &v); err != nil {
			t.Fatal(err)
		}
		k.ts, k.mv = ts.UnixMicro(), int64(math.Round(v*1000))
		got[k]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for k, kind := range want {
		if got[k] != 1 {
			t.Errorf("record %v (label %q) stored %d times", k, kind, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct records stored, %d labelled", len(got), len(want))
	}
}
