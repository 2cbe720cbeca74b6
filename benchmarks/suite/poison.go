package suite

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
)

// poisonShare is the share of poison records in the poison phase.
const poisonShare = 0.01

// poison runs steady twice on one node: first clean, then with 1 % poison
// records from attacker connections (oversized device ids through jsonl
// and h02, and records Postgres refuses through a CHECK constraint), and
// reports the second throughput against the first. Isolating a refused
// record must not turn into a stall: the goal is ≥ 0.8 × clean.
func (r *runner) poison(ctx context.Context) error {
	protos := r.protocols()
	for _, p := range []string{"h02", "jsonl"} {
		if !contains(protos, p) {
			protos = append(protos, p)
		}
	}
	cfg, err := r.serverConfig(r.db, false, protos)
	if err != nil {
		return err
	}
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck
	if err := execDB(ctx, r.db, loadgen.PoisonConstraint); err != nil {
		return fmt.Errorf("adding the poison constraint: %w", err)
	}
	half := r.o.Duration / 2
	hs := half.Seconds()

	// Clean phase.
	clean, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
	if err != nil {
		return err
	}
	r.drive(ctx, clean, half, nil)
	if _, err := r.settle(ctx, clean, 30*time.Second); err != nil {
		return err
	}
	cleanRes := *r.res
	cleanPerS := r.throughput(min(warmup, hs/3), hs)
	cleanSeries := r.res.Series
	r.res.Series = nil
	if err := truncate(ctx, r.db); err != nil {
		return err
	}

	// Poison phase: the same fleet size, and attackers at 1 % of the
	// clean phase's record rate.
	gen, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
	if err != nil {
		return err
	}
	rate := max(cleanPerS*poisonShare/(1-poisonShare), 1)
	pz, err := loadgen.NewPoisoner(loadgen.PoisonConfig{Targets: r.targets, Rate: rate})
	if err != nil {
		return err
	}
	pctx, pcancel := context.WithCancel(ctx)
	pdone := make(chan struct{})
	started := false
	attackFrom := min(warmup, hs/3)
	r.drive(ctx, gen, half, func(t float64, _ *Point) {
		// The attackers start after the warm-up, like the measured window.
		if !started && t >= attackFrom {
			started = true
			go func() { pz.Run(pctx); close(pdone) }()
		}
	})
	pcancel()
	if started {
		<-pdone
	}
	poisonSeries := r.res.Series
	poisonPerS := r.throughput(min(warmup, hs/3), hs)
	if _, err := r.settle(ctx, gen, 60*time.Second); err != nil {
		return err
	}
	pc := pz.Counters()

	// One chart: the poison phase follows the clean one.
	for i := range poisonSeries {
		poisonSeries[i].T += hs
	}
	r.res.Series = append(cleanSeries, poisonSeries...)
	r.res.Events = append(r.res.Events, Event{T: hs, Label: fmt.Sprintf("poison phase: %.0f poison records/s", rate)})
	// Lost and duplicates cover both phases; the latency and the
	// throughput are the poison phase's.
	r.res.SignalsAcked += cleanRes.SignalsAcked
	r.res.SignalsStored += cleanRes.SignalsStored
	r.res.Lost += cleanRes.Lost
	r.res.Duplicates += cleanRes.Duplicates
	r.res.StoredNotAcked += cleanRes.StoredNotAcked
	r.res.LostSample = append(r.res.LostSample, cleanRes.LostSample...)
	r.res.DurationS = r.o.Duration.Seconds()
	r.res.ThroughputPerS = poisonPerS
	x := r.res.Extras
	x["clean_per_s"] = cleanPerS
	x["clean_ack_p50_ms"], x["clean_ack_p99_ms"] = cleanRes.AckLatencyMS.P50, cleanRes.AckLatencyMS.P99
	x["poison_per_s"] = poisonPerS
	if cleanPerS > 0 {
		x["poison_to_clean"] = poisonPerS / cleanPerS
	}
	x["poison_ack_p99_ms"] = r.res.AckLatencyMS.P99
	x["poison_rate_offered_per_s"] = rate
	x["poison_sent"], x["poison_acked"], x["poison_refused"] = int64(pc.Sent), int64(pc.Acked), int64(pc.Refused)
	x["poison_no_answer"], x["poison_dial_errors"] = int64(pc.NoAnswer), int64(pc.DialErrors)
	x["poison_sent_by_kind"], x["poison_acked_by_kind"] = int64Map(pc.ByKind), int64Map(pc.AckedBy)
	// The share of poison among the records sent while the attackers ran.
	if good := poisonPerS * (hs - attackFrom); good > 0 {
		x["poison_share"] = float64(pc.Sent) / (float64(pc.Sent) + good)
	}
	if n, ok := countRejectedRecords(ctx, r.db); ok {
		x["rejected_records"] = n
	}
	r.res.RSSNote = "peak VmRSS of the bench process: fleetcore node, load generator and attackers together"
	return r.stopNode()
}

func int64Map(m map[string]uint64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// execDB runs one statement on the benchmark database.
func execDB(ctx context.Context, db, sql string) error {
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// countRejectedRecords counts the records Postgres refused and the store
// kept (the table exists once the store isolates refused records).
func countRejectedRecords(ctx context.Context, db string) (int64, bool) {
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return 0, false
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM rejected_records").Scan(&n); err != nil {
		return 0, false
	}
	return n, true
}
