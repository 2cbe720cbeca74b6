package api

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

var rowDevice = regexp.MustCompile(`<tr class="device" data-device="([^"]+)">`)

// fleetRows are the device ids of the fleet table in a dashboard page.
func fleetRows(page []byte) []string {
	var ids []string
	for _, m := range rowDevice.FindAllSubmatch(page, -1) {
		ids = append(ids, string(m[1]))
	}
	return ids
}

func TestIntegrationDashboardFleetTable(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	// 120 more devices, scored but silent, so the table needs three pages.
	if _, err := sd.st.Pool().Exec(context.Background(), `INSERT INTO device_scores (device_id, score, dimensions, losses, windows,
		interval_ms, clock_offset_ms) SELECT 'bulk-' || lpad(i::text, 3, '0'), 9500, '[]', '[]', 1, 60000, 0 FROM generate_series(1, 120) i`); err != nil {
		t.Fatal(err)
	}
	ts, _ := newTestServer(t, sd, "")
	page := func(q string) []byte { t.Helper(); return get(t, ts.URL, "/dashboard"+q, "", 200, nil) }

	// Pagination: 126 devices in pages of 50, none lost beyond 200.
	var all []string
	for p, want := range map[string]string{"": "1–50 of 126 devices", "?page=2": "51–100 of 126", "?page=3": "101–126 of 126"} {
		b := page(p)
		if !strings.Contains(string(b), want) {
			t.Errorf("dashboard%s does not say %q", p, want)
		}
		all = append(all, fleetRows(b)...)
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != 126 {
		t.Errorf("the three pages hold %d distinct devices, want 126", len(slices.Compact(all)))
	}
	first := string(page(""))
	if rows := fleetRows([]byte(first)); len(rows) != 50 || rows[0] != devJunk {
		t.Errorf("first page: %d rows starting %v, want 50 worst first", len(rows), rows[:min(1, len(rows))])
	}
	for _, want := range []string{`href="/dashboard?page=2"`, `href="/dashboard?page=3"`, `rel="next"`,
		`<a class="dev" href="/devices/` + devJunk + `">`, `href="/devices/` + devNoFix + `#alerts">gps_broken</a>`,
		`href="/devices/` + devJunk + `#reasons"`, "signals stored (new rows, direct)", `id="map"`} {
		if !strings.Contains(first, want) {
			t.Errorf("the first page lacks %s", want)
		}
	}
	if strings.Contains(first, `<td class="muted">signals stored</td>`) {
		t.Error(`the ingest panel still has a bare "signals stored" (acked signals, duplicates included)`)
	}

	// Search, filters, and a bad value.
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"?q=8612", []string{devDuplicate, devGappy}},
		{"?q=fmb920", []string{devJunk}},
		{"?band=bad", []string{devJunk}},
		{"?protocol=gt06", nil},
		{"?alert=clock_drift", []string{devClock, devJunk}},
		// The drifting clock costs timeliness (builtin.lag 2): that
		// device is in the warn band, the healthy one in the good band.
		{"?alert=clock_drift&band=warn", []string{devClock}},
		{"?alert=clock_drift&band=good", nil},
		{"?protocol=teltonika&band=good&q=3563", []string{devHealthy}},
		{"?protocol=teltonika&band=warn&q=3563", []string{devNoFix, devClock}},
	} {
		got := fleetRows(page(tc.q))
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("dashboard%s: %v, want %v", tc.q, got, tc.want)
		}
	}
	if n := len(fleetRows(page("?protocol=teltonika"))); n != 6 {
		t.Errorf("protocol teltonika: %d devices, want the 6 that sent signals", n)
	}
	if b := string(page("?page=zero&band=purple")); !strings.Contains(b, "ignored a bad value of band, page") || len(fleetRows([]byte(b))) != 50 {
		t.Errorf("bad filter values are not reported and ignored")
	}
	if b := string(page("?q=nothing-like-it")); !strings.Contains(b, "No device matches") {
		t.Error("an empty search does not say so")
	}
}

func TestIntegrationDevicePage(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")
	b := string(get(t, ts.URL, "/devices/"+devJunk, "", 200, nil))
	for _, want := range []string{
		"checksum: crc 0x1c2d, frame says 0x9f00", // its rejected frame
		"000000000000000f08010000",                // and its bytes
		"gps_broken",                              // an open alert
		"gps.zero_island",                         // findings
		"validity −",                              // the reasons of its score
		`class="chart"`,                           // the score history
		"Latest OBD values", "42.0 km/h",          // the newest speed
		`data-api="/api/devices/` + devJunk + `"`, // where the script fetches track and trips
	} {
		if !strings.Contains(b, want) {
			t.Errorf("the device page lacks %q", want)
		}
	}
	if b := string(get(t, ts.URL, "/devices/"+devHealthy, "", 200, nil)); !strings.Contains(b, "No frame of this device was rejected") ||
		!strings.Contains(b, "No rule has warned about or failed a record") {
		t.Error("the healthy device's page does not say it has no rejected frames and no findings")
	}
	get(t, ts.URL, "/devices/no-such-device", "", 404, nil)
	get(t, ts.URL, "/devices/x%01y", "", 400, nil)
	if b := string(get(t, ts.URL, "/devices/"+devHealthy+"?from=2026-01-02T03:04&to=yesterday", "", 200, nil)); !strings.Contains(b, "to: ") ||
		!strings.Contains(b, `value="2026-01-02T03:04"`) {
		t.Error("a bad range is not reported, or the good half not kept")
	}
}

func TestIntegrationStaticAndHeaders(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServerOpts(t, sd, Options{Address: "127.0.0.1:0", MapTiles: "https://{s}.tiles.example.net/{z}/{x}/{y}.png", MapAttribution: "© Example"})
	resp, err := http.Get(ts.URL + "/static/leaflet/leaflet.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("leaflet.js: %d, ETag %q, type %q", resp.StatusCode, etag, resp.Header.Get("Content-Type"))
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/static/leaflet/leaflet.js", nil)
	req.Header.Set("If-None-Match", etag)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	for _, p := range []string{"/static/nope.js", "/static/../templates/dashboard.html", "/static/"} {
		if resp, err := http.Get(ts.URL + p); err != nil || resp.StatusCode != 404 {
			t.Errorf("GET %s: %v, want 404", p, resp.StatusCode)
		} else {
			resp.Body.Close()
		}
	}
	resp, err = http.Get(ts.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "connect-src 'self'", "img-src 'self' data: https://*.tiles.example.net;"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	b := string(get(t, ts.URL, "/dashboard", "", 200, nil))
	if !strings.Contains(b, `data-tiles="https://{s}.tiles.example.net/{z}/{x}/{y}.png"`) || !strings.Contains(b, `data-attribution="© Example"`) {
		t.Error("the map's tile template or attribution is not on the page")
	}
	if _, err := New(Options{Address: "127.0.0.1:0", MapTiles: "https://tiles/{z}.png"}, storeDeps(sd.st), hclog.NewNullLogger()); err == nil {
		t.Error("New accepts a tile template without {x} and {y}")
	}
}
