package node_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/jsonl"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// TestIntegrationNodeMetricFamilies starts a node with every stage on
// (Postgres, RabbitMQ failover, spool, quarantine, a rule, API), sends it
// a good and a bad frame, runs the rule, and compares what /metrics
// exposes — each family's HELP and TYPE line and the label names of its
// samples, go_* and process_* included — with testdata/metrics.golden, so
// that moving metrics between packages loses or renames nothing (the
// deploy/ dashboard and rules are checked against the same golden).
// Values are not compared (they depend on timing). The exposition must
// also pass `promtool check metrics` (Prometheus' own lint: base units,
// _total on counters, help on every family).
func TestIntegrationNodeMetricFamilies(t *testing.T) {
	testenv.Integration(t)
	promtool := testenv.Promtool(t)
	rulesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rulesDir, "gps.range.wasm"), wasmfixture.Rule(t, "gps.range"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := testenv.Database(t)
	vhost := testenv.VHost(t)
	cfg, err := config.Parse("node.hcl", []byte(fmt.Sprintf(`
database { url = %q }
amqp { url = %q }
ingest { batch_max_age = "2ms" }
api { address = "127.0.0.1:0" }
rules {
  dir      = %q
  cache_dir = %q
}
spool { dir = %q }
listener "jsonl" { address = "127.0.0.1:0" }
`, db, vhost, rulesDir, t.TempDir(), t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL, cfg.AMQP.URL = db, vhost // ignore the environment
	reg := plugins.NewRegistry()
	reg.Register(jsonl.Decoder{})
	n, ctx := testnode.Run(t, cfg, reg, hclog.NewNullLogger())
	if err := n.Organizer().RunNow(ctx, node.JobHealth); err != nil { // fleetcore_service_check_state
		t.Fatal(err)
	}

	c, err := net.Dial("tcp", n.Addr("jsonl").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, `{"device_id":"metrics-1","ts":"2026-12-01T10:00:00Z","lat":1,"lon":2}`+"\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, "ok") {
		t.Fatalf("ack: %q %v", line, err)
	}
	if _, err := io.WriteString(c, "not json\n"); err != nil {
		t.Fatal(err)
	}

	if err := n.Organizer().RunNow(ctx, n.RuleRunner().JobName("gps.range")); err != nil {
		t.Fatal(err)
	}

	// The rejected frame shows in the protocol counters once the gateway
	// has read it.
	var got []string
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		body = scrape(t, "http://"+n.APIAddr().String()+"/metrics")
		got = families(body)
		if strings.Contains(body, `fleetcore_protocol_rejected_total{protocol="jsonl"} 1`) || time.Now().After(deadline) {
			break
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	gotSet := map[string]bool{}
	for _, g := range got {
		gotSet[g] = true
	}
	wantSet := map[string]bool{}
	for _, w := range want {
		wantSet[w] = true
		if !gotSet[w] {
			t.Errorf("/metrics lost: %s", w)
		}
	}
	for _, g := range got {
		if !wantSet[g] {
			t.Errorf("/metrics gained (add it to the golden with -update if meant): %s", g)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// families reduces an exposition to its sorted, distinct HELP and TYPE
// lines and "name{label,names}" of its samples.
func families(body string) []string {
	set := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			set[line] = true
			continue
		}
		series, _, _ := strings.Cut(line, " ")
		name, rest, hasLabels := strings.Cut(series, "{")
		var names []string
		if hasLabels {
			for _, kv := range splitLabels(strings.TrimSuffix(rest, "}")) {
				k, _, _ := strings.Cut(kv, "=")
				names = append(names, k)
			}
		}
		set[name+"{"+strings.Join(names, ",")+"}"] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// splitLabels splits k1="v1",k2="v2" at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
