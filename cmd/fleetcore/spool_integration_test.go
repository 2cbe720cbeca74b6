package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationSpoolReplayCommand drains a spool folder left by another
// node (here written by a spool of the test's) into the database, and a
// second run finds nothing to do.
func TestIntegrationSpoolReplayCommand(t *testing.T) {
	testenv.Integration(t)
	dbURL := testenv.Database(t)
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		batch := make([]signal.Signal, 100)
		for i := range batch {
			s := signal.New("lostdisk", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(b*100+i)*time.Second))
			s.Speed, s.Protocol, s.Path = float64(i), "test", signal.PathSpool
			s.Frame = []byte(fmt.Sprintf("frame-%d-%d", b, i))
			batch[i] = s
		}
		if err := sp.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "fleetcore.hcl")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("database { url = %q }\n", dbURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := spoolCmd([]string{"replay", "-config", cfgPath, dir}); code != 0 {
		t.Fatalf("spool replay exited %d", code)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM signals WHERE device_id = 'lostdisk' AND path = 'spool'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 300 {
		t.Fatalf("%d of 300 spooled signals stored", n)
	}
	if code := spoolCmd([]string{"replay", "-config", cfgPath, dir}); code != 0 {
		t.Fatalf("second spool replay (nothing left) exited %d", code)
	}
}
