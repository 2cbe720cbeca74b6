package suite

import (
	"context"
	"fmt"
	"github.com/fleetcore/fleetcore/internal/faultproxy"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
)

// drive runs gen for d, sampling once a second into the series (and the
// progress bar); tick, when set, runs after each sample and may fill
// Point.Extra or act (cut Postgres, start a burst). It returns when every
// device has stopped.
func (r *runner) drive(ctx context.Context, gen *loadgen.Generator, d time.Duration, tick func(t float64, p *Point)) {
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var stopProfile func()
	if r.o.Profile != nil {
		stopProfile = r.o.Profile()
	}
	done := make(chan struct{})
	r.start = time.Now()
	cpu0, cpuOK := readCPU()
	acked0 := gen.Counters().Acked
	go func() { gen.Run(lctx); close(done) }()
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-done:
			if stopProfile != nil {
				stopProfile()
			}
			if cpu1, ok := readCPU(); ok && cpuOK {
				c := cpuBetween(cpu0, cpu1, r.res.Machine.CPUs, int64(gen.Counters().Acked-acked0))
				r.res.CPU = &c
			}
			fmt.Fprintln(r.o.Progress)
			return
		case now := <-tk.C:
			s := gen.Sample()
			c := gen.Counters()
			p := Point{
				T: now.Sub(r.start).Round(100 * time.Millisecond).Seconds(), AckedPerS: float64(s.Acked),
				P50: loadgen.Millis(s.Latency.Quantile(0.5)), P99: loadgen.Millis(s.Latency.Quantile(0.99)),
				MaxMS: loadgen.Millis(s.Latency.Max()), RSS: rss(), Connected: c.Connected, Backlog: c.Backlog,
			}
			if tick != nil {
				tick(p.T, &p)
			}
			r.res.Series = append(r.res.Series, p)
			r.res.RSSBytes = max(r.res.RSSBytes, p.RSS)
			r.progress(p, d, c)
		}
	}
}

func (r *runner) progress(p Point, d time.Duration, c loadgen.Counters) {
	const width = 30
	frac := min(p.T/d.Seconds(), 1)
	bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
	fmt.Fprintf(r.o.Progress, "\r%s [%s] %3.0f/%.0fs %8.0f rec/s  p99 %7.1f ms  acked %9d  conns %6d ",
		r.o.Scenario, bar, p.T, d.Seconds(), p.AckedPerS, p.P99, c.Acked, c.Connected)
}

// settle waits (up to limit) until the database holds every record the
// generator saw acked, then records the verdict; it returns how long the
// wait took (the replay drain after an outage).
func (r *runner) settle(ctx context.Context, gen *loadgen.Generator, limit time.Duration) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, r.db)
	if err != nil {
		return 0, fmt.Errorf("connecting to verify: %w", err)
	}
	defer conn.Close(context.Background())
	ledger := gen.Ledger()
	start := time.Now()
	var v loadgen.Verdict
	for {
		v, err = loadgen.Verify(ctx, conn, ledger)
		if err != nil {
			return 0, err
		}
		if v.Lost == 0 || time.Since(start) > limit {
			break
		}
		fmt.Fprintf(r.o.Progress, "\r%s: waiting for the backlog to reach Postgres: %d acked records not stored yet ", r.o.Scenario, v.Lost)
		time.Sleep(time.Second)
	}
	waited := time.Since(start)
	res := r.res
	res.SignalsAcked, res.SignalsStored, res.Lost, res.Duplicates = v.Acked, v.Stored, v.Lost, v.Duplicates
	res.StoredNotAcked, res.LostSample = v.Unacked, v.Missing
	res.Generator = gen.Counters()
	lat := gen.TotalLatency()
	res.AckLatencyMS = quantiles(&lat)
	paths := map[string]int64{}
	rows, err := conn.Query(ctx, "SELECT path, count(*) FROM signals GROUP BY path")
	if err == nil {
		for rows.Next() {
			var p string
			var n int64
			if rows.Scan(&p, &n) == nil {
				paths[p] = n
			}
		}
		rows.Close()
	}
	res.Extras["stored_by_path"] = paths
	var rejected int64
	if conn.QueryRow(ctx, "SELECT count(*) FROM rejected_frames").Scan(&rejected) == nil {
		res.Extras["quarantined_frames"] = rejected
	}
	return waited, nil
}

