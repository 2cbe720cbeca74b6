package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

func newTestServer(t *testing.T, sd *seeded, token string) (*httptest.Server, *gateway.Gateway) {
	t.Helper()
	return newTestServerOpts(t, sd, Options{Address: "127.0.0.1:0", Token: token})
}

func newTestServerOpts(t *testing.T, sd *seeded, opts Options) (*httptest.Server, *gateway.Gateway) {
	t.Helper()
	b := ingest.New(ingest.Config{}, hclog.NewNullLogger(), &ingest.PostgresTier{Store: sd.st})
	g := gateway.New(hclog.NewNullLogger(), b, nil)
	g.Stats().Protocol("teltonika").Frames.Add(7)
	g.Stats().Protocol("teltonika").Signals.Add(31)
	g.Stats().Protocol("gt06").Rejected.Add(2)
	g.Stats().Protocol("gt06").Panics.Add(1)
	g.Stats().AckLatency.Observe(3.5)
	h := testHealth(t, sd.st)
	deps := storeDeps(sd.st)
	deps.Collectors, deps.Summaries = []Collector{b, g, h}, []Summarizer{b, g}
	deps.Health, deps.NodeID = h, "test-node"
	deps.Ready = []ReadyProbe{{Name: "postgres", Check: sd.st.Ping}}
	s, err := New(opts, deps, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, g
}

func get(t *testing.T, base, path, token string, want int, into any) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", path, resp.StatusCode, want, body)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return body
}

type devicesPage struct {
	Devices []struct {
		DeviceID   string     `json:"device_id"`
		Score      float64    `json:"score"`
		LastSeen   *time.Time `json:"last_seen"`
		OpenAlerts int        `json:"open_alerts"`
		Reason     string     `json:"reason"`
	} `json:"devices"`
	Total      int    `json:"total"`
	NextCursor string `json:"next_cursor"`
}

