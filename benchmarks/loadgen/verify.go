package loadgen

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Verdict compares what the generator saw acknowledged with what the
// database holds.
type Verdict struct {
	Acked      int64 `json:"signals_acked"`    // distinct records acknowledged
	Stored     int64 `json:"signals_stored"`   // rows of the fleet's devices in signals
	Lost       int64 `json:"lost"`             // acknowledged, not stored
	Duplicates int64 `json:"duplicates"`       // rows beyond the first for one (device, ts)
	Unacked    int64 `json:"stored_not_acked"` // stored, never acknowledged (ack lost in flight; harmless)
	Missing    []Key `json:"lost_sample,omitempty"`
}

// Key identifies one record: device and device time.
type Key struct {
	Device string    `json:"device_id"`
	TS     time.Time `json:"ts"`
}

// Querier is the part of a pgx connection or pool Verify needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Verify reads the (device_id, ts) of every signal of the ledger's devices
// and compares them with the ledger (from Generator.Ledger).
func Verify(ctx context.Context, db Querier, ledger map[string][]int64) (Verdict, error) {
	devices := make([]string, 0, len(ledger))
	for d := range ledger {
		devices = append(devices, d)
	}
	rows, err := db.Query(ctx, `SELECT device_id, ts FROM signals WHERE device_id = ANY($1)`, devices)
	if err != nil {
		return Verdict{}, fmt.Errorf("reading stored signals: %w", err)
	}
	stored := make(map[string][]int64, len(ledger))
	var v Verdict
	for rows.Next() {
		var dev string
		var ts time.Time
		if err := rows.Scan(&dev, &ts); err != nil {
			rows.Close()
			return Verdict{}, fmt.Errorf("reading stored signals: %w", err)
		}
		stored[dev] = append(stored[dev], ts.UnixMicro())
		v.Stored++
	}
	if err := rows.Err(); err != nil {
		return Verdict{}, fmt.Errorf("reading stored signals: %w", err)
	}
	c := Compare(ledger, stored)
	c.Stored = v.Stored
	return c, nil
}

// Compare compares acknowledged device times with stored ones (both per
// device, Unix microseconds; stored in any order).
func Compare(ledger, stored map[string][]int64) Verdict {
	var v Verdict
	for _, s := range stored {
		v.Stored += int64(len(s))
	}
	for dev, acked := range ledger {
		got := append([]int64(nil), stored[dev]...)
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		a, s := dedupe(acked), got
		v.Acked += int64(len(a))
		i, j := 0, 0
		for i < len(a) || j < len(s) {
			switch {
			case j < len(s) && j > 0 && s[j] == s[j-1]:
				v.Duplicates++
				j++
			case i < len(a) && (j == len(s) || a[i] < s[j]):
				v.Lost++
				if len(v.Missing) < 20 {
					v.Missing = append(v.Missing, Key{Device: dev, TS: time.UnixMicro(a[i]).UTC()})
				}
				i++
			case i == len(a) || s[j] < a[i]:
				v.Unacked++
				j++
			default: // equal
				i++
				j++
			}
		}
	}
	return v
}

// dedupe drops repeats from a sorted slice.
func dedupe(s []int64) []int64 {
	out := s[:0:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
