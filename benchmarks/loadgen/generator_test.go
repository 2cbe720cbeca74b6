package loadgen

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

// flakyServer is a Teltonika server that closes every device's first data
// connection without acking (as when the database is down), then acks. It
// records what it acked, by device, in device-time microseconds.
type flakyServer struct {
	ln    net.Listener
	mu    sync.Mutex
	seen  map[string]int // data frames seen per device
	acked map[string][]int64
	wg    sync.WaitGroup
}

func newFlakyServer(t *testing.T) *flakyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &flakyServer{ln: ln, seen: map[string]int{}, acked: map[string][]int64{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *flakyServer) serve(c net.Conn) {
	defer c.Close()
	dec, _ := plugins.Decoders.Lookup("teltonika")
	sess := dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, RemoteAddr: c.RemoteAddr(), MaxFrame: 64 << 10})
	var buf []byte
	tmp := make([]byte, 4096)
	device := ""
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			fn, err := sess.Frame(buf)
			if err != nil || fn == 0 {
				if err != nil {
					return
				}
				break
			}
			res, err := sess.Decode(buf[:fn], time.Now())
			if err != nil {
				return // corrupted: close without ack
			}
			buf = buf[fn:]
			if res.DeviceID != "" {
				device = res.DeviceID
			}
			if len(res.Signals) > 0 {
				s.mu.Lock()
				s.seen[device]++
				first := s.seen[device] == 1
				if !first {
					for _, sig := range res.Signals {
						s.acked[device] = append(s.acked[device], sig.TS.UnixMicro())
					}
				}
				s.mu.Unlock()
				if first {
					return
				}
			}
			if _, err := c.Write(res.Ack); err != nil {
				return
			}
		}
	}
}

func TestDevicesResendUntilAcked(t *testing.T) {
	srv := newFlakyServer(t)
	g, err := New(Config{
		Targets: map[string]string{"teltonika": srv.ln.Addr().String()}, Mix: []Share{{"teltonika", 1}},
		Devices: 20, PerFrame: 5, AckTimeout: 5 * time.Second, BadShare: 0.2, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A load run lasts a while; the assertions hold however many frames
	// went through in that time.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	g.Run(ctx)
	c := g.Counters()
	if c.Frames == 0 || c.Resends == 0 {
		t.Fatalf("frames acked %d, resent %d: want both", c.Frames, c.Resends)
	}
	if c.CorruptAcked != 0 {
		t.Errorf("%d corrupted frames acked", c.CorruptAcked)
	}
	srv.mu.Lock()
	stored := srv.acked
	seen := srv.seen
	srv.mu.Unlock()
	for dev, ts := range g.Ledger() {
		if len(ts) > 0 && seen[dev] < 2 {
			t.Errorf("device %s had records acked after %d data frames; its first frame was never acked, so it must have resent", dev, seen[dev])
		}
	}
	v := Compare(g.Ledger(), stored)
	if v.Acked == 0 || v.Lost != 0 {
		t.Errorf("acked %d, lost %d (sample %v): every record the devices saw acked must be on the server", v.Acked, v.Lost, v.Missing)
	}
	// The server stores what it acks; resent duplicates show up as
	// duplicates here (this toy server does not deduplicate), which proves
	// the generator does resend acked frames when asked to.
	if c.Duplicates > 0 && v.Duplicates == 0 {
		t.Errorf("generator sent %d duplicate frames but the server saw none", c.Duplicates)
	}
}

func TestGeneratorNeedsTargets(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no target", Config{Mix: []Share{{"gt06", 1}}, Devices: 1}},
		{"no devices", Config{Targets: map[string]string{"gt06": "127.0.0.1:1"}, Mix: []Share{{"gt06", 1}}}},
		{"no mix", Config{Targets: map[string]string{"gt06": "127.0.0.1:1"}, Devices: 1}},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
