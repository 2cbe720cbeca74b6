package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

func benchSignals(dev string, from, n int) []signal.Signal {
	out := make([]signal.Signal, n)
	for i := range out {
		s := signal.New(dev, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(from+i)*time.Second))
		s.Lat, s.Lon, s.Alt, s.Speed, s.Heading, s.Sats = 54.6, 25.2, 120, 50, 90, 9
		s.Valid = signal.True
		s.SetAttr("io239", 1)
		s.SetAttr("io240", 1)
		s.Protocol = "teltonika"
		s.Recv = time.Now()
		out[i] = s
	}
	return out
}

// BenchmarkIntegrationWritePath compares, in one run, the group-commit
// batcher (64 concurrent devices, 10 records per frame) with the
// straightforward design (one INSERT and COMMIT per row, 4 workers), both
// against the local Postgres. Compare the rows/s metrics.
func BenchmarkIntegrationWritePath(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(b), store.Options{MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.MigrateAll(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("batcher", func(b *testing.B) {
		bt := ingest.New(ingest.Config{MaxSignals: 4096, MaxAge: 5 * time.Millisecond, Writers: 2}, hclog.NewNullLogger(), &ingest.PostgresTier{Store: st})
		bt.Start()
		defer bt.Close(ctx)
		const devices, perFrame = 64, 10
		frames := b.N/perFrame + 1
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for d := 0; d < devices; d++ {
			wg.Add(1)
			go func(d int) {
				defer wg.Done()
				dev := fmt.Sprintf("b%d-%d", b.N, d)
				for f := d; f < frames; f += devices {
					tk, err := bt.Submit(ctx, benchSignals(dev, f*perFrame, perFrame))
					if err != nil {
						b.Error(err)
						return
					}
					if err := tk.Wait(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			}(d)
		}
		wg.Wait()
		b.ReportMetric(float64(frames*perFrame)/time.Since(start).Seconds(), "rows/s")
	})
	b.Run("insert_per_row", func(b *testing.B) {
		const workers = 4
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				dev := fmt.Sprintf("n%d-%d", b.N, w)
				for i := w; i < b.N; i += workers {
					// One row per transaction: WriteSignals of a batch of one
					// is one INSERT (COPY of one row) and one COMMIT.
					s := benchSignals(dev, i, 1)
					s[0].Path = signal.PathDirect
					if _, err := st.Pool().Exec(ctx, `INSERT INTO signals (device_id, ts, recv, lat, lon, alt, speed, heading, sats, valid, attrs, protocol, path, record_hash)
						VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT DO NOTHING`,
						s[0].DeviceID, s[0].TS, s[0].Recv, s[0].Lat, s[0].Lon, s[0].Alt, s[0].Speed, s[0].Heading, s[0].Sats, true, s[0].Attrs, s[0].Protocol, s[0].Path, s[0].RecordHash()); err != nil {
						b.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
	})
}
