package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/osmand"
)

// panicDecoder is the line protocol whose Frame panics on a buffer that
// starts with "FP" and whose Decode panics on a frame that starts with
// "DP". It counts the sessions it made.
type panicDecoder struct{ sessions *atomic.Int64 }

func (d panicDecoder) Info() plugins.Info {
	return plugins.Info{Name: "panicky", Transports: []plugins.Transport{plugins.TCP, plugins.UDP}}
}

func (d panicDecoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	d.sessions.Add(1)
	return &panicSession{lineSession{max: cfg.MaxFrame}}
}

type panicSession struct{ lineSession }

func (s *panicSession) Frame(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("FP")) {
		panic(fmt.Sprintf("framer gave up on %q", b[:2]))
	}
	return s.lineSession.Frame(b)
}

func (s *panicSession) Decode(f []byte, recv time.Time) (plugins.Result, error) {
	if bytes.HasPrefix(f, []byte("DP")) {
		_ = f[len(f)+3] // index out of range
	}
	return s.lineSession.Decode(f, recv)
}

// serve starts a gateway with one listener per config (dec for each) and
// returns it, the listeners' addresses and its rejections.
func serve(t *testing.T, dec plugins.Decoder, opts []gateway.Option, cfgs ...gateway.ListenerConfig) (*gateway.Gateway, []string, *rejects) {
	t.Helper()
	rj := &rejects{}
	g := gateway.New(hclog.NewNullLogger(), &gatedIngest{}, rj.add, opts...)
	var addrs []string
	for i, cfg := range cfgs {
		cfg.Name = fmt.Sprintf("l%d", i)
		if cfg.Transport == "" {
			cfg.Transport = plugins.TCP
		}
		cfg.Address = "127.0.0.1:0"
		a, err := g.Listen(cfg, dec)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a.String())
	}
	g.Serve()
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g, addrs, rj
}

// roundTrip writes a frame and reads one line back.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, frame string) string {
	t.Helper()
	if _, err := c.Write([]byte(frame)); err != nil {
		t.Fatalf("writing %q: %v", frame, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", frame, err)
	}
	return line
}

// readToEOF reads what the server sends until it closes the connection
// (a reset, when it closed with our bytes unread, counts); it fails the
// test if the server keeps it open for 10 s.
func readToEOF(t *testing.T, r io.Reader, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the server (got %q): %v", b, err)
	}
	return string(b)
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func (r *rejects) all() []gateway.Rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gateway.Rejection(nil), r.r...)
}

func TestDecoderPanicClosesOnlyItsConnection(t *testing.T) {
	for _, tc := range []struct {
		name, frame, want string
	}{
		{"Frame", "FP,1\n", "decoder panicked in Frame: framer gave up on \"FP\""},
		{"Decode", "DP,1\n", "decoder panicked in Decode: runtime error: index out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, addrs, rj := serve(t, panicDecoder{&atomic.Int64{}}, nil, gateway.ListenerConfig{MaxFrame: 64})
			good, gr := dial(t, addrs[0])
			bad, br := dial(t, addrs[0])
			if got := roundTrip(t, good, gr, "g,1\n"); got != "ok 1\n" {
				t.Fatalf("good connection: %q", got)
			}
			if got := roundTrip(t, bad, br, "b,1\n"); got != "ok 1\n" {
				t.Fatalf("bad connection before the panic: %q", got)
			}
			bad.Write([]byte(tc.frame))
			if rest := readToEOF(t, br, bad); !strings.Contains(rest, "error "+plugins.ErrPanic.Error()) {
				t.Fatalf("the panicking connection got %q before close, want the rejection", rest)
			}
			for i := 2; i <= 4; i++ {
				if got := roundTrip(t, good, gr, fmt.Sprintf("g,%d\n", i)); got != fmt.Sprintf("ok %d\n", i) {
					t.Fatalf("good connection after the panic: %q", got)
				}
			}
			other, or := dial(t, addrs[0])
			if got := roundTrip(t, other, or, "n,1\n"); got != "ok 1\n" {
				t.Fatalf("new connection after the panic: %q", got)
			}
			r := rj.all()
			if len(r) != 1 || !strings.Contains(r[0].Reason, tc.want) {
				t.Fatalf("rejections %+v, want one with reason %q", r, tc.want)
			}
			if strings.Contains(r[0].Reason, "goroutine") || strings.Contains(r[0].Reason, ".go:") {
				t.Fatalf("the stack reached the quarantine row: %q", r[0].Reason)
			}
			if string(r[0].Raw) != tc.frame || r[0].DeviceID != "b" {
				t.Fatalf("quarantined %q of device %q, want %q of b", r[0].Raw, r[0].DeviceID, tc.frame)
			}
			if n := g.Stats().Protocol("panicky").Panics.Load(); n != 1 {
				t.Fatalf("panics counter %d, want 1", n)
			}
		})
	}
}

