package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// lineDecoder: frames are "DEV,SEQ\n"; the ack is "ok SEQ\n"; "bad" lines
// are rejected.
type lineDecoder struct{}

func (lineDecoder) Info() plugins.Info {
	return plugins.Info{Name: "line", Transports: []plugins.Transport{plugins.TCP, plugins.UDP}}
}
func (lineDecoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return &lineSession{max: cfg.MaxFrame}
}

type lineSession struct {
	dev string
	max int // MaxFrame
}

func (s *lineSession) Frame(b []byte) (int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > s.max {
			return 0, plugins.ErrTooLarge
		}
		return 0, nil
	}
	return i + 1, nil
}

func (s *lineSession) Decode(f []byte, recv time.Time) (plugins.Result, error) {
	line := strings.TrimSpace(string(f))
	dev, seq, ok := strings.Cut(line, ",")
	if !ok {
		return plugins.Result{}, fmt.Errorf("%w: %q", plugins.ErrMalformed, line)
	}
	s.dev = dev
	sig := signal.New(dev, time.Unix(0, 0))
	sig.SetAttr("seq", seq)
	return plugins.Result{Signals: []signal.Signal{sig}, Ack: []byte("ok " + seq + "\n")}, nil
}

func (s *lineSession) DeviceID() string { return s.dev }

func (s *lineSession) Reject(err error) []byte { return []byte("error " + err.Error() + "\n") }

// gatedIngest resolves tickets when release is closed (or at once).
type gatedIngest struct {
	mu      sync.Mutex
	release chan struct{}
	fail    bool
	got     []signal.Signal
}

func (g *gatedIngest) Submit(ctx context.Context, sigs []signal.Signal) (*ingest.Ticket, error) {
	tier := &fnTier{fn: func() error {
		if g.release != nil {
			<-g.release
		}
		if g.fail {
			return errors.New("down")
		}
		g.mu.Lock()
		g.got = append(g.got, sigs...)
		g.mu.Unlock()
		return nil
	}}
	b := ingest.New(ingest.Config{MaxSignals: 1, MaxAge: time.Millisecond, Writers: 1}, hclog.NewNullLogger(), tier)
	b.Start()
	t, err := b.Submit(ctx, sigs)
	go b.Close(context.Background())
	return t, err
}

type fnTier struct{ fn func() error }

func (f *fnTier) Name() string                                 { return "direct" }
func (f *fnTier) Write(context.Context, []signal.Signal) error { return f.fn() }

type rejects struct {
	mu sync.Mutex
	r  []gateway.Rejection
}

func (r *rejects) add(_ context.Context, x gateway.Rejection) {
	x.Raw = append([]byte(nil), x.Raw...) // valid only during the call
	r.mu.Lock()
	r.r = append(r.r, x)
	r.mu.Unlock()
}

func start(t *testing.T, in gateway.Submitter, cfg gateway.ListenerConfig) (*gateway.Gateway, string, *rejects) {
	t.Helper()
	rj := &rejects{}
	g := gateway.New(hclog.NewNullLogger(), in, rj.add)
	cfg.Name, cfg.Transport, cfg.Address = "line", plugins.TCP, "127.0.0.1:0"
	addr, err := g.Listen(cfg, lineDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	g.Serve()
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g, addr.String(), rj
}

func TestByteAtATimeAndPipelinedFramesAckInOrder(t *testing.T) {
	in := &gatedIngest{}
	_, addr, _ := start(t, in, gateway.ListenerConfig{MaxFrame: 64})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "d1,1\nd1,2\n"
	for i := 0; i < len(msg); i++ {
		c.Write([]byte{msg[i]})
	}
	c.Write([]byte("d1,3\nd1,4\nd1,5\n")) // several frames in one write
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 1; i <= 5; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != fmt.Sprintf("ok %d\n", i) {
			t.Fatalf("ack %d = %q", i, line)
		}
	}
}

