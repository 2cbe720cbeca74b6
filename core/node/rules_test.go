package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationNodeRunsRules starts a node with a rule folder and checks
// that the folder is live on Node.Rules and that its rule job turns stored
// signals into findings through the node's own organizer.
func TestIntegrationNodeRunsRules(t *testing.T) {
	testenv.Integration(t)
	folder := t.TempDir()
	if err := os.WriteFile(filepath.Join(folder, "gps.range.wasm"), wasmfixture.Rule(t, "gps.range"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := testenv.Database(t)
	cfg, err := config.Parse("node.hcl", []byte(`
database { url = "`+db+`" }
rules {
  dir       = "`+folder+`"
  cache_dir = "`+filepath.Join(t.TempDir(), "cache")+`"
  interval  = "1h"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	n, ctx := runNode(t, cfg)
	if n.Rules() == nil || n.RuleRunner() == nil {
		t.Fatal("rules are not exposed on the node")
	}
	st := n.Rules().Status()
	if len(st) != 1 || st[0].Name != "gps.range" || st[0].Status != "live" {
		t.Fatalf("rule folder status %+v", st)
	}
	good := signal.New("n1", time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	good.Lat, good.Lon, good.Protocol, good.Path = 90, 0, "test", signal.PathDirect
	bad := good
	bad.TS = bad.TS.Add(time.Second)
	bad.Lat = 90.0001
	if _, err := n.Store().WriteSignals(ctx, []signal.Signal{good, bad}); err != nil {
		t.Fatal(err)
	}
	if err := n.Organizer().RunNow(ctx, n.RuleRunner().JobName("gps.range")); err != nil {
		t.Fatal(err)
	}
	var findings, evaluated int
	if err := n.Store().Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM findings WHERE rule = 'gps.range' AND reason = 1),
		(SELECT coalesce(sum(evaluated), 0) FROM rule_stats)`).Scan(&findings, &evaluated); err != nil {
		t.Fatal(err)
	}
	if findings != 1 || evaluated != 2 {
		t.Fatalf("%d findings and %d evaluated, want 1 and 2", findings, evaluated)
	}
	if rs := n.RuleRunner().Status(); len(rs) != 1 || rs[0].Evaluated != 2 || rs[0].Findings != 1 || rs[0].Fails != 1 {
		t.Fatalf("runner status %+v", rs)
	}
}

// TestIntegrationDisabledRuleRaisesAnAlert: a rule the host disables after
// repeated failed batches gets an open rule_disabled alert with its event
// in the outbox; once the rule is back in service the alert clears.
func TestIntegrationDisabledRuleRaisesAnAlert(t *testing.T) {
	testenv.Integration(t)
	// test.trap (the organizer's test rule) traps on a batch holding a
	// signal with speed -3: every run fails until the host disables it.
	folder := t.TempDir()
	if err := os.WriteFile(filepath.Join(folder, "test.trap.wasm"), wasmfixture.WATFile(t, "../rules/testdata/trap.wat"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := testenv.Database(t)
	cfg, err := config.Parse("node.hcl", []byte(`
rules {
  dir          = "`+folder+`"
  cache_dir    = "`+filepath.Join(t.TempDir(), "cache")+`"
  interval     = "1h"
  max_failures = 2
}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	cfg.API.Address = "127.0.0.1:0"
	n, ctx := runNode(t, cfg)
	s := signal.New("n1", time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s.Lat, s.Lon, s.Speed, s.Protocol, s.Path = 50, 10, -3, "test", signal.PathDirect
	if _, err := n.Store().WriteSignals(ctx, []signal.Signal{s}); err != nil {
		t.Fatal(err)
	}
	alerts := func(state string) int {
		t.Helper()
		var c int
		if err := n.Store().Pool().QueryRow(ctx, `SELECT count(*) FROM alerts
			WHERE device_id = 'rule:test.trap' AND kind = 'rule_disabled' AND state = $1`, state).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	deadline := time.Now().Add(30 * time.Second)
	for alerts("open") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no rule_disabled alert; rule stats %+v", n.Rules().Rule("test.trap").Stats())
		}
		// RunAll skips the retry delay a failed batch gets on the schedule.
		if _, err := n.RuleRunner().RunAll(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !n.Rules().Rule("test.trap").Disabled() {
		t.Fatal("alert open but the rule is not disabled")
	}
	var events int
	if err := n.Store().Pool().QueryRow(ctx, `SELECT count(*) FROM alert_events
		WHERE device_id = 'rule:test.trap' AND kind = 'rule_disabled' AND state = 'open' AND reason LIKE '%disabled after 2 consecutive failed batches%'`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 1 {
		t.Fatalf("%d open events in the outbox, want 1", events)
	}
	// Still disabled: the alert stays open.
	if err := n.Organizer().RunNow(ctx, node.JobRuleAlerts); err != nil {
		t.Fatal(err)
	}
	if alerts("open") != 1 {
		t.Fatal("the alert cleared while the rule is still disabled")
	}
	n.Rules().Rule("test.trap").Enable()
	if err := n.Organizer().RunNow(ctx, node.JobRuleAlerts); err != nil {
		t.Fatal(err)
	}
	if alerts("open") != 0 || alerts("cleared") != 1 {
		t.Fatalf("after re-enabling: %d open, %d cleared, want 0 and 1", alerts("open"), alerts("cleared"))
	}
}

// runNode runs a node on cfg without decoders or log (see testnode.Run).
func runNode(t *testing.T, cfg *config.Config) (*node.Node, context.Context) {
	t.Helper()
	return testnode.Run(t, cfg, plugins.NewRegistry(), hclog.NewNullLogger())
}