// throughput averages the acked rate over the series from `from` seconds on.
func (r *runner) throughput(from, to float64) float64 {
	var sum float64
	var n int
	for _, p := range r.res.Series {
		if p.T > from && p.T <= to {
			sum += p.AckedPerS
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func (r *runner) worstP99(from, to float64) float64 {
	var w float64
	for _, p := range r.res.Series {
		if p.T > from && p.T <= to {
			w = max(w, p.P99)
		}
	}
	return w
}

const warmup = 3.0 // seconds excluded from the steady throughput

func (r *runner) steady(ctx context.Context) error {
	cfg, err := r.serverConfig(r.db, false, r.protocols())
	if err != nil {
		return err
	}
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck // stopped explicitly below
	gen, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
	if err != nil {
		return err
	}
	r.drive(ctx, gen, r.o.Duration, nil)
	if _, err := r.settle(ctx, gen, 30*time.Second); err != nil {
		return err
	}
	r.res.DurationS = r.o.Duration.Seconds()
	r.res.ThroughputPerS = r.throughput(min(warmup, r.o.Duration.Seconds()/3), r.o.Duration.Seconds())
	r.res.RSSNote = "peak VmRSS of the bench process: fleetcore node and load generator together"
	return r.stopNode()
}

func (r *runner) burst(ctx context.Context) error {
	cfg, err := r.serverConfig(r.db, false, r.protocols())
	if err != nil {
		return err
	}
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck
	gen, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
	if err != nil {
		return err
	}
	const perDevice = 100
	at := r.o.Duration.Seconds() / 4
	fired := false
	var base int64
	drained := -1.0
	r.drive(ctx, gen, r.o.Duration, func(t float64, p *Point) {
		if !fired && t >= at {
			base = p.Backlog
			gen.Burst(perDevice)
			fired = true
			r.res.Events = append(r.res.Events, Event{T: t, Label: fmt.Sprintf("burst: %d records per device", perDevice)})
			return
		}
		if fired && drained < 0 && p.Backlog <= max(2*base, int64(r.o.Devices)) {
			drained = t - at
			r.res.Events = append(r.res.Events, Event{T: t, Label: "backlog drained"})
		}
	})
	if _, err := r.settle(ctx, gen, 30*time.Second); err != nil {
		return err
	}
	d := r.o.Duration.Seconds()
	r.res.DurationS = d
	r.res.ThroughputPerS = r.throughput(0, d)
	var peak float64
	for _, p := range r.res.Series {
		peak = max(peak, p.AckedPerS)
	}
	r.res.Extras["burst_records"] = perDevice * r.o.Devices
	r.res.Extras["burst_at_s"] = at
	r.res.Extras["drain_s"] = drained // -1: not drained before the end
	r.res.Extras["peak_per_s"] = peak
	r.res.Extras["baseline_per_s"] = r.throughput(min(warmup, at/2), at)
	r.res.Extras["baseline_p99_ms"] = r.worstP99(min(warmup, at/2), at)
	r.res.Extras["burst_worst_p99_ms"] = r.worstP99(at, d)
	r.res.RSSNote = "peak VmRSS of the bench process: fleetcore node and load generator together"
	return r.stopNode()
}

func (r *runner) manyConnections(ctx context.Context) error {
	want := uint64(r.o.IdleConns + r.o.Devices + 256)
	got, err := loadgen.RaiseFileLimit(want)
	if err != nil {
		// The hard limit binds this process (the server side) and the
		// child alike: open what fits and say so.
		fit := int(got) - r.o.Devices - 256
		r.res.note("open-file limit: %v; this machine allows %d descriptors per process without CAP_SYS_RESOURCE, so %d idle connections are opened instead of %d", err, got, fit, r.o.IdleConns)
		r.o.IdleConns = max(fit, 0)
	}
	cfg, err := r.serverConfig(r.db, false, r.protocols())
	if err != nil {
		return err
	}
	for _, l := range cfg.Listeners {
		l.MaxConnections = max(l.MaxConnections, r.o.IdleConns+r.o.Devices+1000)
	}
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck
	gen, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
	if err != nil {
		return err
	}
	target := r.targets[r.mix[0].Protocol]
	openConns := func() int64 { return r.node.Gateway().Stats().Open.Load() }
	var before, after uint64
	var openBefore, openAfter int64
	var closeIdle func() error
	phase := 0
	var deadline, grew time.Time
	var lastOpen int64
	r.drive(ctx, gen, r.o.Duration, func(t float64, p *Point) {
		p.Extra = float64(openConns())
		switch {
		case phase == 0 && t >= 3:
			before, openBefore = settledRSS(), openConns()
			r.res.Events = append(r.res.Events, Event{T: t, Label: fmt.Sprintf("opening %d idle connections", r.o.IdleConns)})
			if r.o.SpawnIdle != nil {
				closeIdle, err = r.o.SpawnIdle(ctx, target, r.o.IdleConns)
				r.res.RSSNote = "idle connections held by a child process (fleetcore simulate -idle); RSS is the node's alone plus the in-process busy devices, which are present in both readings"
			} else {
				closeIdle, err = r.idleInProcess(ctx, target, r.o.IdleConns)
				r.res.RSSNote = "idle connections held in this process (socket only, no goroutine or buffer): the per-connection figure is an upper bound"
			}
			if err != nil {
				r.res.note("opening idle connections: %v", err)
				phase = 3
				return
			}
			deadline, grew = time.Now().Add(90*time.Second), time.Now()
			phase = 1
		case phase == 1:
			open := openConns()
			if open > lastOpen {
				lastOpen, grew = open, time.Now()
			}
			// All open, or no progress for 5 s once they started coming
			// (refused beyond a limit), or 90 s.
			started := open-openBefore > 0
			if open-openBefore >= int64(r.o.IdleConns) || (started && time.Since(grew) > 5*time.Second) || time.Now().After(deadline) {
				r.res.Events = append(r.res.Events, Event{T: t, Label: fmt.Sprintf("%d connections open", open)})
				phase = 2
			}
		case phase == 2:
			after, openAfter = settledRSS(), openConns()
			phase = 3
		}
	})
	if closeIdle != nil {
		if err := closeIdle(); err != nil {
			r.res.note("closing idle connections: %v", err)
		}
	}
	if _, err := r.settle(ctx, gen, 30*time.Second); err != nil {
		return err
	}
	d := r.o.Duration.Seconds()
	r.res.DurationS = d
	r.res.ThroughputPerS = r.throughput(min(warmup, d/3), d)
	idle := max(openAfter-openBefore, 0)
	r.res.Extras["idle_connections"] = idle
	r.res.Extras["connections_open_peak"] = openAfter
	r.res.Extras["rss_before_bytes"] = before
	r.res.Extras["rss_after_bytes"] = after
	if idle > 0 && after > before {
		r.res.Extras["rss_per_idle_connection_bytes"] = float64(after-before) / float64(idle)
	} else {
		r.res.Extras["rss_per_idle_connection_bytes"] = 0.0
		r.res.note("idle connections did not all open before the run ended (%d of %d): lengthen -duration", idle, r.o.IdleConns)
	}
	return r.stopNode()
}

// idleInProcess opens n idle teltonika connections from this process.
func (r *runner) idleInProcess(ctx context.Context, target string, n int) (func() error, error) {
	g, err := loadgen.New(loadgen.Config{
		Targets: map[string]string{"teltonika": target}, Mix: []loadgen.Share{{Protocol: "teltonika", Weight: 1}},
		Devices: n, Idle: true, RampUp: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { g.Run(ictx); close(done) }()
	return func() error { cancel(); <-done; return nil }, nil
}

func (r *runner) outage(ctx context.Context) error {
	p, err := faultproxy.Start(hostPort(r.db))
	if err != nil {
		return err
	}
	defer p.Close()
	cfg, err := r.serverConfig(withHost(r.db, p.Addr()), true, r.protocols())
	if err != nil {
		return err
	}
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck
	gen, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
	if err != nil {
		return err
	}
	d := r.o.Duration.Seconds()
	cutAt, restoreAt := d/4, d/2
	phase := 0
	r.drive(ctx, gen, r.o.Duration, func(t float64, pt *Point) {
		switch {
		case phase == 0 && t >= cutAt:
			p.Cut()
			r.res.Events = append(r.res.Events, Event{T: t, Label: "Postgres cut"})
			cutAt, phase = t, 1
		case phase == 1 && t >= restoreAt:
			p.Restore()
			r.res.Events = append(r.res.Events, Event{T: t, Label: "Postgres restored"})
			restoreAt, phase = t, 2
		}
	})
	p.Restore()
	drain, err := r.settle(ctx, gen, 120*time.Second)
	if err != nil {
		return err
	}
	r.res.DurationS = d
	r.res.ThroughputPerS = r.throughput(0, d)
	before := r.throughput(min(warmup, cutAt/2), cutAt)
	during := r.throughput(cutAt+1, restoreAt)
	after := r.throughput(restoreAt, d)
	r.res.Extras["cut_at_s"], r.res.Extras["restored_at_s"] = cutAt, restoreAt
	r.res.Extras["before_per_s"], r.res.Extras["during_outage_per_s"], r.res.Extras["after_restore_per_s"] = before, during, after
	r.res.Extras["outage_p99_ms_worst_second"] = r.worstP99(cutAt, restoreAt)
	if before > 0 {
		r.res.Extras["during_to_before"] = during / before
	}
	r.res.Extras["drain_after_load_s"] = drain.Seconds()
	r.res.RSSNote = "peak VmRSS of the bench process: fleetcore node and load generator together"
	return r.stopNode()
}

func hostPort(dbURL string) string {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return "127.0.0.1:5432"
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}
