package suite

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// RefRun is one measurement of a reference.
type RefRun struct {
	Conns   int     `json:"connections"`
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
	PerS    float64 `json:"per_s"`
	// CPU is where the machine's CPU went during the run (the bench
	// process is the client here), so that a scenario's CPU per signal
	// reads against the reference's CPU per row.
	CPU *CPU `json:"cpu,omitempty"`
}

// referenceSignals makes n signals shaped like the benchmark's: Teltonika
// frames from the load generator decoded by the real decoder (IO attrs,
// positions), one device per 1000 records.
func referenceSignals(n int) ([]signal.Signal, error) {
	codec, err := loadgen.CodecFor("teltonika")
	if err != nil {
		return nil, err
	}
	dec, ok := plugins.Decoders.Lookup("teltonika")
	if !ok {
		return nil, fmt.Errorf("making reference rows: teltonika decoder not registered")
	}
	out := make([]signal.Signal, 0, n)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	recv := time.Now().UTC()
	for dev := 0; len(out) < n; dev++ {
		imei := fmt.Sprintf("%015d", 990000000000000+dev)
		sess := dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, RemoteAddr: &net.TCPAddr{}, MaxFrame: 64 << 10})
		if _, err := sess.Decode(codec.Hello(imei, 0), recv); err != nil {
			return nil, fmt.Errorf("making reference rows: %w", err)
		}
		for f := 0; f < 100 && len(out) < n; f++ {
			recs := make([]loadgen.Record, 10)
			for i := range recs {
				k := f*10 + i
				recs[i] = loadgen.Record{
					TS: base.Add(time.Duration(k) * time.Second), Lat: 50 + float64(k)*1e-4, Lon: 10 + float64(dev)*1e-3,
					Alt: 120, Speed: float64(k % 120), Heading: float64(k % 360), Sats: 9, Odo: float64(k) / 10, Volt: 13.2,
				}
			}
			frame := codec.Encode(nil, imei, 0, recs, false)
			res, err := sess.Decode(frame, recv)
			if err != nil {
				return nil, fmt.Errorf("making reference rows: %w", err)
			}
			for _, s := range res.Signals {
				s.Recv, s.Path, s.Frame = recv, signal.PathDirect, nil
				out = append(out, s)
			}
		}
	}
	return out[:n], nil
}

func truncate(ctx context.Context, dbURL string) error {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connecting to clear tables: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "TRUNCATE signals, rejected_frames"); err != nil {
		return fmt.Errorf("clearing tables: %w", err)
	}
	if _, err := c.Exec(ctx, "VACUUM ANALYZE signals_default"); err != nil {
		return fmt.Errorf("vacuuming signals: %w", err)
	}
	return nil
}

// ceiling copies rows into signals with conns parallel connections, one
// COPY per chunk of chunk rows (each its own transaction), and times it.
func ceiling(ctx context.Context, dbURL string, rows [][]any, conns, chunk int) (RefRun, error) {
	cs := make([]*pgx.Conn, conns)
	for i := range cs {
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return RefRun{}, fmt.Errorf("connecting for the ceiling: %w", err)
		}
		defer c.Close(context.Background())
		cs[i] = c
	}
	var next atomic.Int64
	var copied atomic.Int64
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	cpu0, cpuOK := readCPU()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= len(rows) {
					return
				}
				hi := min(lo+chunk, len(rows))
				n, err := c.CopyFrom(ctx, pgx.Identifier{"signals"}, store.SignalColumns, pgx.CopyFromRows(rows[lo:hi]))
				if err != nil {
					errs <- fmt.Errorf("copying the ceiling rows: %w", err)
					return
				}
				copied.Add(n)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return RefRun{}, err
	}
	return RefRun{Conns: conns, Rows: copied.Load(), Seconds: el.Seconds(), PerS: float64(copied.Load()) / el.Seconds(),
		CPU: cpuSince(cpu0, cpuOK, copied.Load())}, nil
}

// cpuSince is the CPU used since a (nil if a could not be read).
func cpuSince(a cpuSnap, ok bool, rows int64) *CPU {
	b, ok2 := readCPU()
	if !ok || !ok2 {
		return nil
	}
	c := cpuBetween(a, b, runtime.NumCPU(), rows)
	return &c
}

// naive inserts one signal per statement and transaction from a small
// pool of workers for d.
func naive(ctx context.Context, dbURL string, rows [][]any, workers int, d time.Duration) (RefRun, error) {
	cols := store.SignalColumns
	var sql bytes.Buffer
	w := bufio.NewWriter(&sql)
	fmt.Fprintf(w, "INSERT INTO signals (")
	for i, c := range cols {
		if i > 0 {
			w.WriteString(", ")
		}
		w.WriteString(c)
	}
	w.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			w.WriteString(", ")
		}
		fmt.Fprintf(w, "$%d", i+1)
	}
	w.WriteString(") ON CONFLICT (device_id, ts, record_hash) DO NOTHING")
	w.Flush()
	q := sql.String()
	var next, done atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	dctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	cpu0, cpuOK := readCPU()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				errs <- fmt.Errorf("connecting for the naive reference: %w", err)
				return
			}
			defer c.Close(context.Background())
			for dctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(rows) {
					return
				}
				if _, err := c.Exec(ctx, q, rows[i]...); err != nil {
					errs <- fmt.Errorf("naive insert: %w", err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return RefRun{}, err
	}
	return RefRun{Conns: workers, Rows: done.Load(), Seconds: el.Seconds(), PerS: float64(done.Load()) / el.Seconds(),
		CPU: cpuSince(cpu0, cpuOK, done.Load())}, nil
}
