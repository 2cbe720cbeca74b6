package plugintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// memTier is a durability tier that keeps batches in memory: every batch
// is durable at once.
type memTier struct {
	mu   sync.Mutex
	sigs int
}

func (m *memTier) Name() string { return "direct" }

func (m *memTier) Write(_ context.Context, b []signal.Signal) error {
	m.mu.Lock()
	m.sigs += len(b)
	m.mu.Unlock()
	return nil
}

type rejections struct {
	mu sync.Mutex
	r  []gateway.Rejection
}

func (r *rejections) add(_ context.Context, x gateway.Rejection) {
	r.mu.Lock()
	r.r = append(r.r, x)
	r.mu.Unlock()
}

func (r *rejections) all() []gateway.Rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gateway.Rejection(nil), r.r...)
}

// waitFor polls cond every millisecond for up to 10 s.
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// panicIsolation runs dec in a real gateway listening on 127.0.0.1:0 with
// a submitter that makes every batch durable at once. It opens a good and
// a bad connection (TCP) or source (UDP), sends bad on the bad one, whose
// decoder must panic on one of those frames, then good on the good one;
// and checks that the panicking frame is quarantined with the panic as
// reason, that the bad connection is closed, that the panic is counted,
// and that every good frame is acked on the connection opened before the
// panic. setBad is called with the bad connection's local address before
// any byte is sent on it.
func panicIsolation(t *testing.T, dec plugins.Decoder, tr plugins.Transport, maxFrame int, opts map[string]string, good, bad [][]byte, setBad func(string)) {
	t.Helper()
	tier := &memTier{}
	in := ingest.New(ingest.Config{MaxSignals: 64, MaxAge: time.Millisecond, Writers: 1}, hclog.NewNullLogger(), tier)
	in.Start()
	defer in.Close(context.Background())
	rj := &rejections{}
	g := gateway.New(hclog.NewNullLogger(), in, rj.add)
	addr, err := g.Listen(gateway.ListenerConfig{
		Name: "conformance", Transport: tr, Address: "127.0.0.1:0", MaxFrame: maxFrame, Options: decodedOptions(dec, opts),
	}, dec)
	if err != nil {
		t.Fatalf("starting a gateway: %v", err)
	}
	g.Serve()
	defer g.Shutdown(context.Background())
	network := "tcp"
	if tr == plugins.UDP {
		network = "udp"
	}
	goodConn, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer goodConn.Close()
	badConn, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer badConn.Close()
	setBad(badConn.LocalAddr().String())
	go drain(goodConn) // the acks; a closed connection is seen by the counters below

	send(t, badConn, tr, bad)
	if !waitFor(func() bool { return len(rj.all()) > 0 }) {
		t.Fatal("the frame that made the decoder panic was not quarantined")
	}
	r := rj.all()[0]
	if !strings.Contains(r.Reason, plugins.ErrPanic.Error()) {
		t.Fatalf("quarantined with reason %q, want the panic (%q)", r.Reason, plugins.ErrPanic)
	}
	if len(r.Raw) == 0 {
		t.Fatal("the panicking frame was quarantined without its bytes")
	}
	if tr == plugins.TCP {
		badConn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, badConn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the panicking connection was not closed: %v", err)
		}
	}
	if n := g.Stats().Protocol(dec.Info().Name).Panics.Load(); n != 1 {
		t.Fatalf("decoder panics counted %d, want 1", n)
	}
	if tr == plugins.TCP && !waitFor(func() bool { return g.Stats().Open.Load() == 1 }) {
		t.Fatalf("%d connections open, want the good one only", g.Stats().Open.Load())
	}
	acked := g.Stats().Acked.Load()
	send(t, goodConn, tr, good)
	if !waitFor(func() bool { return g.Stats().Acked.Load() >= acked+uint64(len(good)) }) {
		t.Fatalf("%d of the good connection's %d frames acked after the panic", g.Stats().Acked.Load()-acked, len(good))
	}
	if tr == plugins.TCP && g.Stats().Open.Load() != 1 {
		t.Fatal("the good connection was closed")
	}
	if len(rj.all()) != 1 {
		t.Fatalf("rejections %+v, want only the panicking frame", rj.all())
	}
}

func send(t *testing.T, c net.Conn, tr plugins.Transport, frames [][]byte) {
	t.Helper()
	if tr == plugins.TCP {
		if _, err := c.Write(bytes.Join(frames, nil)); err != nil {
			t.Fatalf("sending frames: %v", err)
		}
		return
	}
	for i, f := range frames {
		if _, err := c.Write(f); err != nil {
			t.Fatalf("sending datagram %d: %v", i, err)
		}
	}
}

func drain(c net.Conn) { io.Copy(io.Discard, c) } //nolint:errcheck // until closed

// panicking wraps a decoder: the sessions of one remote address panic in
// Decode on their last frame (index last), those of the others decode as
// the wrapped decoder does.
type panicking struct {
	plugins.Decoder
	bad  atomic.Value // string: the remote address whose sessions panic
	last int
}

func (p *panicking) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return &panickingSession{Session: p.Decoder.NewSession(cfg), d: p, remote: cfg.RemoteAddr}
}

type panickingSession struct {
	plugins.Session
	d       *panicking
	remote  net.Addr
	decoded int
}

func (s *panickingSession) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	s.decoded++
	if bad, _ := s.d.bad.Load().(string); s.remote != nil && s.remote.String() == bad && s.decoded == s.d.last+1 {
		panic(fmt.Sprintf("plugintest: injected panic on frame %d", s.d.last))
	}
	return s.Session.Decode(frame, recv)
}

// gatewayPanic is the suite's check of the gateway's panic isolation with
// this decoder: its sessions (wrapped) panic on the last valid frame on
// one connection while another connection sends the same frames.
func (c *suite) gatewayPanic(t *testing.T) {
	w := &panicking{Decoder: c.dec, last: len(c.cs.Frames) - 1}
	panicIsolation(t, w, c.cs.Transport, c.cs.MaxFrame, c.cs.Options, c.cs.Frames, c.cs.Frames,
		func(addr string) { w.bad.Store(addr) })
}
