package api

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestAlertKinds: the API's list is the kinds core/integrity opens.
func TestAlertKinds(t *testing.T) {
	want := []string{integrity.KindScoreLow, integrity.KindGPSBroken, integrity.KindClockDrift, integrity.KindDuplicateStorm,
		integrity.KindReportingGap, integrity.KindTeleport, integrity.KindRuleDisabled, integrity.KindDecoderDisabled,
		integrity.KindRecordRefused}
	slices.Sort(want)
	if !slices.Equal(AlertKinds, want) {
		t.Fatalf("AlertKinds %v, integrity's kinds %v", AlertKinds, want)
	}
}

type fakeRules []RuleStatus

func (f fakeRules) Rules() []RuleStatus { return f }

// TestIntegrationAPIConsistency: an unknown device is 404 on every device
// endpoint; a bad kind, from after to and a limit that is no number are
// 400 naming the parameter; a rule the host no longer has leaves
// /api/rules and the dashboard.
func TestIntegrationAPIConsistency(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")

	for _, p := range []string{"", "/signals", "/findings", "/track", "/trips", "/signals.csv", "/signals.geojson", "/signals.gpx"} {
		body := get(t, ts.URL, "/api/devices/no-such-device"+p, "", 404, nil)
		if !strings.Contains(string(body), "no-such-device") {
			t.Errorf("%s: 404 %s does not name the device", p, body)
		}
		get(t, ts.URL, "/api/devices/"+devHealthy+p, "", 200, nil)
	}

	for _, c := range []struct{ path, word string }{
		{"/api/alerts?kind=bogus", "kind"},
		{"/api/alerts?state=bogus", "state"},
		{"/api/alerts?limit=abc", "limit"},
		{"/api/devices?limit=abc", "limit"},
		{"/api/positions?limit=abc", "limit"},
		{"/api/rejected?limit=abc", "limit"},
		{"/api/rejected/records?limit=abc", "limit"},
	} {
		body := get(t, ts.URL, c.path, "", 400, nil)
		if !strings.Contains(string(body), c.word) {
			t.Errorf("%s: %s does not name %s", c.path, body, c.word)
		}
	}
	for _, p := range []string{"/signals", "/findings", "/track", "/trips", "/signals.csv", "/signals.geojson", "/signals.gpx"} {
		base := "/api/devices/" + devHealthy + p
		for _, q := range []string{"?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "?limit=abc", "?kind=bogus"} {
			if q == "?limit=abc" && strings.Contains(p, ".") || q == "?limit=abc" && p == "/trips" {
				continue // exports and trips take no limit: that 400 names limit as unknown
			}
			body := get(t, ts.URL, base+q, "", 400, nil)
			word := strings.TrimPrefix(strings.SplitN(q, "=", 2)[0], "?")
			if !strings.Contains(string(body), word) {
				t.Errorf("%s%s: %s does not name %s", base, q, body, word)
			}
		}
	}
	get(t, ts.URL, "/api/alerts?kind=gps_broken", "", 200, nil)

	// obd.plausibility has statistics and an error in the database, but the
	// rule host no longer has it: it is gone from the list.
	deps := storeDeps(sd.st)
	deps.Rules = fakeRules{{Name: "gps.zero_island", Version: "1.0.0", Dimension: "validity", Severity: "warning", State: "active"}}
	s, err := New(Options{Address: "127.0.0.1:0"}, deps, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPTest(t, s)
	var rules struct {
		Rules []RuleRow `json:"rules"`
	}
	get(t, srv, "/api/rules", "", 200, &rules)
	if len(rules.Rules) != 1 || rules.Rules[0].Name != "gps.zero_island" || rules.Rules[0].Evaluated == 0 {
		t.Fatalf("rules %+v", rules.Rules)
	}
	if html := get(t, srv, "/dashboard", "", 200, nil); strings.Contains(string(html), "obd.plausibility") ||
		!strings.Contains(string(html), "gps.zero_island") {
		t.Fatal("the dashboard still lists the deleted rule obd.plausibility, or lost gps.zero_island")
	}
	// Without a rule host (a node that runs no rules) the database's view stays.
	get(t, ts.URL, "/api/rules", "", 200, &rules)
	if len(rules.Rules) != 2 {
		t.Fatalf("rules without a host %+v", rules.Rules)
	}
}

func newHTTPTest(t *testing.T, s *Server) string {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}