func TestUDPDecoderPanicDropsOnlyThatSession(t *testing.T) {
	sessions := &atomic.Int64{}
	g, addrs, rj := serve(t, panicDecoder{sessions}, nil, gateway.ListenerConfig{Transport: plugins.UDP})
	a, _ := net.Dial("udp", addrs[0])
	defer a.Close()
	b, _ := net.Dial("udp", addrs[0])
	defer b.Close()
	ack := func(c net.Conn, dgram, want string) {
		t.Helper()
		c.Write([]byte(dgram))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("datagram %q: ack %q %v, want %q", dgram, buf[:n], err, want)
		}
	}
	ack(a, "a,1\n", "ok 1\n")
	ack(b, "b,1\n", "ok 1\n")
	a.Write([]byte("DP,2\n"))
	deadline := time.Now().Add(10 * time.Second)
	for len(rj.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := rj.all()
	if len(r) != 1 || !strings.Contains(r[0].Reason, "decoder panicked in Decode") || r[0].DeviceID != "a" {
		t.Fatalf("rejections %+v, want the panic of device a", r)
	}
	ack(b, "b,2\n", "ok 2\n")
	if n := sessions.Load(); n != 2 {
		t.Fatalf("%d sessions before a's next datagram, want 2", n)
	}
	ack(a, "a,3\n", "ok 3\n")
	if n := sessions.Load(); n != 3 {
		t.Fatalf("%d sessions, want 3: the panicking source's session was kept", n)
	}
	if n := g.Stats().Protocol("panicky").Panics.Load(); n != 1 {
		t.Fatalf("panics counter %d, want 1", n)
	}
}

// dribble writes b one byte every interval until the connection fails or
// stop closes; it returns when it stops.
func dribble(c net.Conn, b []byte, interval time.Duration, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := 0; ; i = (i + 1) % len(b) {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	return done
}

func TestFrameTimeoutClosesASlowSender(t *testing.T) {
	const frameTimeout = 300 * time.Millisecond
	tests := []struct {
		name   string
		dec    plugins.Decoder
		prefix string // sent at once, then one byte every 20 ms
		body   string
		reply  string // in what the server sends before closing
	}{
		{"line", lineDecoder{}, "d1,", "1", "error frame not complete within 300ms"},
		{"osmand_http_header", &osmand.Decoder{}, "GET /?id=42&lat=1&lon=2 HTTP/1.1\r\nHost: x\r\n", "X-Slow: aaaaaaaaaa", "HTTP/1.1 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The read timeout is far longer: each byte arrives well
			// within it, as with today's per-read deadline.
			g, addrs, rj := serve(t, tc.dec, nil, gateway.ListenerConfig{ReadTimeout: time.Minute, FrameTimeout: frameTimeout})
			c, r := dial(t, addrs[0])
			begin := time.Now()
			c.Write([]byte(tc.prefix))
			stop := make(chan struct{})
			done := dribble(c, []byte(tc.body), 20*time.Millisecond, stop)
			got := readToEOF(t, r, c)
			took := time.Since(begin)
			close(stop)
			<-done
			if took < frameTimeout || took > frameTimeout+5*time.Second {
				t.Fatalf("closed after %v, want at the frame timeout %v", took, frameTimeout)
			}
			if !strings.Contains(got, tc.reply) {
				t.Fatalf("server sent %q before closing, want %q", got, tc.reply)
			}
			rs := rj.all()
			if len(rs) != 1 || rs[0].Reason != "frame not complete within 300ms" || !bytes.HasPrefix(rs[0].Raw, []byte(tc.prefix)) {
				t.Fatalf("rejections %+v, want the partial frame, reason \"frame not complete within 300ms\"", rs)
			}
			if g.Stats().FramesTimedOut.Load() != 1 {
				t.Fatalf("timed-out counter %d", g.Stats().FramesTimedOut.Load())
			}
		})
	}
}