func TestIntegrationAPI(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")

	var page devicesPage
	get(t, ts.URL, "/api/devices?sort=score", "", 200, &page)
	if page.Total != 6 || len(page.Devices) != 6 {
		t.Fatalf("devices %+v", page)
	}
	if page.Devices[0].DeviceID != devJunk || page.Devices[0].Score != 50 {
		t.Fatalf("worst device %+v, want %s at 50.00", page.Devices[0], devJunk)
	}
	if page.Devices[5].DeviceID != devHealthy || page.Devices[5].Score != 100 || page.Devices[5].Reason != "" {
		t.Fatalf("best device %+v, want %s at 100.00", page.Devices[5], devHealthy)
	}
	for i := 1; i < len(page.Devices); i++ {
		if page.Devices[i].Score < page.Devices[i-1].Score {
			t.Fatalf("not sorted by score: %+v", page.Devices)
		}
	}
	if page.Devices[0].LastSeen == nil || page.Devices[0].OpenAlerts < 2 || !strings.Contains(page.Devices[0].Reason, "validity") {
		t.Fatalf("worst device summary %+v", page.Devices[0])
	}

	// Cursor paging visits every device once in the same order, both ways.
	for _, sortBy := range []string{"score", "-score", "device_id", "-last_seen"} {
		var seen []string
		cur := ""
		for i := 0; i < 10; i++ {
			var p devicesPage
			q := "/api/devices?limit=4&sort=" + url.QueryEscape(sortBy)
			if cur != "" {
				q += "&cursor=" + cur
			}
			get(t, ts.URL, q, "", 200, &p)
			for _, d := range p.Devices {
				seen = append(seen, d.DeviceID)
			}
			if cur = p.NextCursor; cur == "" {
				break
			}
		}
		var all devicesPage
		get(t, ts.URL, "/api/devices?sort="+url.QueryEscape(sortBy), "", 200, &all)
		var want []string
		for _, d := range all.Devices {
			want = append(want, d.DeviceID)
		}
		if strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Fatalf("sort %s: cursor pages %v, one page %v", sortBy, seen, want)
		}
	}
	var off devicesPage
	get(t, ts.URL, "/api/devices?sort=-score&limit=2&offset=1", "", 200, &off)
	if len(off.Devices) != 2 || off.Devices[0].Score > 100 || off.Devices[0].DeviceID == devHealthy {
		t.Fatalf("offset page %+v", off.Devices)
	}
	get(t, ts.URL, "/api/devices?sort=worst", "", 400, nil)
	get(t, ts.URL, "/api/devices?limit=0", "", 400, nil)

	// Device detail: score, dimensions, reasons, open alerts.
	var d DeviceDetail
	var raw map[string]any
	body := get(t, ts.URL, "/api/devices/"+devNoFix, "", 200, &raw)
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Dimensions) != 5 || len(d.Reasons) != 2 || len(d.History) < 4 {
		t.Fatalf("detail %s", body)
	}
	kinds := map[string]bool{}
	for _, a := range d.OpenAlerts {
		kinds[a.Kind] = true
	}
	if !kinds["gps_broken"] {
		t.Fatalf("no gps_broken alert for %s: %s", devNoFix, body)
	}
	checks := map[string]bool{}
	for _, r := range d.Reasons {
		checks[r.Check] = true
		if !strings.HasPrefix(r.Text, "validity −") {
			t.Fatalf("reason %q", r.Text)
		}
	}
	if !checks["gps.zero_island"] || !checks["builtin.gps_fix"] {
		t.Fatalf("reasons %+v", d.Reasons)
	}
	get(t, ts.URL, "/api/devices/nosuchdevice", "", 404, nil)

	// Signals, paged by cursor in canonical field names.
	var sp struct {
		Signals []map[string]any `json:"signals"`
		Next    string           `json:"next_cursor"`
	}
	from := sd.base.Format(time.RFC3339)
	to := sd.base.Add(time.Hour).Format(time.RFC3339)
	get(t, ts.URL, "/api/devices/"+devHealthy+"/signals?limit=50&from="+from+"&to="+to, "", 200, &sp)
	if len(sp.Signals) != 50 || sp.Next == "" {
		t.Fatalf("first signal page: %d signals, cursor %q", len(sp.Signals), sp.Next)
	}
	first := sp.Signals[0]
	for _, k := range []string{"id", "device_id", "ts", "recv", "lat", "lon", "speed", "sats", "valid", "protocol", "path", "decoder_version"} {
		if _, ok := first[k]; !ok {
			t.Fatalf("signal lacks %q: %v", k, first)
		}
	}
	if v := first["decoder_version"]; v != "builtin:test" {
		t.Fatalf("decoder_version %v, want the stored builtin:test", v)
	}
	n, next := len(sp.Signals), sp.Next
	sp.Signals, sp.Next = nil, ""
	get(t, ts.URL, "/api/devices/"+devHealthy+"/signals?limit=50&from="+from+"&to="+to+"&cursor="+next, "", 200, &sp)
	if n+len(sp.Signals) != 60 || sp.Next != "" {
		t.Fatalf("second page %d signals (cursor %q), want 10 for one hour at one per minute", len(sp.Signals), sp.Next)
	}
	get(t, ts.URL, "/api/devices/"+devHealthy+"/signals?from=yesterday", "", 400, nil)

	var fp struct {
		Findings []Finding `json:"findings"`
	}
	get(t, ts.URL, "/api/devices/"+devNoFix+"/findings?limit=5", "", 200, &fp)
	if len(fp.Findings) != 5 || fp.Findings[0].Rule != "gps.zero_island" || fp.Findings[0].Status != "fail" {
		t.Fatalf("findings %+v", fp.Findings)
	}

	var ap struct {
		Alerts []Alert `json:"alerts"`
	}
	get(t, ts.URL, "/api/alerts?state=open", "", 200, &ap)
	byKind := map[string][]string{}
	for _, a := range ap.Alerts {
		if a.State != "open" {
			t.Fatalf("state=open returned %+v", a)
		}
		byKind[a.Kind] = append(byKind[a.Kind], a.DeviceID)
	}
	for kind, dev := range map[string]string{"gps_broken": devNoFix, "clock_drift": devClock, "duplicate_storm": devDuplicate, "score_low": devJunk} {
		if !strings.Contains(strings.Join(byKind[kind], ","), dev) {
			t.Errorf("no open %s alert for %s: %v", kind, dev, byKind)
		}
	}
	get(t, ts.URL, "/api/alerts?state=maybe", "", 400, nil)

	var rp struct {
		Rejected []Rejected `json:"rejected"`
	}
	get(t, ts.URL, "/api/rejected", "", 200, &rp)
	if len(rp.Rejected) != 1 || rp.Rejected[0].RawHex != "000000000000000f08010000" || rp.Rejected[0].Bytes != 12 {
		t.Fatalf("rejected %+v", rp.Rejected)
	}

	var rules struct {
		Rules []RuleRow `json:"rules"`
	}
	get(t, ts.URL, "/api/rules", "", 200, &rules)
	if len(rules.Rules) != 2 || rules.Rules[0].Name != "gps.zero_island" || rules.Rules[0].Evaluated == 0 ||
		rules.Rules[1].State != "failing" || rules.Rules[1].Errors != 1 {
		t.Fatalf("rules %+v", rules.Rules)
	}

	var ready struct {
		Ready bool `json:"ready"`
	}
	get(t, ts.URL, "/readyz", "", 200, &ready)
	get(t, ts.URL, "/healthz", "", 200, nil)
	get(t, ts.URL, "/api/nothing", "", 404, nil)
}

