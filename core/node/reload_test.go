package node_test

import (
	"bufio"
	"net"
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
