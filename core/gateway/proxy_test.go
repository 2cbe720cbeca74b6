package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	proxyproto "github.com/pires/go-proxyproto"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins"
)

// dialProxied opens a connection to addr and writes a PROXY v2 header
// saying it comes from device (ip:port).
func dialProxied(t *testing.T, addr, device string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, r := dial(t, addr)
	src, err := net.ResolveTCPAddr("tcp", device)
	if err != nil {
		t.Fatal(err)
	}
	h := proxyproto.HeaderProxyFromAddrs(2, src, c.RemoteAddr())
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	return c, r
}

func TestProxyProtocolUsesTheDevicesAddress(t *testing.T) {
	logs := &syncWriter{w: &strings.Builder{}}
	rj := &rejects{}
	g := gateway.New(hclog.New(&hclog.LoggerOptions{Output: logs}), &gatedIngest{}, rj.add)
	a, err := g.Listen(gateway.ListenerConfig{Name: "lb", Transport: plugins.TCP, Address: "127.0.0.1:0",
		MaxConnectionsPerIP: 1, FrameTimeout: 300 * time.Millisecond, ProxyProtocol: true}, lineDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	addr := a.String()
	g.Serve()
	t.Cleanup(func() { g.Shutdown(context.Background()) })

	// Every connection comes from 127.0.0.1 (the balancer); the header
	// names the device. Quarantine rows carry the device's address.
	c1, r1 := dialProxied(t, addr, "198.51.100.7:4100")
	if got := roundTrip(t, c1, r1, "d1,1\n"); got != "ok 1\n" {
		t.Fatalf("proxied frame: %q", got)
	}
	// The per-IP cap counts devices, not the balancer: a second device
	// through the same balancer is served, a second connection of the
	// first device is refused.
	c2, r2 := dialProxied(t, addr, "198.51.100.8:4100")
	if got := roundTrip(t, c2, r2, "d2,1\n"); got != "ok 1\n" {
		t.Fatalf("second device through the balancer: %q", got)
	}
	c3, r3 := dialProxied(t, addr, "198.51.100.7:4101")
	c3.Write([]byte("d1,2\n"))
	if got := readToEOF(t, r3, c3); got != "" {
		t.Fatalf("second connection of one device got %q, want refused over max_connections_per_ip", got)
	}
	if n := g.Stats().RefusedBy(gateway.RefusedIPCap); n != 1 {
		t.Fatalf("refused by ip_cap = %d, want 1", n)
	}
	c2.Write([]byte("bad\n"))
	readToEOF(t, r2, c2)
	if rs := rj.all(); len(rs) != 1 || !strings.HasPrefix(rs[0].RemoteAddr, "198.51.100.8:") {
		t.Fatalf("quarantined %+v, want one row from 198.51.100.8", rs)
	}

	// Without a header (a device that reached the port directly) the
	// connection is closed before any frame is read, with the reason logged.
	raw, rr := dial(t, addr)
	raw.Write([]byte("d9,1\n"))
	if got := readToEOF(t, rr, raw); got != "" {
		t.Fatalf("connection without a PROXY header got %q, want closed", got)
	}
	// Nor does one that sends nothing at all hold its slot past frame_timeout.
	silent, sr := dial(t, addr)
	if got := readToEOF(t, sr, silent); got != "" {
		t.Fatalf("silent connection got %q", got)
	}
	if n := g.Stats().ProxyRefused.Load(); n != 2 {
		t.Fatalf("ProxyRefused = %d, want 2", n)
	}
	if n := len(rj.all()); n != 1 {
		t.Fatalf("%d quarantine rows, want still 1 (a refused connection read no frame)", n)
	}
	if !strings.Contains(logs.String(), "no valid PROXY protocol header") || !strings.Contains(logs.String(), "did not start with a PROXY header") {
		t.Fatalf("log does not say why the connection was closed:\n%s", logs.String())
	}
	// A LOCAL header (a balancer's health check) is served with the
	// balancer's own address.
	lc, lr := dial(t, addr)
	(&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}).WriteTo(lc) //nolint:errcheck // the round trip shows
	if got := roundTrip(t, lc, lr, "d5,1\n"); got != "ok 1\n" {
		t.Fatalf("LOCAL header: %q", got)
	}
}

func TestIntegrationProxyProtocolBehindHAProxy(t *testing.T) {
	testenv.Integration(t)
	rj := &rejects{}
	g := gateway.New(hclog.NewNullLogger(), &gatedIngest{}, rj.add)
	var backends []string
	for i := range 2 {
		a, err := g.Listen(gateway.ListenerConfig{Name: fmt.Sprintf("lb%d", i), Transport: plugins.TCP, Address: "127.0.0.1:0",
			MaxConnectionsPerIP: 1, ProxyProtocol: true}, lineDecoder{})
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, a.String())
	}
	g.Serve()
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	lb := testenv.StartHAProxy(t, backends...)

	// Devices on distinct loopback addresses, all through one balancer
	// whose connections to fleetcore come from 127.0.0.1.
	for i := range 4 {
		ip := net.IPv4(127, 0, 3, byte(10+i))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", lb.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := roundTrip(t, c, bufio.NewReader(c), fmt.Sprintf("d%d,1\n", i)); got != "ok 1\n" {
			t.Fatalf("device %s through haproxy: %q", ip, got)
		}
		if i == 3 {
			c.Write([]byte("bad\n"))
			readToEOF(t, c, c)
		}
	}
	rs := rj.all()
	if len(rs) != 1 || !strings.HasPrefix(rs[0].RemoteAddr, "127.0.3.13:") {
		t.Fatalf("quarantined %+v, want one row from the device 127.0.3.13", rs)
	}
	// The health checks (LOCAL headers) are not refused.
	if n := g.Stats().ProxyRefused.Load(); n != 0 {
		t.Fatalf("%d connections from haproxy refused", n)
	}
}

// syncWriter serialises writes to w (the log is written from connection
// goroutines and read by the test).
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
