package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationPartialRefusalFailsOnlyTheRefusedFrames: a batch in
// which Postgres refuses one record (a check constraint, and a device ID
// too long for the index) stores every other record directly, fails only
// the ticket of the frame that carried it, keeps it in rejected_records
// (acked=false), leaves the breaker closed and sends nothing to the next
// tier.
func TestIntegrationPartialRefusalFailsOnlyTheRefusedFrames(t *testing.T) {
	testenv.Integration(t)
	for _, tc := range []struct {
		name     string
		poison   string
		sqlstate string
	}{
		{"check constraint", "poison-1", "23514"},
		{"device id too long for the index", randomID(6000), "54000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, testenv.Database(t), store.Options{MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.MigrateAll(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Pool().Exec(ctx, `ALTER TABLE signals ADD CONSTRAINT poison CHECK (device_id NOT LIKE 'poison%')`); err != nil {
				t.Fatal(err)
			}
			pg := &ingest.PostgresTier{Store: st}
			br := ingest.NewBreaker(pg, st.Ping, time.Hour, hclog.NewNullLogger())
			defer br.Close()
			next := &memTier{name: signal.PathFailover}
			b := ingest.New(ingest.Config{MaxSignals: 30, MaxAge: time.Hour, Writers: 1}, hclog.NewNullLogger(), br, next)
			b.Start()
			defer b.Close(ctx) //nolint:errcheck
			// Ten frames of three records; frame 4 carries the poison record.
			var tickets []*ingest.Ticket
			for f := 0; f < 10; f++ {
				frame := make([]signal.Signal, 3)
				for i := range frame {
					frame[i] = signal.New(fmt.Sprintf("dev-%d", f), time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC))
					frame[i].Protocol = "test"
					frame[i].Frame = []byte(fmt.Sprintf("frame-%d", f))
				}
				if f == 4 {
					frame[1].DeviceID = tc.poison
				}
				tk, err := b.Submit(ctx, frame)
				if err != nil {
					t.Fatal(err)
				}
				tickets = append(tickets, tk)
			}
			for f, tk := range tickets {
				err := tk.Wait(ctx)
				switch {
				case f == 4:
					if !errors.Is(err, ingest.ErrRefused) || !strings.Contains(err.Error(), tc.sqlstate) || tk.Path() != "" {
						t.Fatalf("frame with the refused record: err %v, path %q; want ErrRefused with SQLSTATE %s", err, tk.Path(), tc.sqlstate)
					}
				case err != nil || tk.Path() != signal.PathDirect:
					t.Fatalf("frame %d: err %v, path %q; want stored directly", f, err, tk.Path())
				}
			}
			if bs := br.Stats(); bs.Open || bs.Opens != 0 || bs.Trips != 0 {
				t.Fatalf("breaker %+v: a refused record opened it", bs)
			}
			if n := next.signals(); n != 0 {
				t.Fatalf("%d signals went to the next tier", n)
			}
			var stored, rejected int
			if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM signals").Scan(&stored); err != nil || stored != 29 {
				t.Fatalf("signals holds %d rows (%v), want 29", stored, err)
			}
			if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM rejected_records WHERE NOT acked AND path = 'direct' AND sqlstate = $1", tc.sqlstate).Scan(&rejected); err != nil || rejected != 1 {
				t.Fatalf("rejected_records holds %d unacked rows (%v), want 1", rejected, err)
			}
			if st := b.Stats(); st.Refused != 1 || st.Durable != 29 {
				t.Fatalf("stats: %d refused, %d durable; want 1, 29", st.Refused, st.Durable)
			}
		})
	}
}

func TestPartialErrorMapsToSubmissions(t *testing.T) {
	// A tier refusing records 0 and 5 of 3 submissions of 2, 2 and 3.
	tier := &refusingTier{refused: []int{0, 5}}
	b := ingest.New(ingest.Config{MaxSignals: 7, MaxAge: time.Hour, Writers: 1}, hclog.NewNullLogger(), tier)
	b.Start()
	defer b.Close(context.Background()) //nolint:errcheck
	var tickets []*ingest.Ticket
	for _, n := range []int{2, 2, 3} {
		tk, err := b.Submit(context.Background(), sigs(n))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	for i, want := range []bool{true, false, true} {
		err := tickets[i].Wait(context.Background())
		if got := errors.Is(err, ingest.ErrRefused); got != want {
			t.Fatalf("submission %d: err %v, want refused %v", i, err, want)
		}
	}
}

// randomID is a device ID that compression cannot shrink under the
// btree limit.
func randomID(n int) string {
	rng := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rng.IntN(26))
	}
	return string(b)
}

type refusingTier struct{ refused []int }

func (r *refusingTier) Name() string { return signal.PathDirect }
func (r *refusingTier) Write(_ context.Context, b []signal.Signal) error {
	return &ingest.PartialError{Refused: r.refused, Reasons: []string{"a", "b"}}
}
