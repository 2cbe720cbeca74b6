package api

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

// browser starts headless Chromium under the DevTools protocol and
// returns a context for chromedp actions and the URLs of every request
// the pages made.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI (make test-tools installs it): %v", err)
		}
		t.Skipf("chromium not installed: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-quic", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("disable-component-update", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	var mu sync.Mutex
	var reqs []string
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var u string
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u = e.Request.URL
		case network.EventRequestWillBeSent:
			u = e.Request.URL
		default:
			return
		}
		mu.Lock()
		reqs = append(reqs, u)
		mu.Unlock()
	}))
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reqs...)
	}
}

// savePNG checks a screenshot and keeps it: in the test's temporary
// folder, in testdata/ with -update and in $FLEETCORE_ARTIFACTS.
func savePNG(t *testing.T, name string, png []byte) {
	t.Helper()
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 20000 {
		t.Fatalf("%s is not a plausible PNG (%d bytes)", name, len(png))
	}
	dirs := []string{t.TempDir()}
	if *update {
		dirs = append(dirs, "testdata")
	}
	if d := os.Getenv("FLEETCORE_ARTIFACTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: %d bytes in %v", name, len(png), dirs)
}

// spreadFleet moves the seeded devices apart (they all drive the same
// road), leaving the (0,0) fixes of the faulty ones where they are; the
// faulty devNoFix drives a winding road on which a second rule failed
// some fixes before its GPS broke.
func spreadFleet(t *testing.T, sd *seeded) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := sd.st.Pool().Exec(context.Background(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, id := range []string{devHealthy, devNoFix, devClock, devDuplicate, devGappy, devJunk} {
		exec(`UPDATE signals SET lat = lat + $2, lon = lon + $3 WHERE device_id = $1 AND NOT (lat = 0 AND lon = 0)`,
			id, float64(i%3)*0.01, float64(i)*0.015)
	}
	exec(`UPDATE signals SET lon = lon + 0.004 * sin(extract(epoch FROM ts) / 900.0) WHERE device_id = $1 AND NOT (lat = 0 AND lon = 0)`, devNoFix)
	exec(`INSERT INTO findings (signal_id, device_id, ts, rule, rule_version, dimension, severity, status, reason, reason_text)
		SELECT id, device_id, ts, 'gps.teleport', '1.0.0', 'validity', 'warning', 'fail', 2, 'jumped 4.1 km in 60 s (246 km/h)'
		FROM signals WHERE device_id = $1 AND NOT (lat = 0 AND lon = 0) AND extract(minute FROM ts)::int % 17 = 3`, devNoFix)
}

func TestIntegrationMapAndDevicePageInChromium(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	spreadFleet(t, sd)
	ts, _ := newTestServer(t, sd, "")
	var pos struct {
		Positions []Position `json:"positions"`
	}
	get(t, ts.URL, "/api/positions", "", 200, &pos)
	if len(pos.Positions) != 6 {
		t.Fatalf("%d positions, want the 6 seeded devices", len(pos.Positions))
	}
	ctx, requests := browser(t)

	// The dashboard: one marker per position, coloured by score band.
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("counting %s: %v", sel, err)
		}
		return n
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	attr := func(sel, name string) string {
		t.Helper()
		a, err := chromedp.Run(ctx, chromedp.AttributeValue(sel, name))
		if err != nil {
			t.Fatalf("reading %s of %s: %v", name, sel, err)
		}
		return a.Value
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		savePNG(t, name, png)
	}
	marker := func(id string) string { return fmt.Sprintf(`#map path.fc-marker[data-device=%q]`, id) }

	run("loading the dashboard", chromedp.Navigate(ts.URL+"/dashboard"), chromedp.WaitVisible(`#map[data-markers]`))
	if n := count(`#map path.fc-marker`); n != 6 {
		t.Errorf("%d markers drawn, want 6", n)
	}
	if n := count(`#fleet a.dev`); n != 6 {
		t.Errorf("%d device links in the fleet table, want 6", n)
	}
	if h, j := attr(marker(devHealthy), "data-band"), attr(marker(devJunk), "data-band"); h != "good" || j != "bad" {
		t.Errorf("marker bands: healthy %q, junk %q; want good and bad", h, j)
	}
	screenshot("map.png")

	// Search narrows the map.
	run("searching the map", chromedp.SendKeys(`#map-search`, "8612"))
	if n := count(`#map path.fc-marker`); n != 2 {
		t.Errorf("searching 8612 leaves %d markers, want 2", n)
	}

	// A click on a marker opens its device page.
	run("clicking a marker", chromedp.Click(marker(devDuplicate)), chromedp.WaitVisible(`#track-map[data-fixes]`))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if want := ts.URL + "/devices/" + devDuplicate; loc != want {
		t.Errorf("the marker led to %s, want %s", loc, want)
	}

	// The faulty device's page: the track with its failed fixes and why.
	run("loading the device page", chromedp.Navigate(ts.URL+"/devices/"+url.PathEscape(devNoFix)),
		chromedp.WaitVisible(`#track-map[data-fixes]`), chromedp.WaitVisible(`#trips table, #trips p`))
	fixes, failed := count(`#track-map path.fc-fix`), count(`#track-map path.fc-fail`)
	if fixes < 50 || failed < 1 || failed >= fixes {
		t.Errorf("track: %d fixes, %d failed; want many fixes, some of them failed", fixes, failed)
	}
	if n := count(`#track-map path.fc-track`); n != 1 {
		t.Errorf("%d track lines, want 1", n)
	}
	tip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
		var p = document.querySelector('#track-map path.fc-fail');
		p.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
		var t = document.querySelector('.leaflet-tooltip'); return t ? t.textContent : ''; })()`))
	if err != nil {
		t.Fatalf("hovering a failed fix: %v", err)
	}
	const reason = "position within 0.0001° of (0,0)"
	if !strings.Contains(tip, "gps.") || (!strings.Contains(tip, reason) && !strings.Contains(tip, "jumped 4.1 km")) {
		t.Errorf("hovering a failed fix shows %q, want the rule and its reason", tip)
	}
	if s := text(`#failed-fixes`); !strings.Contains(s, reason) || !strings.Contains(s, "gps.teleport: jumped 4.1 km") {
		t.Errorf("the failed fixes table lacks the reason: %q", s)
	}
	if s := text(`#trips`); !strings.Contains(s, "Trusted distance") {
		t.Errorf("no trips table: %q", s)
	}
	if s := text(`#findings`); !strings.Contains(s, "gps.zero_island") {
		t.Errorf("findings lack gps.zero_island: %q", s)
	}
	if s := text(`#obd`); !strings.Contains(s, "speed") || !strings.Contains(s, "km/h") {
		t.Errorf("latest OBD values lack the speed: %q", s)
	}
	screenshot("device.png")

	// The export links follow the range.
	href := attr(`#exports a[data-export="signals.csv"]`, "href")
	if !strings.Contains(href, "from=") || !strings.Contains(href, "to=") {
		t.Errorf("the CSV link %q does not carry the range", href)
	}
	if csv := get(t, ts.URL, href, "", 200, nil); bytes.Count(csv, []byte("\n")) < 100 {
		t.Errorf("the CSV export of the page's range has %d lines", bytes.Count(csv, []byte("\n")))
	}

	// Nothing was fetched from anywhere but fleetcore.
	reqs := requests()
	for _, want := range []string{"/static/leaflet/leaflet.js", "/api/positions", "/track?", "/trips?"} {
		if !slices.ContainsFunc(reqs, func(u string) bool { return strings.Contains(u, want) }) {
			t.Errorf("no request for %s seen (of %d)", want, len(reqs))
		}
	}
	for _, u := range reqs {
		if !strings.HasPrefix(u, ts.URL+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the pages fetched %s, beyond fleetcore", u)
		}
	}
}