func TestIntegrationMetrics(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")
	body := string(get(t, ts.URL, "/metrics", "", 200, nil))
	var low60, low100 int
	if err := sd.st.Pool().QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE score < 6000),
		count(*) FILTER (WHERE score < 10000) FROM device_scores`).Scan(&low60, &low100); err != nil {
		t.Fatal(err)
	}
	if low60 == 0 {
		t.Fatal("the seeded fleet has no device below 60: the check below would prove little")
	}
	for _, want := range []string{
		"# TYPE fleetcore_ingest_signals_submitted_total counter\nfleetcore_ingest_signals_submitted_total 0\n",
		`fleetcore_tier_batches_total{tier="direct"} 0`,
		"# TYPE fleetcore_ack_latency_seconds histogram\n",
		`fleetcore_ack_latency_seconds_bucket{le="0.002"} 0`,
		`fleetcore_ack_latency_seconds_bucket{le="0.005"} 1`,
		`fleetcore_ack_latency_seconds_bucket{le="+Inf"} 1`,
		"fleetcore_ack_latency_seconds_sum 0.0035\n",
		`fleetcore_protocol_frames_total{protocol="teltonika"} 7`,
		`fleetcore_protocol_rejected_total{protocol="gt06"} 2`,
		`fleetcore_protocol_signals_total{protocol="teltonika"} 31`,
		"fleetcore_connections_open 0\n",
		`fleetcore_decoder_panics_total{protocol="gt06"} 1`,
		`fleetcore_connections_refused_by_reason_total{reason="ip_cap"} 0`,
		"fleetcore_buffered_bytes 0\n",
		`fleetcore_rule_errors_total{rule="obd.plausibility",version="0.3.0"} 1`,
		`fleetcore_alerts_open{kind="gps_broken"} 2`,
		`fleetcore_service_check_state{check="spool",state="ok"} 0`,
		`fleetcore_service_check_state{check="spool",state="warn"} 1`,
		`fleetcore_service_check_state{check="spool",state="fail"} 0`,
		`fleetcore_service_check_state{check="postgres",state="ok"} 1`,
		"fleetcore_devices_scored 6\n",
		fmt.Sprintf("fleetcore_devices_below_score{score=\"60\"} %d\n", low60),
		fmt.Sprintf("fleetcore_devices_below_score{score=\"100\"} %d\n", low100),
		"fleetcore_metrics_database_up 1\n",
		"fleetcore_fleet_metrics_exporter 1\n",
		"# TYPE go_goroutines gauge\n",
		"# TYPE go_gc_duration_seconds summary\n",
		"# TYPE process_cpu_seconds_total counter\n",
		"# TYPE process_resident_memory_bytes gauge\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, gone := range []string{"_milliseconds", "fleetcore_rule_failed_24h", "fleetcore_devices_score_below_60", "fleetcore_service_check{"} {
		if strings.Contains(body, gone) {
			t.Errorf("metrics still hold %q", gone)
		}
	}
	// Every sample line belongs to a declared metric, declared once, and
	// the samples of one metric are contiguous.
	declared := map[string]bool{}
	var last string
	done := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			if declared[name] {
				t.Fatalf("%s declared twice", name)
			}
			declared[name] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name && declared[base] {
				name = base
			}
		}
		if !declared[name] {
			t.Fatalf("sample of undeclared metric: %s", line)
		}
		if name != last {
			if done[name] {
				t.Fatalf("samples of %s are not contiguous", name)
			}
			done[last] = true
			last = name
		}
	}
}

type fleetLock bool

func (l fleetLock) Held(context.Context) bool { return bool(l) }

// TestIntegrationMetricsFleetLock: a node that does not hold the fleet
// lock exports none of the fleet-wide database families, so that a sum
// over nodes counts every device once; it still says whether it could
// read the database.
func TestIntegrationMetricsFleetLock(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	for _, held := range []bool{false, true} {
		deps := storeDeps(sd.st)
		deps.FleetLock = fleetLock(held)
		s, err := New(Options{Address: "127.0.0.1:0"}, deps, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s.Handler())
		body := string(get(t, ts.URL, "/metrics", "", 200, nil))
		ts.Close()
		fleet := []string{"fleetcore_devices_scored ", "fleetcore_devices_below_score{", "fleetcore_alerts_open{", "fleetcore_rule_evaluations_total{", "fleetcore_rule_errors_total{"}
		for _, f := range fleet {
			if strings.Contains(body, f) != held {
				t.Errorf("lock held %v: family %q exported %v", held, f, !held)
			}
		}
		for _, want := range []string{"fleetcore_metrics_database_up 1\n", fmt.Sprintf("fleetcore_fleet_metrics_exporter %d\n", map[bool]int{false: 0, true: 1}[held])} {
			if !strings.Contains(body, want) {
				t.Errorf("lock held %v: metrics lack %q", held, want)
			}
		}
	}
}

func TestIntegrationTokenRequired(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, testToken)
	get(t, ts.URL, "/api/devices", "", 401, nil)
	get(t, ts.URL, "/api/devices", "wrong", 401, nil)
	get(t, ts.URL, "/api/devices", testToken, 200, nil)
	get(t, ts.URL, "/metrics", "", 401, nil)
	get(t, ts.URL, "/metrics", testToken, 200, nil)
	get(t, ts.URL, "/healthz", "", 200, nil)
	get(t, ts.URL, "/readyz", "", 200, nil)
	get(t, ts.URL, "/dashboard", "", 401, nil)
	get(t, ts.URL, "/dashboard", testToken, 200, nil)
	// No token in URLs, neither for the dashboard nor for the JSON API.
	if body := get(t, ts.URL, "/dashboard?token="+testToken, "", 401, nil); !strings.Contains(string(body), "not accepted") {
		t.Fatalf("?token= refused without saying why: %s", body)
	}
	get(t, ts.URL, "/api/devices?token="+testToken, "", 401, nil)
	// The single token of earlier versions is the admin token.
	get(t, ts.URL, "/debug/pprof/", testToken, 200, nil)
}

// testToken is a bearer token that config.TokenProblem accepts.
const testToken = "0123456789abcdef-test-token"

func TestRefusesNonLoopbackWithoutToken(t *testing.T) {
	cases := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:8080", "", true},
		{"[::1]:8080", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"10.0.0.5:8080", "", false},
		{"0.0.0.0:8080", testToken, true},
	}
	for _, tc := range cases {
		_, err := New(Options{Address: tc.addr, Token: tc.token}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger())
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrTokenRequired)) {
			t.Errorf("%s token %q: err %v", tc.addr, tc.token, err)
		}
	}
	// A token that is set must be usable, on loopback too.
	for _, tok := range []string{" ", "t", "change-me", testToken + " ", testToken + "\x00", testToken + ";"} {
		for _, addr := range []string{"127.0.0.1:8080", "0.0.0.0:8080"} {
			_, err := New(Options{Address: addr, Token: tok}, Deps{DB: dummyPool(t)}, hclog.NewNullLogger())
			if !errors.Is(err, ErrBadToken) {
				t.Errorf("%s token %q: err %v, want ErrBadToken", addr, tok, err)
			}
		}
	}
}

func TestSparklineIsNumbersOnly(t *testing.T) {
	s := string(sparkline([]int64{10000, 8000, 4000}, 6000))
	if !strings.HasPrefix(s, "<svg") || !strings.Contains(s, `<polyline points="3.0,3.0 80.0,8.2 157.0,18.6" class="ln bad"/>`) {
		t.Fatalf("sparkline %s", s)
	}
	if one := string(sparkline([]int64{9500}, 6000)); !strings.Contains(one, "<circle") {
		t.Fatalf("single point %s", one)
	}
}
