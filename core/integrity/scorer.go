package integrity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/signal"
)

// idLookback re-reads this many signal ids behind the watermark on every
// run: ids come from a sequence and concurrent batches commit out of order,
// so a lower id can become visible after a higher one was seen. Reading
// them again is harmless because recomputation is idempotent.
const idLookback = 20000

// learnRecords is how many of a device's newest records the learned
// reporting interval is taken from.
const learnRecords = 1000

// Scorer is the database layer: it folds new signals into hourly windows,
// scores the devices they belong to, and records alert transitions in the
// same transaction as the score (the outbox alert_events is delivered by a
// Publisher after commit).
type Scorer struct {
	pool *pgxpool.Pool
	p    atomic.Pointer[Params]
	log  hclog.Logger
}

// NewScorer returns a scorer over the pool.
func NewScorer(pool *pgxpool.Pool, p Params, log hclog.Logger) *Scorer {
	s := &Scorer{pool: pool, log: log}
	s.p.Store(&p)
	return s
}

// SetParams replaces the thresholds from the next device scored on (a
// config reload); a round in progress finishes each device with the
// parameters it started it with.
func (s *Scorer) SetParams(p Params) { s.p.Store(&p) }

// Params returns the thresholds in use.
func (s *Scorer) Params() Params { return *s.p.Load() }

// RunStats counts what one round did.
type RunStats struct {
	Devices     int // devices scored
	Windows     int // hourly windows recomputed
	Opened      int // alerts opened
	Cleared     int // alerts cleared
	LastSignal  int64
	LastFinding int64
}

type deviceWork struct {
	hours map[time.Time]bool
}

// Run does one round: the organizer job "score".
func (s *Scorer) Run(ctx context.Context) error {
	_, err := s.RunOnce(ctx)
	return err
}

// RunOnce does one round and reports what it did.
func (s *Scorer) RunOnce(ctx context.Context) (RunStats, error) {
	var st RunStats
	sigWM, err := s.watermark(ctx, "signals")
	if err != nil {
		return st, err
	}
	findWM, err := s.watermark(ctx, "findings")
	if err != nil {
		return st, err
	}
	var maxSig, maxFind int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM signals").Scan(&maxSig); err != nil {
		return st, fmt.Errorf("reading newest signal id: %w", err)
	}
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM findings").Scan(&maxFind); err != nil {
		return st, fmt.Errorf("reading newest finding id: %w", err)
	}
	work := map[string]*deviceWork{}
	get := func(dev string) *deviceWork {
		w := work[dev]
		if w == nil {
			w = &deviceWork{hours: map[time.Time]bool{}}
			work[dev] = w
		}
		return w
	}
	rows, err := s.pool.Query(ctx, `SELECT device_id, date_trunc('hour', ts) FROM signals
		WHERE id > $1 AND id <= $2 GROUP BY 1, 2`, max(0, sigWM-idLookback), maxSig)
	if err != nil {
		return st, fmt.Errorf("finding new signals: %w", err)
	}
	for rows.Next() {
		var dev string
		var h time.Time
		if err := rows.Scan(&dev, &h); err != nil {
			rows.Close()
			return st, fmt.Errorf("reading new signals: %w", err)
		}
		get(dev).hours[h.UTC()] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("finding new signals: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT DISTINCT device_id FROM findings WHERE id > $1 AND id <= $2`, findWM, maxFind)
	if err != nil {
		return st, fmt.Errorf("finding new findings: %w", err)
	}
	for rows.Next() {
		var dev string
		if err := rows.Scan(&dev); err != nil {
			rows.Close()
			return st, fmt.Errorf("reading new findings: %w", err)
		}
		get(dev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("finding new findings: %w", err)
	}
	devs := make([]string, 0, len(work))
	for d := range work {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, dev := range devs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, opened, cleared, err := s.scoreDevice(ctx, dev, work[dev].hours)
		if err != nil {
			return st, fmt.Errorf("scoring device %s: %w", dev, err)
		}
		st.Devices++
		st.Windows += n
		st.Opened += opened
		st.Cleared += cleared
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO integrity_state (name, value) VALUES ('signals', $1), ('findings', $2)
		ON CONFLICT (name) DO UPDATE SET value = greatest(integrity_state.value, excluded.value)`, maxSig, maxFind); err != nil {
		return st, fmt.Errorf("advancing score watermarks: %w", err)
	}
	st.LastSignal, st.LastFinding = maxSig, maxFind
	if st.Devices > 0 {
		s.log.Debug("scored devices", "devices", st.Devices, "windows", st.Windows, "opened", st.Opened, "cleared", st.Cleared)
	}
	return st, nil
}

// Rescore recomputes every hour of one device from scratch (after a
// decoder fix or a rule change, say).
func (s *Scorer) Rescore(ctx context.Context, dev string) error {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT date_trunc('hour', ts) FROM signals WHERE device_id = $1`, dev)
	if err != nil {
		return fmt.Errorf("listing hours of %s: %w", dev, err)
	}
	hours, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return fmt.Errorf("listing hours of %s: %w", dev, err)
	}
	set := map[time.Time]bool{}
	for _, h := range hours {
		set[h.UTC()] = true
	}
	_, _, _, err = s.scoreDevice(ctx, dev, set)
	return err
}

func (s *Scorer) watermark(ctx context.Context, name string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, "SELECT value FROM integrity_state WHERE name = $1", name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s watermark: %w", name, err)
	}
	return v, nil
}

