package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxy is a private haproxy process (Debian's `haproxy`, installed by
// `make test-tools`) balancing TCP connections over backends with the
// PROXY protocol v2, as deploy/README.md configures it. It stops when the
// test ends.
type HAProxy struct {
	// Addr is the frontend's host:port, where devices connect.
	Addr string
	// Config is the configuration file written for it.
	Config string
	cmd    *exec.Cmd
	done   chan struct{}
}

// HAProxyConfig is the configuration StartHAProxy writes: a TCP frontend
// on frontend, round robin over backends, every server sent the PROXY
// protocol v2 header (send-proxy-v2) and health-checked every 200 ms with
// one (check-send-proxy: a LOCAL header), out after one failed check,
// back after two good ones. A connection whose server refuses it is
// redispatched to another.
func HAProxyConfig(frontend string, backends []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4000

defaults
    mode tcp
    timeout connect 1s
    timeout client 10m
    timeout server 10m
    retries 3
    option redispatch

frontend devices
    bind %s
    default_backend fleetcore

backend fleetcore
    balance roundrobin
    default-server send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 2
`, frontend)
	for i, be := range backends {
		fmt.Fprintf(&b, "    server node%d %s\n", i, be)
	}
	return b.String()
}

// StartHAProxy runs haproxy in front of backends (host:port each) on a
// free port of 127.0.0.1 and waits until the frontend accepts.
func StartHAProxy(t testing.TB, backends ...string) *HAProxy {
	t.Helper()
	Integration(t)
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		missing(t, "haproxy (make test-tools installs it)", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(HAProxyConfig(addr, backends)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects the config: %v\n%s", err, out)
	}
	h := &HAProxy{Addr: addr, Config: cfg, done: make(chan struct{})}
	h.cmd = exec.Command(bin, "-db", "-f", cfg) // -db: foreground, no daemon
	log := &strings.Builder{}
	h.cmd.Stdout, h.cmd.Stderr = log, log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting haproxy: %v", err)
	}
	go func() { h.cmd.Wait(); close(h.done) }() //nolint:errcheck // the exit shows in done
	t.Cleanup(func() {
		h.cmd.Process.Kill() //nolint:errcheck // may have exited
		<-h.done
		if t.Failed() {
			t.Logf("haproxy output:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return h
		}
		select {
		case <-h.done:
			t.Fatalf("haproxy exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not accepting on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
