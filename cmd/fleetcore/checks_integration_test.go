package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationDeclarativeChecks: a check file in the rule folder and a
// check block of the config go live in a real node and judge stored
// signals through the rule engine: findings with their reasons land in
// Postgres.
func TestIntegrationDeclarativeChecks(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	rulesDir := t.TempDir()
	file := `check "speed.file" {
  dimension = "validity"
  fail_if   = "speed > 100"
  reason    = "{speed} km/h is over 100"
}
`
	if err := os.WriteFile(filepath.Join(rulesDir, "speed.file.check.hcl"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
database { url = %q }
ingest { batch_max_age = "2ms" }
listener "jsonl" { address = "127.0.0.1:0" }
rules {
  dir     = %q
  enabled = true
  check "speed.config" {
    dimension = "validity"
    when      = "not is_missing(speed)"
    fail_if   = "speed > 50"
    warn_if   = "speed > 30"
    reason    = "over 50 km/h"
    warn_reason = "over 30 km/h"
  }
}
organizer {
  score_interval  = "1h"
  health_interval = "1h"
}
`, db, rulesDir)
	cfg, err := config.Parse("checks.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL, cfg.AMQP.URL = db, ""
	cfg.Spool.Dir = t.TempDir()
	cfg.Rules.CacheDir = testenv.WasmCache(t)
	n, ctx := runTestNode(t, cfg, hclog.Warn)

	c, err := net.Dial("tcp", n.Addr("jsonl").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	speeds := []float64{10, 40, 60, 120}
	var b strings.Builder
	for i, v := range speeds {
		fmt.Fprintf(&b, `{"device_id":"chk-1","ts":%q,"lat":45,"lon":7,"speed":%v}`+"\n", start.Add(time.Duration(i)*time.Second).Format(time.RFC3339), v)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	for i := range speeds {
		if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != fmt.Sprintf(`{"ok": %d}`, i+1) {
			t.Fatalf("ack %d: %q %v", i+1, line, err)
		}
	}
	for _, rule := range []string{"speed.file", "speed.config"} {
		if err := n.Organizer().RunNow(ctx, n.RuleRunner().JobName(rule)); err != nil {
			st, _ := json.Marshal(n.Rules().Status())
			t.Fatalf("%s: %v (rules %s)", rule, err, st)
		}
	}
	pc, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	rows, err := pc.Query(context.Background(), `SELECT rule, status, reason, reason_text FROM findings WHERE device_id = 'chk-1' ORDER BY rule, ts`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var rule, status, text string
		var reason int
		if err := rows.Scan(&rule, &status, &reason, &text); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %d %s", rule, status, reason, text))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"speed.config warn 2 over 30 km/h",
		"speed.config fail 1 over 50 km/h",
		"speed.config fail 1 over 50 km/h",
		"speed.file fail 1 120 km/h is over 100",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
