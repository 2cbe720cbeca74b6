package node_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

// deployDir holds the Grafana dashboard and the Prometheus rules.
var deployDir = filepath.Join("..", "..", "deploy")

// TestPromtoolRules checks the alerting and legacy recording rules with
// `promtool check rules` and runs their unit tests with `promtool test
// rules`.
func TestPromtoolRules(t *testing.T) {
	promtool := testenv.Promtool(t)
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml", "legacy.yml"},
		{"test", "rules", "alerts_test.yml", "legacy_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var metricName = regexp.MustCompile(`\b(?:fleetcore|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)

// exported is every series name a node exposes, from the families of
// testdata/metrics.golden (TestIntegrationNodeMetricFamilies), with the
// _bucket, _sum and _count series of histograms and summaries.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metrics.golden"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		out[f[2]] = true
		if f[3] == "histogram" || f[3] == "summary" {
			out[f[2]+"_sum"], out[f[2]+"_count"] = true, true
			if f[3] == "histogram" {
				out[f[2]+"_bucket"] = true
			}
		}
	}
	if len(out) < 50 {
		t.Fatalf("only %d families in the golden", len(out))
	}
	return out
}

// TestDeployReferencesExportedMetrics: every metric the dashboard, the
// alerting rules and the inputs of the legacy recording rules name is one
// a node exports (a renamed metric cannot leave a dead panel or an alert
// that never fires), and the legacy rules record only names a node no
// longer exports.
func TestDeployReferencesExportedMetrics(t *testing.T) {
	have := exported(t)
	check := func(file string, names []string) {
		t.Helper()
		if len(names) == 0 {
			t.Errorf("%s names no metric", file)
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s names %s, which a node does not export", file, n)
			}
		}
	}

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "fleetcore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("fleetcore.json: %v", err)
	}
	var names []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names = append(names, metricName.FindAllString(q.Expr, -1)...)
		}
	}
	for _, v := range dash.Templating.List {
		names = append(names, metricName.FindAllString(v.Definition, -1)...)
	}
	check("fleetcore.json", names)

	alerts, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	check("alerts.yml", metricName.FindAllString(string(alerts), -1)) // comments and annotations too

	legacy, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "legacy.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var inputs, recorded []string
	for _, line := range strings.Split(string(legacy), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#"), strings.HasPrefix(line, "- name:"):
		case strings.HasPrefix(line, "- record:"):
			recorded = append(recorded, strings.TrimSpace(strings.TrimPrefix(line, "- record:")))
		default:
			inputs = append(inputs, metricName.FindAllString(line, -1)...)
		}
	}
	check("legacy.yml", inputs)
	sort.Strings(recorded)
	for _, r := range recorded {
		if have[r] {
			t.Errorf("legacy.yml records %s, which a node exports itself", r)
		}
	}
	if len(recorded) < 10 {
		t.Errorf("legacy.yml records only %v", recorded)
	}
}
