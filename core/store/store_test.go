package store_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	return openStoreAt(t, testenv.Database(t))
}

// openStoreAt opens another Store (another process, as far as the store
// knows: it has not seen any of the keys) on a database.
func openStoreAt(t *testing.T, url string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func sig(dev string, i int) signal.Signal {
	s := signal.New(dev, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i)*time.Second))
	s.Lat, s.Lon, s.Speed = 54.1+float64(i)/1000, 25.3, float64(i)
	s.Valid = signal.True
	s.SetAttr("io239", 1)
	s.Protocol = "test"
	s.Path = signal.PathDirect
	s.Frame = []byte(fmt.Sprintf("%s-frame-%d", dev, i/10))
	s.Recv = time.Now()
	return s
}

func count(t *testing.T, st *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIntegrationMigrateConcurrentlyOnce(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url := testenv.Database(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	applied := make(chan []int, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			v, err := store.Migrate(ctx, c)
			if err != nil {
				errs <- err
				return
			}
			applied <- v
		}()
	}
	wg.Wait()
	close(errs)
	close(applied)
	for err := range errs {
		t.Fatal(err)
	}
	ms, _ := store.Migrations()
	total := 0
	for v := range applied {
		total += len(v)
	}
	if total != len(ms) {
		t.Fatalf("4 concurrent migrators applied %d migrations in all, want each of %d exactly once", total, len(ms))
	}
}

func TestIntegrationWriteSignalsIdempotent(t *testing.T) {
	testenv.Integration(t)
	for _, tc := range []struct {
		name      string
		sameStore bool
	}{
		// The writing process remembers the keys it committed and leaves
		// resends out of the COPY.
		{"resends known to this process", true},
		// Another process (another node, a restart) does not: the COPY
		// fails on the unique key and the lookup path stores the rest.
		{"resends known only to the database", false},
	} {
		t.Run(tc.name, func(t *testing.T) { testWriteIdempotent(t, tc.sameStore) })
	}
}

func testWriteIdempotent(t *testing.T, sameStore bool) {
	ctx := context.Background()
	url := testenv.Database(t)
	st := openStoreAt(t, url)
	next := func() *store.Store {
		if sameStore {
			return st
		}
		return openStoreAt(t, url)
	}
	batch := make([]signal.Signal, 100)
	for i := range batch {
		batch[i] = sig("dev1", i)
	}
	batch[5].Lat = math.NaN() // stored as NULL
	res, err := st.WriteSignals(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 100 || res.Duplicates != 0 {
		t.Fatalf("first write: %+v, want 100 inserted", res)
	}
	// A resend of half of the batch plus 50 new records: the COPY fails on
	// the conflict and the idempotent path stores only the new ones.
	mixed := append([]signal.Signal(nil), batch[50:]...)
	for i := 100; i < 150; i++ {
		mixed = append(mixed, sig("dev1", i))
	}
	res, err = next().WriteSignals(ctx, mixed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 50 || res.Duplicates != 50 {
		t.Fatalf("mixed write: %+v, want 50 inserted and 50 duplicates", res)
	}
	// Duplicates inside one batch.
	dup := []signal.Signal{sig("dev2", 1), sig("dev2", 1), sig("dev2", 2)}
	res, err = next().WriteSignals(ctx, dup)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 2 {
		t.Fatalf("in-batch duplicate: %+v, want 2 inserted", res)
	}
	if n := count(t, st, "SELECT count(*) FROM signals"); n != 152 {
		t.Fatalf("signals has %d rows, want 152", n)
	}
	if n := count(t, st, "SELECT count(*) FROM signals WHERE lat IS NULL"); n != 1 {
		t.Fatalf("%d rows with NULL lat, want 1", n)
	}
	if n := count(t, st, "SELECT count(*) FROM signals WHERE frame IS NOT NULL"); n != 16 {
		t.Fatalf("%d rows carry a raw frame, want 16 (one per distinct frame)", n)
	}
	if n := count(t, st, "SELECT count(DISTINCT frame_hash) FROM signals WHERE frame IS NULL AND frame_hash NOT IN (SELECT frame_hash FROM signals WHERE frame IS NOT NULL)"); n != 0 {
		t.Fatalf("%d frames referenced by records but stored nowhere", n)
	}
	var attr int
	if err := st.Pool().QueryRow(ctx, "SELECT (attrs->>'io239')::int FROM signals LIMIT 1").Scan(&attr); err != nil || attr != 1 {
		t.Fatalf("attrs io239 = %d (%v), want 1", attr, err)
	}
	var hash int64
	if err := st.Pool().QueryRow(ctx, "SELECT record_hash FROM signals WHERE device_id='dev1' AND ts=$1", batch[7].TS).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if hash != batch[7].RecordHash() {
		t.Fatalf("stored record_hash %d, want %d", hash, batch[7].RecordHash())
	}
}

func TestIntegrationPartialResendKeepsFrame(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openStore(t)
	// Records 0-9 share frame-0. Store record 0 alone first (it carries the
	// frame), then the whole frame again: the 9 new records are stored and
	// the frame is still stored exactly once.
	first := []signal.Signal{sig("dev", 0)}
	if _, err := st.WriteSignals(ctx, first); err != nil {
		t.Fatal(err)
	}
	var all []signal.Signal
	for i := 0; i < 10; i++ {
		all = append(all, sig("dev", i))
	}
	res, err := st.WriteSignals(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 9 || res.Duplicates != 1 {
		t.Fatalf("%+v", res)
	}
	if n := count(t, st, "SELECT count(*) FROM signals WHERE frame IS NOT NULL"); n != 1 {
		t.Fatalf("frame stored %d times, want once", n)
	}
	// New records of a frame already stored do not store it again, and
	// every record's frame is findable.
	all = append(all, sig("dev", 10), sig("dev", 11)) // frame-1
	if _, err := st.WriteSignals(ctx, all); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, "SELECT count(*) FROM signals WHERE frame IS NOT NULL"); n != 2 {
		t.Fatalf("%d frames stored, want 2", n)
	}
	if n := count(t, st, "SELECT count(*) FROM signals s WHERE NOT EXISTS (SELECT 1 FROM signals f WHERE f.frame_hash = s.frame_hash AND f.frame IS NOT NULL)"); n != 0 {
		t.Fatalf("%d records whose frame is not stored", n)
	}
}

func TestIntegrationAttrsThatJSONCannotHold(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openStore(t)
	s := sig("dev", 0)
	s.SetAttr("nan", math.NaN())
	s.SetAttr("inf", math.Inf(1))
	s.SetAttr("nul", "a\x00b")
	s.SetAttr("bin", string([]byte{0xff, 0xfe, 'x'}))
	s.SetAttr("quote", `say "hi"\`)
	s.SetAttr("unicode", "žiedas °C")
	s.SetAttr("big", int64(1)<<60)
	s.SetAttr("f", 1e21)
	s.SetAttr("ok", true)
	if _, err := st.WriteSignals(ctx, []signal.Signal{s}); err != nil {
		t.Fatalf("a batch with odd attribute values failed: %v", err)
	}
	var got map[string]any
	if err := st.Pool().QueryRow(ctx, "SELECT attrs FROM signals").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got["nan"] != nil || got["inf"] != nil || got["nul"] != "a\uFFFDb" || got["quote"] != `say "hi"\` ||
		got["unicode"] != "žiedas °C" || got["ok"] != true || got["f"] != 1e21 || got["big"] != float64(int64(1)<<60) {
		t.Fatalf("attrs round trip: %#v", got)
	}
}

// TestIntegrationBinaryCopyStoresWhatRowsDoes writes the same varied batch
// through WriteSignals (the binary COPY encoder) and through pgx's COPY of
// store.Rows (the values of the conflict path and of the benchmark's
// ceiling) and compares every stored column.
func TestIntegrationBinaryCopyStoresWhatRowsDoes(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openStore(t)
	recv := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	var batch []signal.Signal
	for i := 0; i < 40; i++ {
		s := sig(fmt.Sprintf("dev-%d", i%3), i)
		s.Recv = recv.Add(time.Duration(i) * time.Millisecond)
		switch i % 8 {
		case 0:
			s.Valid = signal.Unknown
			s.Lat, s.Lon = math.NaN(), math.Inf(1)
			s.Attrs = nil
		case 1:
			s.Valid = signal.False
			s.DTCs = []string{"P0300", "U0100", "ž"}
			s.RPM, s.Coolant, s.Fuel, s.Voltage, s.Odometer, s.EngineLoad, s.Throttle = 812.5, -40, 0, 13.8, 123456.7, 1e-300, math.Inf(-1)
		case 2:
			s.SetAttr("s", `quote " and \ backslash`)
			s.SetAttr("f", -0.5)
			s.SetAttr("b", false)
			s.SetAttr("n", nil)
		case 3:
			s.Frame = nil
			s.TS = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC) // year 1, the earliest kept
		case 4:
			s.TS = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
			s.Protocol = "žemė"
		case 5:
			s.TS = time.Date(1969, 12, 31, 23, 59, 59, 500, time.FixedZone("x", -7*3600)) // before 1970, sub-µs
		case 6:
			s.DecoderVersion = "1.2.0+sha256:abcdef123456"
		case 7:
			s.DecoderVersion = "builtin:žemė"
		}
		batch = append(batch, s)
	}
	const cols = `device_id, ts, recv, lat, lon, alt, speed, heading, sats, hdop, valid, rpm, coolant, fuel,
		voltage, odometer, engine_load, throttle, dtcs, attrs, protocol, path, record_hash, frame_hash, frame, decoder_version`
	read := func() []string {
		rows, err := st.Pool().Query(ctx, `SELECT row_to_json(x)::text FROM (SELECT `+cols+` FROM signals) x ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	res, err := st.WriteSignals(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != len(batch) {
		t.Fatalf("%+v, want %d inserted", res, len(batch))
	}
	binary := read()
	if _, err := st.Pool().Exec(ctx, "TRUNCATE signals"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"signals"}, store.SignalColumns, pgx.CopyFromRows(store.Rows(batch))); err != nil {
		t.Fatal(err)
	}
	viaPgx := read()
	if len(binary) != len(batch) || len(viaPgx) != len(batch) {
		t.Fatalf("%d and %d rows, want %d", len(binary), len(viaPgx), len(batch))
	}
	for i := range binary {
		if binary[i] != viaPgx[i] {
			t.Fatalf("row %d differs:\nbinary COPY: %s\npgx COPY:    %s", i, binary[i], viaPgx[i])
		}
	}
	frames := map[string]bool{}
	for _, s := range batch {
		if len(s.Frame) > 0 {
			frames[string(s.Frame)] = true
		}
	}
	if n := count(t, st, "SELECT count(*) FROM signals WHERE frame IS NOT NULL"); n != len(frames) {
		t.Fatalf("%d frames stored, want %d: each once", n, len(frames))
	}
	// An empty decoder version is unknown: NULL, as in rows from before
	// migration 0008.
	if n := count(t, st, "SELECT count(*) FROM signals WHERE decoder_version IS NOT NULL"); n != 10 {
		t.Fatalf("%d rows with a decoder version, want 10 (i%%8 = 6 or 7)", n)
	}
	if n := count(t, st, "SELECT count(*) FROM signals WHERE decoder_version = ''"); n != 0 {
		t.Fatalf("%d rows with an empty decoder version, want 0: empty is NULL", n)
	}
}
