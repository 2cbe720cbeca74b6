package node_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/jsonl"
)

const reloadBase = `
log_level = "info"
rules { enabled = false }
api { address = "127.0.0.1:0" }
spool { enabled = false }
integrity { enter_below = 60 }
listener "jsonl" {
  address       = "127.0.0.1:0"
  allow_devices = [%s]
}
`

// TestIntegrationReloadAppliesLiveKeys reloads a running node with an
// added allow-list entry, another log level, other integrity thresholds
// and another API address: the first three apply at once (the added
// device is served on its next connection, the log level filters the
// next lines), the address is reported as needing a restart, and a config
// that does not validate changes nothing.
func TestIntegrationReloadAppliesLiveKeys(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	parse := func(src string) *config.Config {
		t.Helper()
		c, err := config.Parse("node.hcl", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		c.Database.URL = db
		return c
	}
	cfg := parse(strings.Replace(reloadBase, "%s", `"dev-a"`, 1))
	reg := plugins.NewRegistry()
	reg.Register(jsonl.Decoder{})
	var logs logBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logs})
	n, _ := testnode.Run(t, cfg, reg, log)
	addr := n.Addr("jsonl").String()
	reply := func(dev string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(`{"device_id":"` + dev + `","ts":"2026-12-01T10:00:00Z","lat":1,"lon":2}` + "\n")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := reply("dev-b"); strings.Contains(got, `"ok"`) {
		t.Fatalf("dev-b is not on the allow-list yet, got %q", got)
	}
	if got := reply("dev-a"); !strings.Contains(got, `"ok"`) {
		t.Fatalf("dev-a is on the allow-list, got %q", got)
	}

	bad, err := config.ParseUnvalidated("node.hcl", []byte(strings.Replace(reloadBase, "%s", `"dev-a", "dev-b"`, 1)+`organizer { score_interval = "soon" }`))
	if err != nil {
		t.Fatal(err)
	}
	bad.Database.URL = db
	if _, _, err := n.Reload(bad); err == nil {
		t.Fatal("a config that does not validate was applied")
	}
	if got := reply("dev-b"); strings.Contains(got, `"ok"`) {
		t.Fatalf("a refused reload changed the allow-list: %q", got)
	}

	next := strings.Replace(reloadBase, "%s", `"dev-a", "dev-b"`, 1)
	next = strings.Replace(next, `log_level = "info"`, `log_level = "warn"`, 1)
	next = strings.Replace(next, "enter_below = 60", "enter_below = 50", 1)
	next = strings.Replace(next, `api { address = "127.0.0.1:0" }`, `api { address = "127.0.0.1:1" }`, 1)
	applied, restart, err := n.Reload(parse(next))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"log_level", "integrity", `listener "jsonl" allow_devices`} {
		if !slices.Contains(applied, k) {
			t.Errorf("applied %q, want %s among them", applied, k)
		}
	}
	if !slices.Equal(restart, []string{"api.address"}) {
		t.Errorf("restart needed for %q, want only api.address", restart)
	}
	out := logs.String()
	for _, want := range []string{"log level changed", "allow-list changed", `added=["dev-b"]`, "need a restart", "api.address"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if got := reply("dev-b"); !strings.Contains(got, `"ok"`) {
		t.Fatalf("dev-b was added to the allow-list, got %q", got)
	}
	if log.IsInfo() {
		t.Error("log level still info after reloading with warn")
	}
}

const reloadLive = `
log_level = "info"
rules {
  dir      = "%DIR%"
  interval = "2s"
}
api {
  address    = "127.0.0.1:0"
  read_token = "%TOKEN%"
}
spool { enabled = false }
listener "jsonl" {
  address                = "127.0.0.1:0"
  read_timeout           = "10m"
  max_connections_per_ip = 1000
}
`

// TestIntegrationReloadRulesListenerLimitsTokens reloads a running node
// with another rules interval and mode, another read token, a shorter
// read timeout and a per-IP cap of 1 on its TCP listener, and another
// rules concurrency: all but the concurrency apply at once (the old token
// is refused and the new one served, an idle connection is closed after
// the new timeout, a second connection from the same IP is refused, the
// rules' job is the new interval's), the concurrency is reported as
// needing a restart. The log names the changed token keys, never a token.
func TestIntegrationReloadRulesListenerLimitsTokens(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	rulesDir, cfgFile := t.TempDir(), filepath.Join(t.TempDir(), "node.hcl")
	const oldToken, newToken = "old-read-token-0123456789abcdef", "new-read-token-0123456789abcdef"
	parse := func(src string) *config.Config {
		t.Helper()
		src = strings.ReplaceAll(src, "%DIR%", rulesDir)
		c, err := config.Parse(cfgFile, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		c.Database.URL = db
		return c
	}
	base := strings.Replace(reloadLive, "%TOKEN%", oldToken, 1)
	reg := plugins.NewRegistry()
	reg.Register(jsonl.Decoder{})
	var logs logBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logs})
	n, _ := testnode.Run(t, parse(base), reg, log)
	api := "http://" + n.APIAddr().String()
	status := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, api+"/api/health", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(oldToken); got != http.StatusOK {
		t.Fatalf("old token before the reload: %d", got)
	}
	if got := n.RuleRunner().JobName("any.rule"); got != "rules@2s" {
		t.Fatalf("rule job %s before the reload", got)
	}

	next := strings.Replace(base, oldToken, newToken, 1)
	next = strings.Replace(next, `interval = "2s"`, `interval = "5s"
  mode     = { "any.rule" = "shadow" }
  concurrency = 2`, 1)
	next = strings.Replace(next, `read_timeout           = "10m"`, `read_timeout           = "1s"`, 1)
	next = strings.Replace(next, "max_connections_per_ip = 1000", "max_connections_per_ip = 1", 1)
	applied, restart, err := n.Reload(parse(next))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"api tokens", "rules.interval", "rules.mode", `listener "jsonl" read_timeout`, `listener "jsonl" max_connections_per_ip`} {
		if !slices.Contains(applied, k) {
			t.Errorf("applied %q, want %s among them", applied, k)
		}
	}
	if !slices.Equal(restart, []string{"rules.concurrency"}) {
		t.Errorf("restart needed for %q, want only rules.concurrency", restart)
	}
	if got := status(oldToken); got != http.StatusUnauthorized {
		t.Errorf("old token after the reload: %d, want 401", got)
	}
	if got := status(newToken); got != http.StatusOK {
		t.Errorf("new token after the reload: %d, want 200", got)
	}
	if got := n.RuleRunner().JobName("any.rule"); got != "rules@5s" {
		t.Errorf("rule job %s after the reload, want rules@5s", got)
	}
	for _, w := range []string{"api tokens changed", "rules settings changed", "listener limits changed", "need a restart", "rules.concurrency"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q", w)
		}
	}
	if strings.Contains(logs.String(), newToken) || strings.Contains(logs.String(), oldToken) {
		t.Error("the log shows a token")
	}

	// One idle connection: closed by the 1 s read timeout; while it is
	// open, a second one from the same IP is refused (closed at once).
	addr := n.Addr("jsonl").String()
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("a second connection over the per-IP cap of 1: read %v, want EOF (refused)", err)
	}
	start := time.Now()
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := first.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: read %v after %v, want EOF from the 1s read timeout", err, time.Since(start))
	}
}
