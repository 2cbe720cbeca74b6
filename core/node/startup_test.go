package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/acme"
)

// getStatus GETs url and returns the status code and the JSON body's
// "status" field.
func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body.Status
}

// logged reports whether one line of log holds every part.
func logged(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestIntegrationAPIBeforeDecodersCompile starts a node whose drop-in
// decoders take long to compile (the first scan of the folder held back):
// the node is Ready, /healthz is 200 and /readyz 503 "decoders compiling"
// while it runs, and a device of the decoder's listener is closed without
// an ack. Once the scan is done the device is served; a listener whose
// decoder no file provides is logged as an error and named by /readyz
// (503) until a file declaring it is dropped in, then /readyz is 200.
func TestIntegrationAPIBeforeDecodersCompile(t *testing.T) {
	testenv.Integration(t)
	folder := t.TempDir()
	if err := os.WriteFile(filepath.Join(folder, "acme.wasm"), acmeVariant(t, version("1.0.0"), false), 0o644); err != nil {
		t.Fatal(err)
	}
	ghost := acmeVariant(t, func(m map[string]any) { version("1.0.0")(m); m["name"] = "ghost_dec" }, false)
	cfg, err := config.Parse("node.hcl", []byte(`
rules { enabled = false }
api { address = "127.0.0.1:0" }
spool { enabled = false }
decoders {
  dir       = "`+folder+`"
  cache_dir = "`+filepath.Join(t.TempDir(), "cache")+`"
  poll      = "100ms"
}
listener "acme_tcp" {
  protocol = "acme_wat"
  address  = "127.0.0.1:0"
}
listener "ghost" {
  protocol = "ghost_dec"
  address  = "127.0.0.1:0"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = testenv.Database(t)
	logs := &logBuffer{}
	n := node.New(cfg, plugins.NewRegistry(), hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node log:\n%s", logs.String())
		}
	})
	release := make(chan struct{})
	gated := make(chan struct{})
	node.SetDecoderScanGate(n, func(ctx context.Context) {
		close(gated)
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	testnode.StartServing(t, n)
	api := "http://" + n.APIAddr().String()
	select {
	case <-gated:
	case <-time.After(30 * time.Second):
		t.Fatal("the decoder folder's first scan did not start")
	}

	if code, status := getStatus(t, api+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while the decoders compile: %d %q, want 200", code, status)
	}
	if code, status := getStatus(t, api+"/readyz"); code != http.StatusServiceUnavailable || status != node.DecodersCompiling {
		t.Fatalf("/readyz while the decoders compile: %d %q, want 503 %q", code, status, node.DecodersCompiling)
	}
	select {
	case <-n.DecodersLive():
		t.Fatal("DecodersLive closed before the first scan ran")
	default:
	}
	early := dialACME(t, "tcp", n.Addr("acme_tcp"), "356000000000161")
	early.closed(acme.AppendFrame(nil, acme.TypeHello, []byte(early.imei))) // no version to decode it yet

	released = true
	close(release)
	select {
	case <-n.DecodersLive():
	case <-time.After(60 * time.Second):
		t.Fatalf("decoders not live 60s after the scan was released; %+v", n.Decoders().Status())
	}
	d := dialACME(t, "tcp", n.Addr("acme_tcp"), "356000000000162")
	if err := d.hello(); err != nil {
		t.Fatalf("hello after the decoders compiled: %v", err)
	}
	if err := d.records(time.Now().Add(-time.Minute).Truncate(time.Second)); err != nil {
		t.Fatalf("records after the decoders compiled: %v", err)
	}
	code, status := getStatus(t, api+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(status, `listener "ghost"`) || !strings.Contains(status, "ghost_dec") ||
		strings.Contains(status, "acme") {
		t.Fatalf("/readyz with a listener whose decoder no file provides: %d %q, want 503 naming listener ghost only", code, status)
	}
	if !logged(logs.String(), "[ERROR] decoders: listener names a drop-in decoder with no version in service", "listener=ghost ") {
		t.Fatal("no error logged for the listener whose decoder no file provides")
	}

	tmp := filepath.Join(folder, ".ghost.wasm.tmp")
	if err := os.WriteFile(tmp, ghost, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(folder, "ghost.wasm")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, status = getStatus(t, api+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %q 30s after ghost.wasm was dropped in, want 200", code, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIntegrationDecoderRefusesListenerAfterCompile: listeners whose
// drop-in decoder refuses their options or transport are refused by
// validate (node.Check compiles the folder), while serve, which compiles
// it after opening the listeners, logs each as an error once the compile
// is done and /readyz stays 503 naming them (and not the listener the
// decoder serves).
func TestIntegrationDecoderRefusesListenerAfterCompile(t *testing.T) {
	testenv.Integration(t)
	folder := t.TempDir()
	tcpOnly := acmeVariant(t, func(m map[string]any) { m["version"] = "1.0.0"; m["transports"] = []string{"tcp"} }, false)
	if err := os.WriteFile(filepath.Join(folder, "acme.wasm"), tcpOnly, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("node.hcl", []byte(`
rules { enabled = false }
api { address = "127.0.0.1:0" }
spool { enabled = false }
decoders {
  dir       = "`+folder+`"
  cache_dir = "`+filepath.Join(t.TempDir(), "cache")+`"
}
listener "acme_tcp" {
  protocol = "acme_wat"
  address  = "127.0.0.1:0"
}
listener "acme_bad" {
  protocol = "acme_wat"
  address  = "127.0.0.1:0"
  options  = { nosuch = "1" }
}
listener "acme_udp" {
  protocol  = "acme_wat"
  transport = "udp"
  address   = "127.0.0.1:0"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = testenv.Database(t)
	err = node.Check(cfg, plugins.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), `listener "acme_bad"`) || !strings.Contains(err.Error(), `listener "acme_udp"`) {
		t.Fatalf("validate: %v, want both refused listeners named", err)
	}
	logs := &logBuffer{}
	n, _ := testnode.Run(t, cfg, plugins.NewRegistry(), hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node log:\n%s", logs.String())
		}
	})
	code, status := getStatus(t, "http://"+n.APIAddr().String()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(status, `listener "acme_bad": decoder acme_wat 1.0.0`) ||
		!strings.Contains(status, "refuses the options") || !strings.Contains(status, `listener "acme_udp": decoder acme_wat 1.0.0`) ||
		!strings.Contains(status, "does not take transport udp") || strings.Contains(status, `"acme_tcp"`) {
		t.Fatalf("/readyz %d %q, want 503 naming acme_bad (options) and acme_udp (transport) only", code, status)
	}
	for _, name := range []string{"acme_bad", "acme_udp"} {
		if !logged(logs.String(), "[ERROR] decoders: listener refused by its drop-in decoder", "listener="+name+" ") {
			t.Errorf("no error logged for listener %s", name)
		}
	}
	d := dialACME(t, "tcp", n.Addr("acme_tcp"), "356000000000163")
	if err := d.hello(); err != nil {
		t.Fatalf("the listener the decoder takes is not served: %v", err)
	}
}
