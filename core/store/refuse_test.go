package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// oversizedID is a device ID whose index entry Postgres cannot hold
// (54000: index row size exceeds the btree maximum): random, so that
// TOAST compression cannot shrink it under the limit.
func oversizedID(rng *rand.Rand, n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// poisonBatch is n records of 20 devices with refused records at the
// positions bad, each the first record of a frame that good records
// share, and a repeat of the second one at position dup.
func poisonBatch(n int, bad []int, dup int, poisonID func(k int) string) ([]signal.Signal, map[int]bool) {
	batch := make([]signal.Signal, n)
	for i := range batch {
		batch[i] = sig(fmt.Sprintf("dev-%02d", i%20), i)
	}
	want := map[int]bool{}
	for k, i := range bad {
		p := sig(poisonID(k), i)
		p.Frame = batch[(i+1)%n].Frame // its frame's bytes would go on it
		batch[i] = p
		want[i] = true
	}
	batch[dup] = batch[bad[1]]
	want[dup] = true
	return batch, want
}

func TestIntegrationWriteSignalsIsolatesRefusedRecords(t *testing.T) {
	testenv.Integration(t)
	const n = 300
	bad := []int{0, 137, n - 1}
	k := len(bad)
	halvingBound := 2*k*(bits.Len(uint(n))+1) + 1
	rng := rand.New(rand.NewPCG(1, 2))
	long := []string{oversizedID(rng, 6000), oversizedID(rng, 6000), oversizedID(rng, 6000)}
	for _, tc := range []struct {
		name     string
		check    bool // add the poison check constraint
		poisonID func(k int) string
		sqlstate string
		halving  bool // ignore COPY positions
		// conflict: the good records were stored by another process
		// first, so the write goes through the conflict path.
		conflict bool
		bound    int // COPY statements for the first write
	}{
		{"check constraint, COPY positions", true, func(k int) string { return fmt.Sprintf("poison-%d", k) }, "23514", false, false, 3*k + 1},
		{"check constraint, halving", true, func(k int) string { return fmt.Sprintf("poison-%d", k) }, "23514", true, false, halvingBound},
		{"oversized device id, COPY positions", false, func(k int) string { return long[k] }, "54000", false, false, 3*k + 1},
		{"oversized device id, halving", false, func(k int) string { return long[k] }, "54000", true, false, halvingBound},
		{"check constraint, conflict path", true, func(k int) string { return fmt.Sprintf("poison-%d", k) }, "23514", false, true, 2 * (3*k + 1)},
		{"oversized device id, conflict path", false, func(k int) string { return long[k] }, "54000", false, true, 2 * (3*k + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			if tc.check {
				if _, err := st.Pool().Exec(ctx, `ALTER TABLE signals ADD CONSTRAINT poison CHECK (device_id NOT LIKE 'poison%')`); err != nil {
					t.Fatal(err)
				}
			}
			batch, want := poisonBatch(n, bad, 200, tc.poisonID)
			write := st.WriteSignals
			if tc.halving {
				write = func(ctx context.Context, b []signal.Signal) (store.WriteResult, error) {
					return store.WriteSignalsHalving(ctx, st, b)
				}
			}
			if tc.conflict {
				var good []signal.Signal
				for i := range batch {
					if !want[i] {
						good = append(good, batch[i])
					}
				}
				other := openStoreAt(t, st.Pool().Config().ConnString())
				if res, err := other.WriteSignals(ctx, good); err != nil || res.Inserted != len(good) {
					t.Fatalf("storing the good records first: %+v, %v", res, err)
				}
			}
			res, err := write(ctx, batch)
			if err != nil {
				t.Fatalf("write failed instead of isolating the refused records: %v", err)
			}
			got := map[int]bool{}
			for _, r := range res.Refused {
				got[r.Index] = true
				if r.SQLState != tc.sqlstate || r.Message == "" {
					t.Errorf("refusal %+v, want SQLSTATE %s with a message", r, tc.sqlstate)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("refused %v, want %v", got, want)
			}
			wantInserted := n - len(want)
			if tc.conflict {
				wantInserted = 0
			}
			if res.Inserted != wantInserted || res.Inserted+res.Duplicates+len(res.Refused) != n {
				t.Fatalf("%+v, want %d inserted", res, wantInserted)
			}
			t.Logf("%d COPYs (bound %d), %d commits", res.Copies, tc.bound, res.Commits)
			if res.Copies > tc.bound {
				t.Fatalf("%d COPYs for %d refused records in %d, want at most %d", res.Copies, k, n, tc.bound)
			}
			// The parts commit together: one WAL flush for the batch, not
			// one per part (each costs a few milliseconds of fsync).
			if res.Commits != 1 {
				t.Fatalf("%d commits for a batch with %d refused records, want 1", res.Commits, k)
			}
			checkStoredOnce(t, st, n-len(want))

			// Quarantined, and a resend (to this process and to another)
			// does not grow the table: the same records are refused again.
			// WriteSignals kept them itself, in the batch's transaction;
			// what it did not keep is the caller's (none here).
			for _, r := range res.Refused {
				if !r.Kept {
					t.Fatalf("refusal %+v not kept by the write", r)
				}
			}
			if err := st.QuarantineRecords(ctx, store.RefusedRecords(batch, store.Unkept(res.Refused), false)); err != nil {
				t.Fatal(err)
			}
			for _, w := range []*store.Store{st, openStoreAt(t, st.Pool().Config().ConnString())} {
				again, err := w.WriteSignals(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				if again.Inserted != 0 || len(again.Refused) != len(want) || again.Duplicates != n-len(want) {
					t.Fatalf("resend: %+v, want 0 inserted, %d refused", again, len(want))
				}
				if again.Copies > 2*(3*k+1) {
					t.Fatalf("resend: %d COPYs", again.Copies)
				}
				if err := st.QuarantineRecords(ctx, store.RefusedRecords(batch, store.Unkept(again.Refused), false)); err != nil {
					t.Fatal(err)
				}
			}
			checkStoredOnce(t, st, n-len(want))
			if rows := count(t, st, "SELECT count(*) FROM rejected_records"); rows != k {
				t.Fatalf("rejected_records holds %d rows, want %d (one per refused record)", rows, k)
			}
			// Three writes, each refusing every record once (a repeat
			// inside the batch is the same record, refused with it).
			if seen := count(t, st, "SELECT sum(seen)::int FROM rejected_records"); seen != 3*k {
				t.Fatalf("seen sums to %d, want %d", seen, 3*k)
			}
			acked := false
			var listed int
			err = st.RejectedRecords(ctx, store.RejectedFilter{Acked: &acked}, func(r store.RejectedRow) error {
				listed++
				if r.Signal == nil {
					return fmt.Errorf("row %d not decodable: %s", r.ID, r.DecodeErr)
				}
				if !strings.HasPrefix(r.Signal.DeviceID, "poison-") && len(r.Signal.DeviceID) != 6000 {
					return fmt.Errorf("decoded device %q", r.Signal.DeviceID)
				}
				if r.DeviceIDLen != len(r.Signal.DeviceID) || len(r.DeviceID) > store.MaxPrintable || r.SQLState != tc.sqlstate || r.Acked {
					return fmt.Errorf("row %+v", r)
				}
				if len(r.Signal.Frame) == 0 {
					return errors.New("record kept without its raw frame")
				}
				return nil
			})
			if err != nil || listed != k {
				t.Fatalf("listing: %d rows, %v", listed, err)
			}
		})
	}
}

// checkStoredOnce: rows signals holds, each key once, every record's
// raw frame stored.
func checkStoredOnce(t *testing.T, st *store.Store, rows int) {
	t.Helper()
	if got := count(t, st, "SELECT count(*) FROM signals"); got != rows {
		t.Fatalf("signals holds %d rows, want %d", got, rows)
	}
	if keys := count(t, st, "SELECT count(DISTINCT (device_id, ts, record_hash)) FROM signals"); keys != rows {
		t.Fatalf("%d distinct keys in %d rows", keys, rows)
	}
	if n := count(t, st, "SELECT count(*) FROM signals s WHERE NOT EXISTS (SELECT 1 FROM signals f WHERE f.frame_hash = s.frame_hash AND f.frame IS NOT NULL)"); n != 0 {
		t.Fatalf("%d records whose raw frame is stored nowhere", n)
	}
	if n := count(t, st, "SELECT count(*) - count(DISTINCT frame_hash) FROM signals WHERE frame IS NOT NULL"); n != 0 {
		t.Fatalf("%d raw frames stored more than once", n)
	}
}

// TestIntegrationQuarantineRecordsAnyBytes stores records whose device ID
// no text column takes (NUL, invalid UTF-8, 6,000 bytes) and whose time
// is outside Postgres's range.
func TestIntegrationQuarantineRecordsAnyBytes(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openStore(t)
	a := sig("bad\x00id\xff", 1)
	b := sig(strings.Repeat("é", 3000), 2)
	c := sig("far-future", 3)
	c.TS = c.TS.AddDate(-10000, 0, 0) // before 4713 BC
	recs := []store.RejectedRecord{
		{Signal: a, Acked: true, SQLState: "22021", Reason: "invalid byte sequence"},
		{Signal: b, Acked: true, SQLState: "54000", Reason: "index row size 6040 exceeds btree version 4 maximum 2704"},
		{Signal: c, Acked: false, SQLState: "22008", Reason: "timestamp out of range"},
	}
	for i := range recs {
		recs[i].Signal.Path = signal.PathSpool
	}
	if err := st.QuarantineRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if acked, unacked := st.RefusedCounts(); acked != 2 || unacked != 1 {
		t.Fatalf("RefusedCounts = %d, %d; want 2, 1", acked, unacked)
	}
	byLen := map[int]store.RejectedRow{}
	err := st.RejectedRecords(ctx, store.RejectedFilter{}, func(r store.RejectedRow) error {
		byLen[r.DeviceIDLen] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := byLen[len(a.DeviceID)]; r.DeviceID != `bad\x00id\xff` || r.Signal == nil || r.Signal.DeviceID != a.DeviceID {
		t.Fatalf("NUL/invalid UTF-8 device: %+v", r)
	}
	if r := byLen[6000]; len(r.DeviceID) > store.MaxPrintable || !utf8.ValidString(r.DeviceID) || r.Signal == nil || r.Signal.DeviceID != b.DeviceID {
		t.Fatalf("long device: stored %d bytes", len(r.DeviceID))
	}
	if r := byLen[len("far-future")]; r.TS != nil || r.Signal == nil || !r.Signal.TS.Equal(c.TS) {
		t.Fatalf("out-of-range time: %+v", r)
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"356307042441013", "356307042441013"},
		{"a\x00b", `a\x00b`},
		{"a\xffb", `a\xffb`},
		{"tab\there", `tab\x09here`},
		{`back\slash` + "\x01", `back\\slash\x01`},
		{strings.Repeat("x", 20), strings.Repeat("x", 13) + "…"},
		{strings.Repeat("é", 10), strings.Repeat("é", 6) + "…"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got := store.Printable(tc.in, 16)
			if got != tc.want || len(got) > 16 && len(tc.in) > 16 || !utf8.ValidString(got) {
				t.Fatalf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestErrorClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("copying: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name                           string
		err                            error
		data, unavailable, unreachable bool
	}{
		{"no answer", errors.New("dial tcp: connection refused"), false, true, true},
		{"context", context.DeadlineExceeded, false, true, true},
		{"admin shutdown", pg("57P01"), false, true, true},
		{"too many connections", pg("53300"), false, true, true},
		{"serialization", pg("40001"), false, true, false},
		{"read only", pg("25006"), false, true, false},
		{"auth", pg("28P01"), false, true, false},
		{"missing table", pg("42P01"), false, true, false},
		{"internal", pg("XX000"), false, true, false},
		{"check", pg("23514"), true, false, false},
		{"unique other than the key", pg("23505"), true, false, false},
		{"index row too large", pg("54000"), true, false, false},
		{"invalid byte", pg("22021"), true, false, false},
		{"trigger raise", pg("P0001"), true, false, false},
		{"nil", nil, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.DataError(tc.err); got != tc.data {
				t.Errorf("DataError = %v", got)
			}
			if got := store.Unavailable(tc.err); got != tc.unavailable {
				t.Errorf("Unavailable = %v", got)
			}
			if got := store.Unreachable(tc.err); got != tc.unreachable {
				t.Errorf("Unreachable = %v", got)
			}
		})
	}
}

// TestIntegrationIsolationCommitsInRounds: a batch with so many refused
// records that isolating them takes more than maxSavepoints parts commits
// in rounds (Postgres's snapshots would otherwise overflow their cache of
// subtransactions), and still stores every good record exactly once.
func TestIntegrationIsolationCommitsInRounds(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st := openStore(t)
	if _, err := st.Pool().Exec(ctx, `ALTER TABLE signals ADD CONSTRAINT poison CHECK (device_id NOT LIKE 'poison%')`); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var bad []int
	for i := 3; i < n; i += 5 {
		bad = append(bad, i)
	}
	batch, want := poisonBatch(n, bad, 1, func(k int) string { return fmt.Sprintf("poison-%d", k) })
	res, err := st.WriteSignals(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) != len(want) || res.Inserted != n-len(want) {
		t.Fatalf("%d refused, %d inserted; want %d, %d", len(res.Refused), res.Inserted, len(want), n-len(want))
	}
	if res.Commits < 2 {
		t.Fatalf("%d commits for %d COPYs, want the isolation to commit in rounds", res.Commits, res.Copies)
	}
	t.Logf("%d refused: %d COPYs, %d commits", len(res.Refused), res.Copies, res.Commits)
	checkStoredOnce(t, st, n-len(want))
}
