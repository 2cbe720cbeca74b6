package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationFiveCommands runs the guide's "from a capture to a live
// shadow rule to an active rule in five commands" (checks-wasm/README.md)
// with the binary's own commands in-process and a real node for `serve`:
// (1) write the check, (2) `rules test` it on a capture, (3) drop it into
// rules.dir with rules.mode shadow (the capture then arrives live), (4)
// read /api/rules/{name}/shadow, (5) switch the mode to active and restart.
func TestIntegrationFiveCommands(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	work, rulesDir := t.TempDir(), t.TempDir()

	// The capture: one device, speeds that pass, warn and fail.
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	speeds := []float64{90, 170, 250, 120, 230}
	var lines strings.Builder
	for i, v := range speeds {
		fmt.Fprintf(&lines, `{"device_id":"five-1","ts":%q,"lat":45,"lon":7,"speed":%v}`+"\n", start.Add(time.Duration(i)*time.Second).Format(time.RFC3339), v)
	}
	capture := filepath.Join(work, "capture.jsonl")
	if err := os.WriteFile(capture, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. Write the check.
	check := filepath.Join(work, "speed.limit.check.hcl")
	if err := os.WriteFile(check, []byte(guideCheck), 0o644); err != nil {
		t.Fatal(err)
	}
	// 2. fleetcore rules test speed.limit.check.hcl -input capture.jsonl
	code, out := runCaptured(t, "rules", "test", check, "-input", capture)
	if code != 0 {
		t.Fatalf("rules test: exit %d\n%s", code, out)
	}
	t.Log("\n" + out)
	for _, w := range []string{"fail", "warn", "pass", "speed 250 km/h over the limit"} {
		if !strings.Contains(out, w) {
			t.Fatalf("rules test output lacks %q:\n%s", w, out)
		}
	}

	// 3. Drop it into rules.dir, mode shadow, and serve.
	if err := os.WriteFile(filepath.Join(rulesDir, "speed.limit.check.hcl"), []byte(guideCheck), 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after int64 // the shadow report's scores of the device
	serve := func(t *testing.T, mode string) {
		src := fmt.Sprintf(`
database { url = %q }
ingest { batch_max_age = "2ms" }
listener "jsonl" { address = "127.0.0.1:0" }
api { address = "127.0.0.1:0" }
rules {
  dir     = %q
  enabled = true
  mode    = { "speed.limit" = %q }
}
organizer {
  score_interval  = "1h"
  health_interval = "1h"
}
`, db, rulesDir, mode)
		cfg, err := config.Parse("fleet.hcl", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database.URL, cfg.AMQP.URL = db, ""
		cfg.Spool.Dir = t.TempDir()
		cfg.Rules.CacheDir = testenv.WasmCache(t)
		n, ctx := runTestNode(t, cfg, hclog.Warn)
		if mode == "shadow" { // the devices send the capture
			c, err := net.Dial("tcp", n.Addr("jsonl").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, lines.String()); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(c)
			for i := range speeds {
				if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != fmt.Sprintf(`{"ok": %d}`, i+1) {
					t.Fatalf("ack %d: %q %v", i+1, line, err)
				}
			}
		}
		// What the server's schedule does: the rule's job, then scoring.
		for _, job := range []string{n.RuleRunner().JobName("speed.limit"), node.JobScore} {
			if err := n.Organizer().RunNow(ctx, job); err != nil {
				t.Fatalf("%s: %v", job, err)
			}
		}
		if mode != "shadow" {
			return
		}
		// 4. curl http://API/api/rules/speed.limit/shadow
		resp, err := http.Get("http://" + n.APIAddr().String() + "/api/rules/speed.limit/shadow")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("shadow report: %d %v\n%s", resp.StatusCode, err, body)
		}
		t.Logf("shadow report: %s", body)
		var rep struct {
			Rule    string `json:"rule"`
			Devices []struct {
				DeviceID string `json:"device_id"`
				Before   int64  `json:"score_before_centi"`
				After    int64  `json:"score_after_centi"`
				Delta    int64  `json:"delta_centi"`
				Warned   int    `json:"warned"`
				Failed   int    `json:"failed"`
			} `json:"devices"`
		}
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Rule != "speed.limit" || len(rep.Devices) != 1 || rep.Devices[0].DeviceID != "five-1" ||
			rep.Devices[0].Warned != 1 || rep.Devices[0].Failed != 2 || rep.Devices[0].Delta >= 0 {
			t.Fatalf("shadow report %+v: want five-1 with 1 warn, 2 fails and a score loss", rep)
		}
		before, after = rep.Devices[0].Before, rep.Devices[0].After
	}
	score := func(t *testing.T) int64 {
		pc, err := pgx.Connect(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(context.Background())
		var v int64
		if err := pc.QueryRow(context.Background(), `SELECT score FROM device_scores WHERE device_id = 'five-1'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	findings := func(t *testing.T) string {
		pc, err := pgx.Connect(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(context.Background())
		rows, err := pc.Query(context.Background(), `SELECT status, shadow FROM findings WHERE rule = 'speed.limit' ORDER BY ts`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var status string
			var shadow bool
			if err := rows.Scan(&status, &shadow); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s shadow=%v", status, shadow))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ", ")
	}
	t.Run("shadow", func(t *testing.T) { serve(t, "shadow") })
	if got, want := findings(t), "warn shadow=true, fail shadow=true, fail shadow=true"; got != want {
		t.Fatalf("findings in shadow mode: %s, want %s", got, want)
	}
	if got := score(t); got != before {
		t.Fatalf("in shadow mode the device scores %d, the report's score before is %d", got, before)
	}
	// 5. Switch the mode to active and restart: the findings count.
	t.Run("active", func(t *testing.T) { serve(t, "active") })
	if got, want := findings(t), "warn shadow=false, fail shadow=false, fail shadow=false"; got != want {
		t.Fatalf("findings once active: %s, want %s", got, want)
	}
	// The device now scores what the shadow report said it would.
	if got := score(t); got != after {
		t.Fatalf("once active the device scores %d, the shadow report said %d", got, after)
	}
}

// guideCheck is the check of the guide's five commands.
const guideCheck = `check "speed.limit" {
  dimension = "validity"
  fail_if   = "speed > 200"
  warn_if   = "speed > 160"
  reason    = "speed {speed} km/h over the limit"
  test "too fast" {
    in   = { speed = 250 }
    want = "fail"
  }
}
`