func TestRejectQuarantinesAndClosesOnlyThatConnection(t *testing.T) {
	in := &gatedIngest{}
	g, addr, rj := start(t, in, gateway.ListenerConfig{MaxFrame: 64})
	good, _ := net.Dial("tcp", addr)
	defer good.Close()
	bad, _ := net.Dial("tcp", addr)
	defer bad.Close()
	bad.Write([]byte("d2,1\nbad\n"))
	bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, _ := bufio.NewReader(bad).ReadString(0) // reads to EOF
	if !strings.Contains(all, "ok 1\n") || !strings.Contains(all, "error malformed frame") {
		t.Fatalf("bad connection got %q, want the ack of the good frame then the rejection", all)
	}
	oversized, _ := net.Dial("tcp", addr)
	defer oversized.Close()
	oversized.Write(bytes.Repeat([]byte("x"), 200))
	oversized.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(oversized).ReadString(0); err == nil {
		t.Fatal("oversized connection not closed")
	}
	good.Write([]byte("d3,7\n"))
	good.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(good).ReadString('\n'); err != nil || line != "ok 7\n" {
		t.Fatalf("good connection: %q %v", line, err)
	}
	rj.mu.Lock()
	defer rj.mu.Unlock()
	if len(rj.r) != 2 || rj.r[0].DeviceID != "d2" || !strings.Contains(rj.r[0].Reason, "malformed") || string(rj.r[0].Raw) != "bad\n" {
		t.Fatalf("rejections: %+v", rj.r)
	}
	if g.Stats().Rejected.Load() != 2 {
		t.Fatalf("rejected counter %d", g.Stats().Rejected.Load())
	}
}

func TestNotDurableClosesWithoutAck(t *testing.T) {
	in := &gatedIngest{fail: true}
	g, addr, _ := start(t, in, gateway.ListenerConfig{})
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.Write([]byte("d1,1\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := bufio.NewReader(c).ReadString(0)
	if b != "" || err == nil {
		t.Fatalf("got %q %v, want a close without ack", b, err)
	}
	if g.Stats().Unacked.Load() != 1 {
		t.Fatalf("unacked %d", g.Stats().Unacked.Load())
	}
}

func TestShutdownAcksInFlightFrames(t *testing.T) {
	in := &gatedIngest{release: make(chan struct{})}
	g, addr, _ := start(t, in, gateway.ListenerConfig{})
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.Write([]byte("d1,9\n"))
	// Wait until the frame is submitted (blocked in the tier).
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Frames.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error)
	go func() { done <- g.Shutdown(context.Background()) }()
	// New connections are refused once shutdown began.
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting during shutdown")
		}
	}
	close(in.release)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok 9\n" {
		t.Fatalf("in-flight frame: %q %v, want its ack before close", line, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConnectionCap(t *testing.T) {
	in := &gatedIngest{}
	g, addr, _ := start(t, in, gateway.ListenerConfig{MaxConnections: 2})
	for i := 0; i < 2; i++ {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		c.Write([]byte(fmt.Sprintf("d%d,1\n", i)))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	third, _ := net.Dial("tcp", addr)
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(third).ReadString('\n'); err == nil {
		t.Fatal("third connection served over the cap")
	}
	if g.Stats().Refused.Load() != 1 {
		t.Fatalf("refused %d", g.Stats().Refused.Load())
	}
}

func TestUDPAckAfterDurable(t *testing.T) {
	in := &gatedIngest{}
	rj := &rejects{}
	g := gateway.New(hclog.NewNullLogger(), in, rj.add)
	addr, err := g.Listen(gateway.ListenerConfig{Name: "u", Transport: plugins.UDP, Address: "127.0.0.1:0"}, lineDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	g.Serve()
	defer g.Shutdown(context.Background())
	c, _ := net.Dial("udp", addr.String())
	defer c.Close()
	c.Write([]byte("d9,4\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 64)
	n, err := c.Read(b)
	if err != nil || string(b[:n]) != "ok 4\n" {
		t.Fatalf("udp ack %q %v", b[:n], err)
	}
	c.Write([]byte("garbage"))
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Rejected.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g.Stats().Rejected.Load() != 1 {
		t.Fatal("garbage datagram not rejected")
	}
}

func TestUnstorableRecordRejectsOnlyItsFrame(t *testing.T) {
	in := &gatedIngest{}
	_, addr, rj := start(t, in, gateway.ListenerConfig{MaxFrame: 64})
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	// A NUL in the device id would fail the batch in Postgres (and with it
	// every other device's frames in that batch): the frame is refused.
	c.Write([]byte("d\x00x,1\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, _ := bufio.NewReader(c).ReadString(0)
	if !strings.Contains(all, "invalid signal") {
		t.Fatalf("got %q, want a rejection naming the invalid record", all)
	}
	rj.mu.Lock()
	defer rj.mu.Unlock()
	if len(rj.r) != 1 || !strings.Contains(rj.r[0].Reason, "NUL") {
		t.Fatalf("rejections %+v", rj.r)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.got) != 0 {
		t.Fatalf("%d signals reached ingest", len(in.got))
	}
}
