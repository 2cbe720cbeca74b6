package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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

// seqIngest makes each submitted frame (lineDecoder, attr seq) durable
// when the test resolves its sequence number: nil for durable, an error
// for not durable. Submissions are announced on submitted.
type seqIngest struct {
	mu        sync.Mutex
	gates     map[string]chan error
	submitted chan string
}

func newSeqIngest() *seqIngest {
	return &seqIngest{gates: map[string]chan error{}, submitted: make(chan string, 1000)}
}

func (s *seqIngest) gate(seq string) chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gates[seq]
	if !ok {
		g = make(chan error, 1)
		s.gates[seq] = g
	}
	return g
}

func (s *seqIngest) resolve(seq string, err error) { s.gate(seq) <- err }

func (s *seqIngest) Submit(ctx context.Context, sigs []signal.Signal) (*ingest.Ticket, error) {
	seq := fmt.Sprint(sigs[0].Attrs["seq"])
	gate := s.gate(seq)
	tier := &fnTier{fn: func() error { return <-gate }}
	b := ingest.New(ingest.Config{MaxSignals: 1, MaxAge: time.Millisecond, Writers: 1}, hclog.NewNullLogger(), tier)
	b.Start()
	t, err := b.Submit(ctx, sigs)
	go b.Close(context.Background())
	s.submitted <- seq
	return t, err
}

// expectSubmitted reads the next n submissions, in order.
func (s *seqIngest) expectSubmitted(t *testing.T, seqs ...string) {
	t.Helper()
	for _, want := range seqs {
		select {
		case got := <-s.submitted:
			if got != want {
				t.Fatalf("submitted frame %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %s not submitted", want)
		}
	}
}

// expectNoSubmission checks that nothing more is submitted for a while
// (the bound holds the reader).
func (s *seqIngest) expectNoSubmission(t *testing.T) {
	t.Helper()
	select {
	case got := <-s.submitted:
		t.Fatalf("frame %s submitted beyond the bound", got)
	case <-time.After(150 * time.Millisecond):
	}
}

func startPipelined(t *testing.T, in gateway.Submitter, cfg gateway.ListenerConfig) (*gateway.Gateway, net.Conn, *bufio.Reader) {
	t.Helper()
	g := gateway.New(hclog.NewNullLogger(), in, (&rejects{}).add)
	cfg.Name, cfg.Transport, cfg.Address = "l", plugins.TCP, "127.0.0.1:0"
	addr, err := g.Listen(cfg, lineDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	g.Serve()
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return g, c, bufio.NewReader(c)
}

func frames(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "d1,%d\n", i)
	}
	return b.String()
}

func readAcks(t *testing.T, c net.Conn, r *bufio.Reader, from, to int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := from; i <= to; i++ {
		line, err := r.ReadString('\n')
		if want := fmt.Sprintf("ok %d\n", i); err != nil || line != want {
			t.Fatalf("ack %q %v, want %q", line, err, want)
		}
	}
}

func expectNoAck(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	line, err := r.ReadString('\n')
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q %v before the frame was durable", line, err)
	}
}

func TestPipelineReadsAheadAndAcksInFrameOrder(t *testing.T) {
	in := newSeqIngest()
	g, c, r := startPipelined(t, in, gateway.ListenerConfig{MaxFramesInFlight: 4})
	c.Write([]byte(frames(1, 10)))
	// Four frames are read, decoded and submitted while none is durable;
	// the fifth waits for room.
	in.expectSubmitted(t, "1", "2", "3", "4")
	in.expectNoSubmission(t)
	// A later frame durable first is not acked before the earlier ones.
	in.resolve("3", nil)
	expectNoAck(t, c, r)
	in.resolve("1", nil)
	readAcks(t, c, r, 1, 1)
	in.expectSubmitted(t, "5")
	writes := g.Stats().AckWrites.Load()
	// Frame 2 durable: its ack and frame 3's go out in one write.
	in.resolve("2", nil)
	readAcks(t, c, r, 2, 3)
	if got := g.Stats().AckWrites.Load() - writes; got != 1 {
		t.Fatalf("acks of frames 2 and 3 took %d writes, want 1", got)
	}
	in.expectSubmitted(t, "6", "7")
	for i := 4; i <= 10; i++ {
		in.resolve(fmt.Sprint(i), nil)
	}
	in.expectSubmitted(t, "8", "9", "10")
	readAcks(t, c, r, 4, 10)
	// The counter follows the write: read it once the connection is done.
	c.Close()
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := g.Stats().Acked.Load(); got != 10 {
		t.Fatalf("acked counter %d, want 10", got)
	}
}

func TestPipelineBytesInFlightBound(t *testing.T) {
	in := newSeqIngest()
	_, c, r := startPipelined(t, in, gateway.ListenerConfig{MaxBytesInFlight: 12})
	// "d1,N\n" is 5 bytes: two frames fit 12 bytes, a third does not.
	c.Write([]byte(frames(1, 5)))
	in.expectSubmitted(t, "1", "2")
	in.expectNoSubmission(t)
	in.resolve("1", nil)
	readAcks(t, c, r, 1, 1)
	in.expectSubmitted(t, "3")
	for i := 2; i <= 5; i++ {
		in.resolve(fmt.Sprint(i), nil)
	}
	readAcks(t, c, r, 2, 5)
}

func TestPipelineFrameNotDurableClosesWithoutLaterAcks(t *testing.T) {
	// Frame 2 is not durable: frame 1 is acked, the connection closes,
	// and frame 3 is never acked even though it is durable.
	in := newSeqIngest()
	g, c, r := startPipelined(t, in, gateway.ListenerConfig{})
	c.Write([]byte(frames(1, 3)))
	in.expectSubmitted(t, "1", "2", "3")
	in.resolve("3", nil)
	in.resolve("2", errors.New("postgres down"))
	expectNoAck(t, c, r)
	in.resolve("1", nil)
	readAcks(t, c, r, 1, 1)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(r)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after the frame that was not durable: %q %v, want the connection closed with nothing more", rest, err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := g.Stats().Unacked.Load(); got != 1 {
		t.Fatalf("unacked counter %d, want 1", got)
	}
}

func TestPipelineRejectedFrameAfterPendingFrames(t *testing.T) {
	// A refused frame read while earlier frames wait for durability is
	// quarantined after their acks are written, and its reply follows
	// them.
	in := newSeqIngest()
	_, c, r := startPipelined(t, in, gateway.ListenerConfig{})
	c.Write([]byte(frames(1, 2) + "bad\n"))
	in.expectSubmitted(t, "1", "2")
	expectNoAck(t, c, r)
	in.resolve("2", nil)
	in.resolve("1", nil)
	readAcks(t, c, r, 1, 2)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "error ") {
		t.Fatalf("reply to the refused frame: %q %v", line, err)
	}
}
