package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationPartitionsAndRetention: a database with a year of signals
// in the default partition gets monthly partitions (ahead of now too), an
// empty default partition, its expired partitions dropped, old findings and
// cleared alerts deleted; ingest (with its duplicate suppression) and the
// API work as before.
func TestIntegrationPartitionsAndRetention(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	const keep = 122 * 24 * time.Hour // about four months
	h := startNode(t, db, func(c *config.Config) {
		c.Retention.Signals = keep.String()
		c.Retention.Findings = "720h"
		c.Retention.Alerts = "720h"
		c.Retention.BatchRows = 3 // several batches
	})
	n := h.n
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Wait for the first round at start, then detach every partition it made
	// so that the year below lands in the default partition, as in a
	// database of an earlier version.
	if err := n.Organizer().RunNow(ctx, node.PartitionsJob); err != nil {
		t.Fatal(err)
	}
	var made []string
	rows, _ := conn.Query(ctx, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'signals'::regclass AND c.relname <> 'signals_default'")
	for rows.Next() {
		var s string
		rows.Scan(&s) //nolint:errcheck // checked by the count below
		made = append(made, s)
	}
	rows.Close()
	if len(made) != 4 {
		t.Fatalf("partitions at start: %v, want the current month and 3 ahead", made)
	}
	for _, p := range made {
		mustExec(t, conn, "ALTER TABLE signals DETACH PARTITION "+p)
		mustExec(t, conn, "DROP TABLE "+p)
	}

	now := time.Now().UTC()
	const dev = "356307042449999"
	var seeded []time.Time
	for d := 360; d >= 1; d -= 15 {
		ts := now.Add(-time.Duration(d) * 24 * time.Hour)
		seeded = append(seeded, ts)
		mustExec(t, conn, `INSERT INTO signals (device_id, ts, recv, protocol, path, record_hash, lat, lon)
			VALUES ($1, $2, $2, 'teltonika', 'direct', $3, 54.68, 25.2)`, dev, ts, int64(d))
	}
	// An old and a fresh finding; an old cleared alert with its event, an
	// old open alert.
	mustExec(t, conn, `INSERT INTO findings (signal_id, device_id, ts, rule, rule_version, dimension, severity, status, reason, reason_text, created)
		VALUES (1, $1, $2, 'gps.range', 'v1', 'validity', 'warning', 'fail', 1, 'old', $2), (2, $1, $3, 'gps.range', 'v1', 'validity', 'warning', 'fail', 1, 'fresh', $3)`,
		dev, now.Add(-60*24*time.Hour), now.Add(-time.Hour))
	var oldAlert int64
	if err := conn.QueryRow(ctx, `INSERT INTO alerts (device_id, kind, state, opened, cleared, reason)
		VALUES ($1, 'score_low', 'cleared', $2, $2, 'old') RETURNING id`, dev, now.Add(-90*24*time.Hour)).Scan(&oldAlert); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, `INSERT INTO alert_events (alert_id, device_id, kind, state, at, reason, published, webhooked) VALUES ($1, $2, 'score_low', 'cleared', $3, 'old', $3, $3)`,
		oldAlert, dev, now.Add(-90*24*time.Hour))
	mustExec(t, conn, `INSERT INTO alerts (device_id, kind, state, opened, reason) VALUES ($1, 'gps_broken', 'open', $2, 'still open')`, dev, now.Add(-90*24*time.Hour))

	if err := n.Organizer().RunNow(ctx, node.PartitionsJob); err != nil {
		t.Fatal(err)
	}
	cut := now.Add(-keep)
	want := 0
	for _, ts := range seeded {
		if store.PeriodStart(ts, 1).AddDate(0, 1, 0).After(cut) {
			want++
		}
	}
	if k := query(t, db, "SELECT count(*) FROM signals_default"); k != 0 {
		t.Fatalf("signals_default holds %d rows, want 0", k)
	}
	if k := query(t, db, "SELECT count(*) FROM signals WHERE device_id = $1", dev); k != want {
		t.Fatalf("%d signals after retention, want %d (partitions ending after %s)", k, want, cut)
	}
	if k := query(t, db, "SELECT count(*) FROM signals WHERE ts < $1", store.PeriodStart(cut, 1)); k != 0 {
		t.Fatalf("%d rows older than the oldest kept partition", k)
	}
	// Partitions: from the oldest kept month through 3 months ahead, each
	// a range partition of its own month.
	for m := store.PeriodStart(cut, 1); !m.After(store.PeriodStart(now, 1).AddDate(0, 3, 0)); m = m.AddDate(0, 1, 0) {
		name := store.PartitionName(m)
		if k := query(t, db, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'signals'::regclass AND c.relname = $1", name); k != 1 {
			t.Errorf("partition %s missing", name)
		}
	}
	if k := query(t, db, "SELECT count(*) FROM pg_class WHERE relname = $1", store.PartitionName(store.PeriodStart(cut, 1).AddDate(0, -1, 0))); k != 0 {
		t.Errorf("expired partition %s not dropped", store.PartitionName(store.PeriodStart(cut, 1).AddDate(0, -1, 0)))
	}
	if k := query(t, db, "SELECT count(*) FROM findings"); k != 1 {
		t.Errorf("findings after retention %d, want 1 (the fresh one)", k)
	}
	if k := query(t, db, "SELECT count(*) FROM alerts WHERE id = $1", oldAlert); k != 0 {
		t.Error("old cleared alert kept")
	}
	if k := query(t, db, "SELECT count(*) FROM alerts WHERE state = 'open'"); k != 1 {
		t.Errorf("open alerts %d, want 1 (never deleted by age)", k)
	}
	// A second round changes nothing.
	if err := n.Organizer().RunNow(ctx, node.PartitionsJob); err != nil {
		t.Fatalf("second round: %v", err)
	}
	if k := query(t, db, "SELECT count(*) FROM signals WHERE device_id = $1", dev); k != want {
		t.Fatalf("second round changed signals: %d, want %d", k, want)
	}

	// Ingest into a partition made from default rows: acked, stored once
	// even when resent (the idempotency key holds per partition).
	d := dial(t, h.addr, "356307042441013")
	frame := codec8(now.Add(-40 * 24 * time.Hour))
	for range 2 {
		d.send(frame)
		if got := binary.BigEndian.Uint32(d.read(4)); got != 1 {
			t.Fatalf("ack %d, want 1", got)
		}
	}
	if k := query(t, db, "SELECT count(*) FROM signals WHERE device_id = '356307042441013'"); k != 1 {
		t.Fatalf("resent record stored %d times", k)
	}
	// The API reads across partitions.
	resp, err := http.Get(fmt.Sprintf("http://%s/api/devices/%s/signals?from=%d&to=%d", n.APIAddr(), dev, now.Add(-400*24*time.Hour).Unix(), now.Unix()))
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Signals []map[string]any `json:"signals"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("API signals: %d %v", resp.StatusCode, err)
	}
	if len(page.Signals) != want {
		t.Fatalf("API lists %d signals, want %d", len(page.Signals), want)
	}
}

func mustExec(t *testing.T, c *pgx.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestIntegrationRefusesNewerSchema: a database migrated by a newer binary
// is refused with a clear error, and migrate status says why.
func TestIntegrationRefusesNewerSchema(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfgFile := filepath.Join(t.TempDir(), "f.hcl")
	if err := os.WriteFile(cfgFile, []byte(`database { url = "`+db+`" }`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLEETCORE_DATABASE_URL", db)
	var out bytes.Buffer
	if code := migrateStatusCmd([]string{"-config", cfgFile}, &out); code != 1 || !strings.Contains(out.String(), "pending") {
		t.Fatalf("status of an empty database: exit %d\n%s", code, out.String())
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := node.OpenStore(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	out.Reset()
	if code := migrateStatusCmd([]string{"-config", cfgFile}, &out); code != 0 || !strings.Contains(out.String(), "up to date") {
		t.Fatalf("status after migrate: exit %d\n%s", code, out.String())
	}
	c, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future')")
	c.Close(context.Background())
	_, err = node.OpenStore(context.Background(), cfg, hclog.NewNullLogger())
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("newer schema: %v, want ErrSchemaTooNew naming 9999", err)
	}
	out.Reset()
	if code := migrateStatusCmd([]string{"-config", cfgFile}, &out); code != 1 || !strings.Contains(out.String(), "UNKNOWN") {
		t.Fatalf("status of a newer schema: exit %d\n%s", code, out.String())
	}
}
