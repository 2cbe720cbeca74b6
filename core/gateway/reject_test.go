package gateway_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/quarantine"
	"github.com/fleetcore/fleetcore/plugins"
)

// slowSink stands for a Postgres that takes perWrite for every statement
// (each garbage datagram cost one INSERT inside the UDP read loop before
// the quarantine had its own writer).
type slowSink struct {
	perWrite time.Duration
	mu       sync.Mutex
	rows     int
}

func (s *slowSink) WriteRows(ctx context.Context, rows []quarantine.Row) error {
	select {
	case <-time.After(s.perWrite):
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.rows += len(rows)
	s.mu.Unlock()
	return nil
}

// TestUDPGarbageFloodDoesNotDelayAGoodDevice sends 1,000 garbage datagrams
// from one socket while a good device on another sends a datagram at a
// time and waits for its ack: each ack comes in well under a second, and
// every garbage datagram is accounted for (stored or counted as dropped).
func TestUDPGarbageFloodDoesNotDelayAGoodDevice(t *testing.T) {
	sink := &slowSink{perWrite: 10 * time.Millisecond}
	q := quarantine.New(quarantine.Config{Queue: 256}, sink, hclog.NewNullLogger())
	qctx, qcancel := context.WithCancel(context.Background())
	qdone := make(chan struct{})
	go func() { defer close(qdone); q.Run(qctx) }()
	defer func() { qcancel(); <-qdone }()

	g := gateway.New(hclog.NewNullLogger(), &gatedIngest{}, func(_ context.Context, r gateway.Rejection) {
		q.Reject(quarantine.Rejection{Recv: r.Recv, RemoteAddr: r.RemoteAddr, Listener: r.Listener,
			Protocol: r.Protocol, DeviceID: r.DeviceID, Reason: r.Reason, Raw: r.Raw})
	})
	addr, err := g.Listen(gateway.ListenerConfig{Name: "u", Transport: plugins.UDP, Address: "127.0.0.1:0"}, lineDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	g.Serve()
	defer g.Shutdown(context.Background())

	const garbage = 1000
	flood, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for i := 0; i < garbage; i++ {
			flood.Write([]byte(fmt.Sprintf("garbage %d", i))) //nolint:errcheck
			if i%10 == 9 {
				time.Sleep(time.Millisecond) // ~5,000 a second: a flood, not a socket buffer overrun
			}
		}
	}()

	good, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	var slowest time.Duration
	buf := make([]byte, 64)
	for seq, done := 0, false; !done || seq < 20; seq++ {
		select {
		case <-flooded:
			done = true
		default:
		}
		start := time.Now()
		good.Write([]byte(fmt.Sprintf("good,%d\n", seq))) //nolint:errcheck
		good.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := good.Read(buf)
		if err != nil {
			t.Fatalf("good device's datagram %d: no ack (%v) during the flood", seq, err)
		}
		if want := fmt.Sprintf("ok %d\n", seq); string(buf[:n]) != want {
			t.Fatalf("ack %q, want %q", buf[:n], want)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Fatalf("the good device's slowest ack took %s during the garbage flood", slowest)
	}

	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Rejected.Load() < garbage && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	rejected := g.Stats().Rejected.Load()
	qcancel()
	<-qdone
	st := q.Stats()
	if rejected != garbage || st.Rows+st.RateLimited+st.QueueFull+st.Shutdown != rejected || st.RateLimited == 0 {
		t.Fatalf("%d datagrams rejected, quarantine %+v: want all %d, each stored or counted, the flood rate limited",
			rejected, st, garbage)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if uint64(sink.rows) != st.Rows {
		t.Fatalf("%d rows reached the sink, the writer counted %d", sink.rows, st.Rows)
	}
}
