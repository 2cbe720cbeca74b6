package loadgen

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

// Each poison frame is one whole frame of its protocol. A long id either
// decodes to that id (a server without a cap) or is refused as malformed
// (with one); the refused kind decodes to a record that passes every
// gateway check, so only Postgres's constraint refuses it.
func TestPoisonFrames(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, kind := range []string{PoisonLongJSONL, PoisonLongH02, PoisonRefused} {
		t.Run(kind, func(t *testing.T) {
			proto, frame := PoisonFrame(kind, 7, ts, 6000)
			sess := newSession(t, proto)
			n, err := sess.Frame(frame)
			if err != nil || n != len(frame) {
				t.Fatalf("Frame = %d, %v; want the whole %d bytes", n, err, len(frame))
			}
			res, err := sess.Decode(frame, ts)
			if kind == PoisonRefused {
				if err != nil || len(res.Signals) != 1 {
					t.Fatalf("Decode = %d signals, %v", len(res.Signals), err)
				}
				s := res.Signals[0]
				if s.DeviceID != "poison-7" || !s.TS.Equal(ts) {
					t.Errorf("record %q at %v", s.DeviceID, s.TS)
				}
				if err := s.Check(); err != nil {
					t.Errorf("the refused kind must pass the gateway's checks: %v", err)
				}
				return
			}
			if err != nil {
				if !errors.Is(err, plugins.ErrMalformed) && !errors.Is(err, plugins.ErrTooLarge) {
					t.Errorf("a long id refused with %v, want ErrMalformed or ErrTooLarge", err)
				}
				return
			}
			for _, s := range res.Signals {
				if len(s.DeviceID) != 6000 || strings.HasPrefix(s.DeviceID, "poison") {
					t.Errorf("decoded a %d-character id %.20q…, want the 6000-character random one", len(s.DeviceID), s.DeviceID)
				}
			}
		})
	}
}

// The poisoner counts a server that closes without answering as refused
// and an answer as acked.
func TestPoisonerCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 8192)
			c.Read(buf) //nolint:errcheck
			if i%2 == 0 {
				c.Write([]byte("{\"ok\": 1}\n")) //nolint:errcheck
			}
			c.Close()
		}
	}()
	p, err := NewPoisoner(PoisonConfig{Targets: map[string]string{"jsonl": ln.Addr().String()}, Rate: 200, Attackers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	p.Run(ctx)
	c := p.Counters()
	if c.Sent == 0 || c.Acked+c.Refused+c.NoAnswer != c.Sent || c.Acked == 0 || c.Refused == 0 {
		t.Errorf("counters %+v", c)
	}
	if c.ByKind[PoisonLongH02] != 0 {
		t.Errorf("sent h02 poison without an h02 target: %+v", c)
	}
}