func TestFrameTimeoutIsPerFrame(t *testing.T) {
	// Frames that each complete within the frame timeout keep the
	// connection open however long it lives; so does waiting for the
	// frames' durability, which is the gateway's time, not the device's.
	const frameTimeout = 300 * time.Millisecond
	in := &gatedIngest{release: make(chan struct{})}
	rj := &rejects{}
	g := gateway.New(hclog.NewNullLogger(), in, rj.add)
	addr, err := g.Listen(gateway.ListenerConfig{Name: "l", Transport: plugins.TCP, Address: "127.0.0.1:0", FrameTimeout: frameTimeout}, lineDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	g.Serve()
	defer g.Shutdown(context.Background())
	c, r := dial(t, addr.String())
	// Frame 1 and the first half of frame 2 in one write; frame 1's
	// durability is held for twice the frame timeout.
	c.Write([]byte("d1,1\nd1,"))
	time.AfterFunc(2*frameTimeout, func() { close(in.release) })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ok 1\n" {
		t.Fatalf("frame 1: %q %v", line, err)
	}
	c.Write([]byte("2\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "ok 2\n" {
		t.Fatalf("frame 2, half of it sent before a long durability wait: %q %v", line, err)
	}
	begin := time.Now()
	for seq := 3; time.Since(begin) < 3*frameTimeout; seq++ {
		frame := fmt.Sprintf("d1,%d\n", seq)
		for i := range len(frame) {
			c.Write([]byte{frame[i]})
			time.Sleep(frameTimeout / 4 / time.Duration(len(frame))) // the sender's pace, not synchronisation
		}
		if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("ok %d\n", seq) {
			t.Fatalf("frame %d sent over %v: %q %v", seq, frameTimeout/4, line, err)
		}
	}
	if rs := rj.all(); len(rs) != 0 {
		t.Fatalf("rejections %+v", rs)
	}
}

func TestPerIPConnectionCap(t *testing.T) {
	g, addrs, _ := serve(t, lineDecoder{}, nil, gateway.ListenerConfig{MaxConnections: 10, MaxConnectionsPerIP: 2})
	var first []net.Conn
	for i := range 2 {
		c, r := dial(t, addrs[0])
		if got := roundTrip(t, c, r, fmt.Sprintf("d%d,1\n", i)); got != "ok 1\n" {
			t.Fatalf("connection %d: %q", i, got)
		}
		first = append(first, c)
	}
	third, tr := dial(t, addrs[0])
	third.Write([]byte("d3,1\n"))
	if got := readToEOF(t, tr, third); got != "" {
		t.Fatalf("third connection from one IP got %q, want refused", got)
	}
	if g.Stats().RefusedBy(gateway.RefusedIPCap) != 1 || g.Stats().Refused.Load() != 1 {
		t.Fatalf("refused ip_cap %d, total %d", g.Stats().RefusedBy(gateway.RefusedIPCap), g.Stats().Refused.Load())
	}
	// Another source is not affected.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got := roundTrip(t, other, bufio.NewReader(other), "o,1\n"); got != "ok 1\n" {
		t.Fatalf("another source: %q", got)
	}
	// A closed connection gives its slot back.
	first[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, r := dial(t, addrs[0])
		c.Write([]byte("d4,1\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if line, err := r.ReadString('\n'); err == nil && line == "ok 1\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed connection was not given back")
		}
		time.Sleep(5 * time.Millisecond) // until the server has seen the close
	}
}

func TestGatewayConnectionCapSpansListeners(t *testing.T) {
	g, addrs, _ := serve(t, lineDecoder{}, []gateway.Option{gateway.WithLimits(gateway.Limits{MaxConnections: 2})},
		gateway.ListenerConfig{}, gateway.ListenerConfig{})
	for i, a := range addrs {
		c, r := dial(t, a)
		if got := roundTrip(t, c, r, "d,1\n"); got != "ok 1\n" {
			t.Fatalf("listener %d: %q", i, got)
		}
	}
	third, tr := dial(t, addrs[0])
	third.Write([]byte("d,2\n"))
	if got := readToEOF(t, tr, third); got != "" {
		t.Fatalf("third connection got %q, want refused over the gateway cap", got)
	}
	if g.Stats().RefusedBy(gateway.RefusedGatewayCap) != 1 || g.Stats().RefusedBy(gateway.RefusedListenerCap) != 0 {
		t.Fatalf("refused gateway_cap %d, listener_cap %d", g.Stats().RefusedBy(gateway.RefusedGatewayCap), g.Stats().RefusedBy(gateway.RefusedListenerCap))
	}
	if n := g.Stats().Open.Load(); n != 2 {
		t.Fatalf("open %d, want 2", n)
	}
}

func TestBufferBudget(t *testing.T) {
	const budget = 100 << 10
	g, addrs, rj := serve(t, lineDecoder{}, []gateway.Option{gateway.WithLimits(gateway.Limits{MaxBufferedBytes: budget})},
		gateway.ListenerConfig{MaxFrame: 64 << 10})
	st := g.Stats()
	waitBuffered := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st.Buffered.Load() != want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := st.Buffered.Load(); got != want {
			t.Fatalf("buffered %d bytes, want %d", got, want)
		}
	}
	partial := append([]byte("a,1"), bytes.Repeat([]byte(" "), 60<<10)...)
	a, ar := dial(t, addrs[0])
	a.Write(partial)
	waitBuffered(64<<10 - 2048) // grown to 64 KiB, beyond the initial 2 KiB
	// A second 60 KB partial frame does not fit in what is left.
	b, br := dial(t, addrs[0])
	b.Write(partial)
	if got := readToEOF(t, br, b); got != "" {
		t.Fatalf("over the budget: got %q, want a close without ack", got)
	}
	if st.BufferBudgetClosed.Load() != 1 {
		t.Fatalf("budget closes %d", st.BufferBudgetClosed.Load())
	}
	if len(rj.all()) != 0 {
		t.Fatalf("a frame closed over the budget was quarantined: %+v", rj.all())
	}
	waitBuffered(64<<10 - 2048) // b's growth given back
	// The first connection completes its frame and its buffer shrinks.
	if got := roundTrip(t, a, ar, "\n"); got != "ok 1\n" {
		t.Fatalf("the frame within the budget: %q", got)
	}
	waitBuffered(0)
	// With the budget free again a large frame goes through.
	c, cr := dial(t, addrs[0])
	if got := roundTrip(t, c, cr, string(partial)+"\n"); got != "ok 1\n" {
		t.Fatalf("after the budget was freed: %q", got)
	}
	waitBuffered(0)
}
