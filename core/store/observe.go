package store

import (
	"context"
	"fmt"

	"github.com/fleetcore/fleetcore/core/metrics"
)

var _ metrics.Collector = (*Store)(nil)

// Collect writes the records Postgres refused for their data (kept in
// rejected_records), by whether their device had been acked.
func (s *Store) Collect(w *metrics.Writer) {
	acked, unacked := s.RefusedCounts()
	w.Counter("fleetcore_store_records_refused_total", "Records Postgres refused for their data, kept in rejected_records (acked: refused on replay after the device was acked).", float64(acked), "acked", "true")
	w.Counter("fleetcore_store_records_refused_total", "", float64(unacked), "acked", "false")
}

// RuleErrors counts the rule_errors rows of the last hour (failed batches)
// and the rule versions they belong to; the error is pgx's as it comes
// (the "rules" service check shows it after its own prefix).
func (s *Store) RuleErrors(ctx context.Context) (batches, rules int64, err error) {
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (rule, rule_version))
		FROM rule_errors WHERE at > now() - interval '1 hour'`).Scan(&batches, &rules); err != nil {
		return 0, 0, err
	}
	return batches, rules, nil
}

// HasAckedRejected reports whether rejected_records holds an acked record
// of device (a store.Printable device ID).
func (s *Store) HasAckedRejected(ctx context.Context, device string) (bool, error) {
	var left bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rejected_records WHERE device_id = $1 AND acked)`,
		device).Scan(&left); err != nil {
		return false, fmt.Errorf("looking up refused records: %w", err)
	}
	return left, nil
}
