package api

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

var update = flag.Bool("update", false, "copy the dashboard screenshot to testdata/dashboard.png")

// chromium runs headless Chromium with args and returns its stdout.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI (make test-tools installs it): %v", err)
		}
		t.Skipf("chromium not installed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

var tags = regexp.MustCompile(`<[^>]*>`)

// visibleText reduces a DOM dump to its text, one space between words.
func visibleText(dom string) string {
	dom = regexp.MustCompile(`(?s)<style.*?</style>|<svg.*?</svg>`).ReplaceAllString(dom, " ")
	return strings.Join(strings.Fields(tags.ReplaceAllString(dom, " ")), " ")
}

func TestIntegrationDashboardInChromium(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	spreadFleet(t, sd)
	ts, _ := newTestServer(t, sd, "")
	dom := string(chromium(t, "--dump-dom", ts.URL+"/dashboard"))
	text := visibleText(dom)

	// The fleet, worst first: the junk device, then the ones with faults,
	// the healthy one last.
	pos := func(s string) int {
		i := strings.Index(text, s)
		if i < 0 {
			t.Fatalf("the page does not show %q:\n%s", s, text)
		}
		return i
	}
	fleet := text[pos("Fleet, worst score first"):pos("Open alerts")]
	order := []string{devJunk, devHealthy}
	if i, j := strings.Index(fleet, order[0]), strings.Index(fleet, order[1]); i < 0 || j < 0 || i > j {
		t.Fatalf("fleet not worst first:\n%s", fleet)
	}
	for _, want := range []string{
		"50.00",          // the junk device's score
		"100.00",         // the healthy one
		"no points lost", // and why it has nothing to explain
		"validity −",     // reasons behind the scores
		"gps.zero_island failed on",
		"gps_broken", "clock_drift", "duplicate_storm", "score_low",
		devNoFix, devClock, devDuplicate, devGappy,
	} {
		if !strings.Contains(fleet, want) {
			t.Errorf("fleet table lacks %q", want)
		}
	}
	// One trend line per device.
	if n := strings.Count(dom, `class="spark"`); n != 6 {
		t.Errorf("%d sparklines, want 6", n)
	}
	alerts := text[pos("Open alerts"):pos("Service health")]
	for _, want := range []string{"device clock behind by 47m", "no valid GPS fix since", devClock} {
		if !strings.Contains(alerts, want) {
			t.Errorf("open alerts lack %q:\n%s", want, alerts)
		}
	}
	health := text[pos("Service health"):pos("Quality rules")]
	for _, want := range []string{"postgres", "answered", "spool", "backlog 1200 signals"} {
		if !strings.Contains(health, want) {
			t.Errorf("service health lacks %q:\n%s", want, health)
		}
	}
	rules := text[pos("Quality rules"):]
	for _, want := range []string{"gps.zero_island 1.0.0 validity active", "obd.plausibility 0.3.0 consistency failing", "deadline of 2s exceeded"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}
	if !strings.Contains(text, "6 devices scored") {
		t.Errorf("summary lacks the device count: %s", text[:min(len(text), 300)])
	}

	// A screenshot for review.
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	chromium(t, "--screenshot="+shot, "--window-size=1280,1800", "--virtual-time-budget=3000", ts.URL+"/dashboard")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 20000 {
		t.Fatalf("screenshot is not a plausible PNG (%d bytes)", len(png))
	}
	t.Logf("dashboard screenshot: %s", shot)
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if dir := os.Getenv("FLEETCORE_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
