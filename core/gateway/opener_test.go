package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/plugins"
)

// openerDecoder is lineDecoder behind gateway.SessionOpener: it refuses
// sessions while down is set, and counts the sessions it made and the
// ones the gateway closed.
type openerDecoder struct {
	lineDecoder
	down           atomic.Bool
	opened, closed atomic.Int64
}

var _ gateway.SessionOpener = (*openerDecoder)(nil)

func (d *openerDecoder) OpenSession(cfg plugins.SessionConfig) (plugins.Session, error) {
	if d.down.Load() {
		return nil, errors.New("no version loaded")
	}
	d.opened.Add(1)
	return &closingSession{lineSession: lineSession{max: cfg.MaxFrame}, d: d}, nil
}

type closingSession struct {
	lineSession
	d *openerDecoder
}

func (s *closingSession) Close() { s.d.closed.Add(1) }

func listenOpener(t *testing.T, tr plugins.Transport, d *openerDecoder) (*gateway.Gateway, net.Addr, *rejects) {
	t.Helper()
	rj := &rejects{}
	g := gateway.New(hclog.NewNullLogger(), &gatedIngest{}, rj.add)
	addr, err := g.Listen(gateway.ListenerConfig{Name: "line", Transport: tr, Address: "127.0.0.1:0"}, d)
	if err != nil {
		t.Fatal(err)
	}
	g.Serve()
	t.Cleanup(func() { _ = g.Shutdown(t.Context()) })
	return g, addr, rj
}

// A decoder that cannot serve has its TCP connections closed at once,
// counted and not quarantined; once it can, connections are served and
// their sessions closed when the connection ends.
func TestSessionOpenerTCP(t *testing.T) {
	d := &openerDecoder{}
	d.down.Store(true)
	g, addr, rj := listenOpener(t, plugins.TCP, d)

	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("dev1,1\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	// Closed unread: EOF, or a reset when the written bytes were still
	// unread in the server's buffer.
	if n, err := c.Read(make([]byte, 16)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on a connection the decoder cannot serve: %d bytes, %v; want it closed", n, err)
	}
	c.Close()
	if got := g.Stats().Unavailable.Load(); got != 1 {
		t.Errorf("Unavailable = %d, want 1", got)
	}
	rj.mu.Lock()
	if len(rj.r) != 0 {
		t.Errorf("quarantined %d frames of an unavailable decoder, want 0", len(rj.r))
	}
	rj.mu.Unlock()

	d.down.Store(false)
	c, err = net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("dev1,2\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok 2\n" {
		t.Fatalf("ack = %q, %v; want \"ok 2\\n\"", line, err)
	}
	c.Close()
	if err := g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if o, cl := d.opened.Load(), d.closed.Load(); o != 1 || cl != 1 {
		t.Errorf("sessions opened %d, closed %d; want 1 and 1", o, cl)
	}
}

// UDP: a datagram the decoder cannot serve is dropped (no ack, nothing
// quarantined, no session kept); the listener's sessions are closed when
// it stops.
func TestSessionOpenerUDP(t *testing.T) {
	d := &openerDecoder{}
	d.down.Store(true)
	g, addr, rj := listenOpener(t, plugins.UDP, d)
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("dev1,1\n")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); g.Stats().Unavailable.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the datagram was not counted as unavailable")
		}
		time.Sleep(time.Millisecond) // polling the counter the read loop sets
	}
	d.down.Store(false)
	if _, err := c.Write([]byte("dev1,2\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ok 2\n" {
		t.Fatalf("ack = %q, %v; want the second datagram's", buf[:n], err)
	}
	rj.mu.Lock()
	if len(rj.r) != 0 {
		t.Errorf("quarantined %d datagrams, want 0", len(rj.r))
	}
	rj.mu.Unlock()
	if err := g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if o, cl := d.opened.Load(), d.closed.Load(); o != 1 || cl != 1 {
		t.Errorf("sessions opened %d, closed %d; want 1 and 1", o, cl)
	}
}
