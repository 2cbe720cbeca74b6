package rules_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/api"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

type scoreState struct {
	scores map[string]int64
	alerts map[string]int64 // device/kind -> open alerts
}

func readScores(t *testing.T, p *pgxpool.Pool) scoreState {
	t.Helper()
	ctx := context.Background()
	st := scoreState{scores: map[string]int64{}, alerts: map[string]int64{}}
	rows, err := p.Query(ctx, "SELECT device_id, score FROM device_scores")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d string
		var s int64
		if err := rows.Scan(&d, &s); err != nil {
			t.Fatal(err)
		}
		st.scores[d] = s
	}
	rows.Close()
	rows, err = p.Query(ctx, "SELECT device_id || '/' || kind, count(*) FROM alerts WHERE state = 'open' GROUP BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		st.alerts[k] = n
	}
	rows.Close()
	return st
}

// A rule in shadow mode stores its findings marked shadow and leaves
// scores and alerts as they are without it; the API tells by how much each
// device's score would move; switching the rule to active re-marks its
// findings and the scores then move by exactly that much.
func TestIntegrationRuleShadowMode(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	rule := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
	var sigs []signal.Signal
	for i := 0; i < 20; i++ {
		lat := 45.0
		if i%5 != 0 {
			lat = 91 // 16 of 20 fail gps.range
		}
		sigs = append(sigs, fix("bad", i, lat, 7), fix("good", i, 45, 7))
	}
	write(t, st, sigs...)
	pool := rulesPool(t, url, 4)
	scorer := integrity.NewScorer(pool, integrity.DefaultParams(), testLogger(t))

	shadow := rules.New(pool, staticRules{rule}, rules.Config{Backfill: true,
		Shadow: map[string]bool{"gps.range": true}}, testLogger(t))
	if _, err := shadow.RunRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, pool, "SELECT count(*) FROM findings WHERE shadow AND device_id = 'bad'"); got != 16 {
		t.Fatalf("%d shadow findings, want 16", got)
	}
	if got := queryInt(t, pool, "SELECT count(*) FROM findings WHERE NOT shadow"); got != 0 {
		t.Fatalf("%d active findings of a shadow rule", got)
	}
	if got := queryInt(t, pool, "SELECT count(*) FROM rule_stats WHERE NOT shadow"); got != 0 {
		t.Fatalf("%d active rule_stats rows of a shadow rule", got)
	}
	if _, err := scorer.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	withShadow := readScores(t, pool)

	// The same scores and alerts as with no rule at all: score again
	// without the rule's statistics (kept aside, then restored).
	if _, err := pool.Exec(ctx, "CREATE TABLE kept AS SELECT * FROM rule_stats; DELETE FROM rule_stats"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bad", "good"} {
		if err := scorer.Rescore(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	without := readScores(t, pool)
	if _, err := pool.Exec(ctx, "INSERT INTO rule_stats SELECT * FROM kept; DROP TABLE kept"); err != nil {
		t.Fatal(err)
	}
	for d, s := range without.scores {
		if withShadow.scores[d] != s {
			t.Errorf("%s: score %d with the shadow rule, %d without it", d, withShadow.scores[d], s)
		}
	}
	if len(without.scores) != 2 || len(withShadow.alerts) != len(without.alerts) {
		t.Errorf("scores %v / %v, alerts with the shadow rule %v, without %v",
			withShadow.scores, without.scores, withShadow.alerts, without.alerts)
	}
	for k, n := range without.alerts {
		if withShadow.alerts[k] != n {
			t.Errorf("alert %s: %d open with the shadow rule, %d without", k, withShadow.alerts[k], n)
		}
	}

	// The API: what the rule would change.
	srv, err := api.New(api.Options{Address: "127.0.0.1:0"}, api.Deps{DB: pool, Shadow: shadowAPI{scorer}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/rules/gps.range/shadow", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET shadow: %d %s", rec.Code, rec.Body)
	}
	var resp struct {
		Rule    string             `json:"rule"`
		Moved   int                `json:"devices_moved"`
		Devices []integrity.Impact `json:"devices"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Rule != "gps.range" || resp.Moved != 1 || len(resp.Devices) != 2 {
		t.Fatalf("shadow report %s", rec.Body)
	}
	bad, good := resp.Devices[0], resp.Devices[1]
	if bad.DeviceID != "bad" || bad.DeltaCenti >= 0 || bad.Failed != 16 || bad.Applicable != 20 ||
		bad.BeforeCenti != withShadow.scores["bad"] || bad.AfterCenti != bad.BeforeCenti+bad.DeltaCenti {
		t.Fatalf("bad device: %+v (stored score %d)", bad, withShadow.scores["bad"])
	}
	if good.DeviceID != "good" || good.DeltaCenti != 0 || good.Failed != 0 || good.Applicable != 20 {
		t.Fatalf("good device: %+v", good)
	}
	// The dashboard says the same on the rule's row.
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	if want := "shadow: would move 1 device, at most −" + api.Centi(-bad.DeltaCenti).String() + " points"; rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("dashboard (%d) does not say %q:\n%s", rec.Code, want, rec.Body)
	}

	// Promote: the same version, now active. Its stored rows are re-marked
	// and the next scoring counts them: the score moves as announced.
	active := rules.New(pool, staticRules{rule}, rules.Config{Backfill: true}, testLogger(t))
	if _, err := active.RunRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, pool, "SELECT count(*) FROM findings WHERE shadow OR device_id <> 'bad'"); got != 0 {
		t.Fatalf("%d findings still shadow after promotion", got)
	}
	for _, d := range []string{"bad", "good"} {
		if err := scorer.Rescore(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	after := readScores(t, pool)
	if after.scores["bad"] != bad.AfterCenti || after.scores["good"] != good.AfterCenti {
		t.Fatalf("after promotion scores %v, the shadow report announced bad %d, good %d",
			after.scores, bad.AfterCenti, good.AfterCenti)
	}
}

// shadowAPI adapts the scorer for the API as the node does.
type shadowAPI struct{ s *integrity.Scorer }

func (a shadowAPI) ShadowImpact(ctx context.Context, rule string) ([]api.ShadowDevice, error) {
	list, err := a.s.ShadowImpact(ctx, rule)
	out := make([]api.ShadowDevice, len(list))
	for i, d := range list {
		out[i] = api.ShadowDevice(d)
	}
	return out, err
}
