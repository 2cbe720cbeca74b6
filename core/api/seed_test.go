package api

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// Device ids of the seeded test fleet.
const (
	devHealthy   = "356307042441013"
	devNoFix     = "356307042441021"
	devClock     = "356307042441039"
	devDuplicate = "861234567890123"
	devGappy     = "861234567890131"
	devJunk      = "FMB920-demo-07"
)

type seeded struct {
	st   *store.Store
	now  time.Time
	base time.Time
}

// seedFleet stores six devices with five hours of records every minute,
// each with a different fault, rule statistics and findings as the rules
// scheduler writes them, a rule error, rejected frames, and scores them.
func seedFleet(t *testing.T) *seeded {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(t), store.Options{MaxConns: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	// Five whole hours ending at the last full hour, so the newest window
	// is complete whatever the time of day.
	now := time.Now().UTC()
	end := now.Truncate(time.Hour)
	base := end.Add(-5 * time.Hour)
	type dev struct {
		id  string
		mod func(i int, s *signal.Signal) bool
	}
	noFixFrom := base.Add(2*time.Hour + 30*time.Minute)
	devs := []dev{
		{devHealthy, nil},
		{devNoFix, func(i int, s *signal.Signal) bool {
			if !s.TS.Before(noFixFrom) {
				s.Lat, s.Lon = 0, 0
			}
			return true
		}},
		// The clock runs 47 minutes behind: device times lag the receive
		// times.
		{devClock, func(i int, s *signal.Signal) bool { s.TS = s.TS.Add(-47*time.Minute - 5*time.Second); return true }},
		{devDuplicate, nil},
		{devGappy, func(i int, s *signal.Signal) bool {
			m := int(s.TS.Sub(base).Minutes())
			return m%60 < 20 || m%60 >= 45 || s.TS.Before(base.Add(2*time.Hour))
		}},
		{devJunk, func(i int, s *signal.Signal) bool {
			// No fix, and a clock three hours ahead.
			s.Lat, s.Lon, s.Valid = 0, 0, signal.False
			s.TS = s.TS.Add(3 * time.Hour)
			return true
		}},
	}
	var batch []signal.Signal
	for _, d := range devs {
		for i := 0; ; i++ {
			ts := base.Add(time.Duration(i) * time.Minute)
			if !ts.Before(end) {
				break
			}
			s := signal.New(d.id, ts)
			s.Recv, s.Protocol, s.Path = ts.Add(3*time.Second), "teltonika", signal.PathDirect
			s.DecoderVersion = "builtin:test"
			s.Lat, s.Lon, s.Valid, s.Speed, s.Sats = 54.68+float64(i)*1e-4, 25.28, signal.True, 42, 9
			if d.mod != nil && !d.mod(i, &s) {
				continue
			}
			batch = append(batch, s)
			if d.id == devDuplicate {
				c := s
				c.Speed = 43
				batch = append(batch, c)
			}
		}
	}
	if _, err := st.WriteSignals(ctx, batch); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Rules: gps.zero_island judged every signal; it failed the (0,0) ones.
	exec(`INSERT INTO rule_stats (device_id, hour, rule, rule_version, dimension, evaluated, passed, warned, failed, not_applicable)
		SELECT device_id, date_trunc('hour', ts), 'gps.zero_island', '1.0.0', 'validity', count(*),
			count(*) FILTER (WHERE NOT (lat = 0 AND lon = 0)), 0, count(*) FILTER (WHERE lat = 0 AND lon = 0), 0
		FROM signals GROUP BY 1, 2`)
	exec(`INSERT INTO findings (signal_id, device_id, ts, rule, rule_version, dimension, severity, status, reason, reason_text)
		SELECT id, device_id, ts, 'gps.zero_island', '1.0.0', 'validity', 'warning', 'fail', 1, 'position within 0.0001° of (0,0)'
		FROM signals WHERE lat = 0 AND lon = 0`)
	exec(`INSERT INTO rule_watermarks (rule, rule_version, start_id, last_id, evaluated, batches)
		SELECT 'gps.zero_island', '1.0.0', 0, max(id), count(*), 3 FROM signals`)
	exec(`INSERT INTO rule_stats (device_id, hour, rule, rule_version, dimension, evaluated, passed, warned, failed, not_applicable)
		SELECT device_id, date_trunc('hour', ts), 'obd.plausibility', '0.3.0', 'consistency', count(*), 0, 0, 0, count(*)
		FROM signals GROUP BY 1, 2`)
	exec(`INSERT INTO rule_errors (rule, rule_version, first_id, last_id, signals, kind, message, node)
		VALUES ('obd.plausibility', '0.3.0', 1, 1024, 1024, 'timeout', 'deadline of 2s exceeded after 1024 signals', 'test')`)
	exec(`INSERT INTO rejected_frames (recv, remote_addr, listener, protocol, device_id, reason, raw)
		VALUES (now(), '10.1.2.3:40411', 'teltonika', 'teltonika', $1, 'checksum: crc 0x1c2d, frame says 0x9f00', '\x000000000000000f08010000'::bytea)`, devJunk)
	sc := integrity.NewScorer(st.Pool(), integrity.DefaultParams(), hclog.NewNullLogger())
	if _, err := sc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	return &seeded{st: st, now: now, base: base}
}

func testHealth(t *testing.T, st *store.Store) *health.Health {
	h := health.New(hclog.NewNullLogger(), time.Second)
	h.Add(health.Probe{Name: "postgres", Check: func(ctx context.Context) (string, string) {
		if err := st.Ping(ctx); err != nil {
			return health.StatusFail, err.Error()
		}
		return health.StatusOK, "answered"
	}})
	h.Add(health.Probe{Name: "spool", Check: func(context.Context) (string, string) {
		return health.StatusWarn, "backlog 1200 signals in 3 records, oldest 4m10s"
	}})
	if err := h.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

// storeDeps are the Deps a node gives the API over st: its pool, its
// error classes and its rejected records.
func storeDeps(st *store.Store) Deps {
	return Deps{DB: st.Pool(), Unavailable: store.Unreachable, Records: storeRecords{st}}
}

// storeRecords lists rejected_records as the node does.
type storeRecords struct{ st *store.Store }

func (r storeRecords) RejectedRecords(ctx context.Context, f RejectedFilter, fn func(RejectedRow) error) error {
	sf := store.RejectedFilter(f)
	if sf.DeviceID != "" {
		sf.DeviceID = store.Printable(sf.DeviceID, store.MaxPrintable)
	}
	return store.ListRejectedRecords(ctx, r.st.Pool(), sf, func(row store.RejectedRow) error { return fn(RejectedRow(row)) })
}
