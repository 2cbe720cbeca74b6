package main

import (
	"bufio"
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
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationIntegrityScoresAndAlerts: two devices send 15 minutes of
// fixes over the real jsonl listener, one healthy and one reporting (0,0);
// after one organizer cycle (rules, then scores) the bad device scores
// lower, and its gps_broken alert is in the API and on the RabbitMQ topic
// exchange.
func TestIntegrationIntegrityScoresAndAlerts(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	vhost := testenv.VHost(t)

	// A consumer of the alert exchange, bound before anything happens.
	conn, err := amqp.Dial(vhost)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("fleetcore.alerts", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare(testenv.Unique("alerts"), false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "gps_broken.*", "fleetcore.alerts", false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	rulesDir, _ := filepath.Abs("../../checks-wasm/build/rules")
	_, statErr := os.Stat(filepath.Join(rulesDir, "gps.zero_island.wasm"))
	withRules := statErr == nil
	src := fmt.Sprintf(`
database { url = %q }
amqp { url = %q }
ingest { batch_max_age = "2ms" }
listener "jsonl" { address = "127.0.0.1:0" }
rules {
  dir = %q
  enabled = %v
}
organizer {
  score_interval  = "1h"
  health_interval = "1h"
}
integrity {
  gps_broken_after  = "5m"
  clock_drift_limit = "1h"
}
api { address = "127.0.0.1:0" }
`, db, vhost, rulesDir, withRules)
	cfg, err := config.Parse("integrity.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL, cfg.AMQP.URL = db, vhost // ignore the environment
	cfg.Spool.Dir = t.TempDir()
	cfg.Rules.CacheDir = testenv.WasmCache(t)
	n, ctx := runTestNode(t, cfg, hclog.Warn)

	const good, bad = "sim-good-0001", "sim-zero-0002"
	start := time.Now().UTC().Add(-16 * time.Minute).Truncate(time.Second)
	send := func(dev string, lat, lon float64, step float64) {
		c, err := net.Dial("tcp", n.Addr("jsonl").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var b strings.Builder
		for i := 0; i <= 30; i++ {
			fmt.Fprintf(&b, `{"device_id":%q,"ts":%q,"lat":%v,"lon":%v,"valid":true,"sats":9,"hdop":0.9,"speed":40}`+"\n",
				dev, start.Add(time.Duration(i)*30*time.Second).Format(time.RFC3339), lat+step*float64(i), lon)
		}
		if _, err := io.WriteString(c, b.String()); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		for i := 1; i <= 31; i++ {
			line, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(line) != fmt.Sprintf(`{"ok": %d}`, i) {
				t.Fatalf("%s: ack %d: %q %v", dev, i, line, err)
			}
		}
	}
	send(good, 54.6872, 25.2797, 0.0005)
	send(bad, 0, 0, 0)

	// One organizer cycle: the zero-island rule (when built), then scores.
	if withRules {
		if err := n.Organizer().RunNow(ctx, n.RuleRunner().JobName("gps.zero_island")); err != nil {
			var jobs []string
			for _, j := range n.Organizer().Status() {
				jobs = append(jobs, j.Name)
			}
			st, _ := json.Marshal(n.Rules().Status())
			t.Fatalf("%v (jobs %v; rules %s)", err, jobs, st)
		}
	}
	if err := n.Organizer().RunNow(ctx, node.JobScore); err != nil {
		t.Fatal(err)
	}
	if err := n.Organizer().RunNow(ctx, node.JobHealth); err != nil {
		t.Logf("health: %v", err)
	}

	api := "http://" + n.APIAddr().String()
	getJSON := func(path string, into any) string {
		t.Helper()
		resp, err := http.Get(api + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return string(body)
	}
	var list struct {
		Devices []struct {
			DeviceID string  `json:"device_id"`
			Score    float64 `json:"score"`
		} `json:"devices"`
	}
	body := getJSON("/api/devices?sort=score", &list)
	t.Logf("GET /api/devices?sort=score\n%s", body)
	if len(list.Devices) != 2 || list.Devices[0].DeviceID != bad || list.Devices[1].DeviceID != good ||
		!(list.Devices[0].Score < list.Devices[1].Score) {
		t.Fatalf("devices %+v: want %s scoring below %s", list.Devices, bad, good)
	}
	if list.Devices[0].Score > 65 || list.Devices[1].Score < 90 {
		t.Fatalf("scores %+v: the (0,0) device should lose the validity points (35), the healthy one next to nothing", list.Devices)
	}
	var detail struct {
		OpenAlerts []struct {
			Kind   string `json:"kind"`
			Reason string `json:"reason"`
		} `json:"open_alerts"`
		Reasons []struct {
			Check string `json:"check"`
			Text  string `json:"text"`
		} `json:"reasons"`
	}
	body = getJSON("/api/devices/"+bad, &detail)
	t.Logf("GET /api/devices/%s\n%s", bad, body)
	found := false
	for _, a := range detail.OpenAlerts {
		found = found || a.Kind == "gps_broken"
	}
	if !found {
		t.Fatalf("no open gps_broken alert for %s", bad)
	}
	checks := map[string]bool{}
	for _, r := range detail.Reasons {
		checks[r.Check] = true
	}
	if !checks["builtin.gps_fix"] || (withRules && !checks["gps.zero_island"]) {
		t.Fatalf("reasons %+v (rules built: %v)", detail.Reasons, withRules)
	}
	var alerts struct {
		Alerts []struct {
			DeviceID string `json:"device_id"`
			Kind     string `json:"kind"`
		} `json:"alerts"`
	}
	getJSON("/api/alerts?state=open", &alerts)
	for _, a := range alerts.Alerts {
		if a.DeviceID == good {
			t.Fatalf("the healthy device has an alert: %+v", a)
		}
	}

	select {
	case d := <-deliveries:
		var e struct {
			DeviceID string `json:"device_id"`
			Kind     string `json:"kind"`
			State    string `json:"state"`
		}
		if err := json.Unmarshal(d.Body, &e); err != nil {
			t.Fatal(err)
		}
		if d.RoutingKey != "gps_broken."+bad || e.DeviceID != bad || e.State != "open" {
			t.Fatalf("alert message %s: %s", d.RoutingKey, d.Body)
		}
		t.Logf("alert on the exchange, key %s: %s", d.RoutingKey, d.Body)
	case <-time.After(30 * time.Second):
		t.Fatal("no gps_broken alert on the exchange")
	}
}