// interval is the configured expected interval or the one learned from the
// device's newest records.
func (s *Scorer) interval(ctx context.Context, dev string) (int64, error) {
	if s.Params().ExpectedInterval > 0 {
		return s.Params().ExpectedInterval.Milliseconds(), nil
	}
	rows, err := s.pool.Query(ctx, `SELECT ts FROM signals WHERE device_id = $1 ORDER BY ts DESC LIMIT $2`, dev, learnRecords)
	if err != nil {
		return 0, fmt.Errorf("learning reporting interval: %w", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return 0, fmt.Errorf("learning reporting interval: %w", err)
	}
	return LearnInterval(ts), nil
}

func (s *Scorer) scoreDevice(ctx context.Context, dev string, hours map[time.Time]bool) (windows, opened, cleared int, err error) {
	interval, err := s.interval(ctx, dev)
	if err != nil {
		return 0, 0, 0, err
	}
	// A late record can change the first gap of the next window with data.
	for _, h := range sortedHours(hours) {
		var next *time.Time
		if err := s.pool.QueryRow(ctx, `SELECT min(hour) FROM integrity_windows WHERE device_id = $1 AND hour > $2`, dev, h).Scan(&next); err != nil {
			return 0, 0, 0, fmt.Errorf("finding the next window: %w", err)
		}
		if next != nil {
			hours[next.UTC()] = true
		}
	}
	var lastRecv time.Time
	for _, h := range sortedHours(hours) {
		w, recv, err := s.aggregateHour(ctx, dev, h, interval)
		if err != nil {
			return 0, 0, 0, err
		}
		if recv.After(lastRecv) {
			lastRecv = recv
		}
		if err := s.storeWindow(ctx, dev, w); err != nil {
			return 0, 0, 0, err
		}
		windows++
	}
	ws, err := s.loadWindows(ctx, dev)
	if err != nil {
		return 0, 0, 0, err
	}
	res := Compute(s.Params(), dev, ws)
	opened, cleared, err = s.store(ctx, dev, res, lastRecv)
	return windows, opened, cleared, err
}

func sortedHours(m map[time.Time]bool) []time.Time {
	out := make([]time.Time, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

func (s *Scorer) aggregateHour(ctx context.Context, dev string, h time.Time, interval int64) (WindowStats, time.Time, error) {
	var prev *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT max(ts) FROM signals WHERE device_id = $1 AND ts < $2`, dev, h).Scan(&prev); err != nil {
		return WindowStats{}, time.Time{}, fmt.Errorf("reading previous record: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT ts, recv, lat, lon, valid FROM signals
		WHERE device_id = $1 AND ts >= $2 AND ts < $3`, dev, h, h.Add(time.Hour))
	if err != nil {
		return WindowStats{}, time.Time{}, fmt.Errorf("reading records of %s: %w", h.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var recs []Record
	var lastRecv time.Time
	for rows.Next() {
		var r Record
		var lat, lon *float64
		var valid *bool
		if err := rows.Scan(&r.TS, &r.Recv, &lat, &lon, &valid); err != nil {
			return WindowStats{}, time.Time{}, fmt.Errorf("reading records: %w", err)
		}
		r.Lat, r.Lon = orNaN(lat), orNaN(lon)
		if valid != nil {
			r.Valid = signal.FlagOf(*valid)
		}
		if r.Recv.After(lastRecv) {
			lastRecv = r.Recv
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return WindowStats{}, time.Time{}, fmt.Errorf("reading records: %w", err)
	}
	var p time.Time
	if prev != nil {
		p = *prev
	}
	return Aggregate(h, p, recs, interval, s.Params().ClockDriftLimit.Milliseconds()), lastRecv, nil
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func (s *Scorer) storeWindow(ctx context.Context, dev string, w WindowStats) error {
	if w.Records == 0 {
		_, err := s.pool.Exec(ctx, `DELETE FROM integrity_windows WHERE device_id = $1 AND hour = $2`, dev, w.Hour)
		if err != nil {
			return fmt.Errorf("deleting empty window: %w", err)
		}
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO integrity_windows (device_id, hour, records, missing, max_gap_ms, interval_ms,
		timely, late, early, lag_median_ms, lag_min_ms, lag_max_ms, gps_checked, gps_bad, gps_bad_since, gps_all_bad,
		dup, first_ts, last_ts)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)
		ON CONFLICT (device_id, hour) DO UPDATE SET records = excluded.records, missing = excluded.missing,
		max_gap_ms = excluded.max_gap_ms, interval_ms = excluded.interval_ms, timely = excluded.timely,
		late = excluded.late, early = excluded.early, lag_median_ms = excluded.lag_median_ms,
		lag_min_ms = excluded.lag_min_ms, lag_max_ms = excluded.lag_max_ms, gps_checked = excluded.gps_checked,
		gps_bad = excluded.gps_bad, gps_bad_since = excluded.gps_bad_since, gps_all_bad = excluded.gps_all_bad,
		dup = excluded.dup, first_ts = excluded.first_ts, last_ts = excluded.last_ts, computed = now()`,
		dev, w.Hour, w.Records, w.Missing, w.MaxGapMS, w.IntervalMS, w.Timely, w.Late, w.Early,
		w.LagMedianMS, w.LagMinMS, w.LagMaxMS, w.GPSChecked, w.GPSBad, nullTime(w.GPSBadSince), w.GPSAllBad,
		w.Dup, w.FirstTS, w.LastTS)
	if err != nil {
		return fmt.Errorf("storing window %s: %w", w.Hour.Format(time.RFC3339), err)
	}
	return nil
}

// loadWindows reads the device's newest windows with data and the rule
// statistics of those hours.
func (s *Scorer) loadWindows(ctx context.Context, dev string) ([]Window, error) {
	rows, err := s.pool.Query(ctx, `SELECT hour, records, missing, max_gap_ms, interval_ms, timely, late, early,
		lag_median_ms, lag_min_ms, lag_max_ms, gps_checked, gps_bad, gps_bad_since, gps_all_bad, dup, first_ts, last_ts
		FROM integrity_windows WHERE device_id = $1 ORDER BY hour DESC LIMIT $2`, dev, 2*MaxWindows)
	if err != nil {
		return nil, fmt.Errorf("loading windows: %w", err)
	}
	defer rows.Close()
	var ws []Window
	idx := map[time.Time]int{}
	for rows.Next() {
		var w WindowStats
		var since *time.Time
		if err := rows.Scan(&w.Hour, &w.Records, &w.Missing, &w.MaxGapMS, &w.IntervalMS, &w.Timely, &w.Late, &w.Early,
			&w.LagMedianMS, &w.LagMinMS, &w.LagMaxMS, &w.GPSChecked, &w.GPSBad, &since, &w.GPSAllBad, &w.Dup,
			&w.FirstTS, &w.LastTS); err != nil {
			return nil, fmt.Errorf("loading windows: %w", err)
		}
		w.Hour, w.FirstTS, w.LastTS = w.Hour.UTC(), w.FirstTS.UTC(), w.LastTS.UTC()
		if since != nil {
			w.GPSBadSince = since.UTC()
		}
		idx[w.Hour] = len(ws)
		ws = append(ws, Window{Stats: w})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading windows: %w", err)
	}
	rows.Close()
	if len(ws) == 0 {
		return nil, nil
	}
	oldest := ws[len(ws)-1].Stats.Hour
	// Rules in shadow mode do not count (core/rules, rules.mode).
	rrows, err := s.pool.Query(ctx, `SELECT hour, rule, rule_version, dimension, evaluated - not_applicable, passed, warned, failed
		FROM rule_stats WHERE device_id = $1 AND hour >= $2 AND NOT shadow`, dev, oldest)
	if err != nil {
		return nil, fmt.Errorf("loading rule statistics: %w", err)
	}
	defer rrows.Close()
	for rrows.Next() {
		var h time.Time
		var c CheckCounts
		if err := rrows.Scan(&h, &c.Check, &c.Version, &c.Dimension, &c.Applicable, &c.Passed, &c.Warned, &c.Failed); err != nil {
			return nil, fmt.Errorf("loading rule statistics: %w", err)
		}
		if i, ok := idx[h.UTC()]; ok {
			ws[i].Rules = append(ws[i].Rules, c)
		}
	}
	if err := rrows.Err(); err != nil {
		return nil, fmt.Errorf("loading rule statistics: %w", err)
	}
	return ws, nil
}

type openAlert struct {
	id     int64
	reason string
}

// store writes the score, its history and the alert transitions in one
// transaction.
func (s *Scorer) store(ctx context.Context, dev string, r Result, lastRecv time.Time) (opened, cleared int, err error) {
	dims, _ := json.Marshal(r.Dimensions)
	losses, _ := json.Marshal(nonNil(r.Losses))
	type change struct {
		kind, state, reason string
	}
	var changes []change
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		opened, cleared, changes = 0, 0, nil
		if _, err := tx.Exec(ctx, `INSERT INTO device_scores (device_id, score, dimensions, losses, windows, last_ts,
			last_recv, interval_ms, clock_offset_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (device_id) DO UPDATE SET score = excluded.score, dimensions = excluded.dimensions,
			losses = excluded.losses, windows = excluded.windows, last_ts = excluded.last_ts,
			last_recv = greatest(device_scores.last_recv, excluded.last_recv), interval_ms = excluded.interval_ms,
			clock_offset_ms = excluded.clock_offset_ms, computed = now()`,
			dev, r.ScoreCenti, dims, losses, r.Windows, nullTime(r.LastTS), nullTime(lastRecv), r.IntervalMS, r.ClockOffsetMS); err != nil {
			return fmt.Errorf("storing score: %w", err)
		}
		if len(r.History) > 0 {
			hours := make([]time.Time, len(r.History))
			scores := make([]int64, len(r.History))
			for i, p := range r.History {
				hours[i], scores[i] = p.Hour, p.ScoreCenti
			}
			if _, err := tx.Exec(ctx, `INSERT INTO score_history (device_id, hour, score)
				SELECT $1, h, s FROM unnest($2::timestamptz[], $3::int[]) AS x(h, s)
				ON CONFLICT (device_id, hour) DO UPDATE SET score = excluded.score`, dev, hours, scores); err != nil {
				return fmt.Errorf("storing score history: %w", err)
			}
		}
		rows, err := tx.Query(ctx, `SELECT id, kind, reason FROM alerts WHERE device_id = $1 AND state = 'open' FOR UPDATE`, dev)
		if err != nil {
			return fmt.Errorf("reading open alerts: %w", err)
		}
		open := map[string]openAlert{}
		for rows.Next() {
			var a openAlert
			var kind string
			if err := rows.Scan(&a.id, &kind, &a.reason); err != nil {
				rows.Close()
				return fmt.Errorf("reading open alerts: %w", err)
			}
			open[kind] = a
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading open alerts: %w", err)
		}
		want := map[string]bool{}
		for _, a := range r.Alerts {
			want[a.Kind] = true
			if cur, ok := open[a.Kind]; ok {
				if cur.reason != a.Reason {
					if _, err := tx.Exec(ctx, `UPDATE alerts SET reason = $2 WHERE id = $1`, cur.id, a.Reason); err != nil {
						return fmt.Errorf("updating alert: %w", err)
					}
				}
				continue
			}
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO alerts (device_id, kind, state, since, reason)
				VALUES ($1, $2, 'open', $3, $4) RETURNING id`, dev, a.Kind, nullTime(a.Since), a.Reason).Scan(&id); err != nil {
				return fmt.Errorf("opening alert: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO alert_events (alert_id, device_id, kind, state, reason)
				VALUES ($1, $2, $3, 'open', $4)`, id, dev, a.Kind, a.Reason); err != nil {
				return fmt.Errorf("recording alert event: %w", err)
			}
			opened++
			changes = append(changes, change{a.Kind, "open", a.Reason})
		}
		for kind, cur := range open {
			if want[kind] || !scorerKinds(kind) {
				continue
			}
			reason := clearReason(kind, r)
			if _, err := tx.Exec(ctx, `UPDATE alerts SET state = 'cleared', cleared = now(), clear_reason = $2 WHERE id = $1`,
				cur.id, reason); err != nil {
				return fmt.Errorf("clearing alert: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO alert_events (alert_id, device_id, kind, state, reason)
				VALUES ($1, $2, $3, 'cleared', $4)`, cur.id, dev, kind, reason); err != nil {
				return fmt.Errorf("recording alert event: %w", err)
			}
			cleared++
			changes = append(changes, change{kind, "cleared", reason})
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, c := range changes {
		if c.state == "open" {
			s.log.Warn("alert opened", "device", dev, "kind", c.kind, "reason", c.reason)
		} else {
			s.log.Info("alert cleared", "device", dev, "kind", c.kind, "reason", c.reason)
		}
	}
	return opened, cleared, nil
}

func clearReason(kind string, r Result) string {
	if kind == KindScoreLow {
		return "score " + FormatCenti(r.ScoreCenti) + " recovered"
	}
	return "condition no longer present in the newest window"
}

func nonNil(l []Loss) []Loss {
	if l == nil {
		return []Loss{}
	}
	return l
}
