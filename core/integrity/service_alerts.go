package integrity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// KindRuleDisabled is the alert a quality rule gets when the rule host
// disables it after repeated failed batches (traps, time or memory budget,
// bad verdicts). It goes through the same table, outbox, exchange and
// webhook as device alerts, with the subject RuleSubject(name) in place of
// a device ID (routing key "rule_disabled.rule:<name>"), and clears once a
// version of the rule is in service again or the rule is removed.
const KindRuleDisabled = "rule_disabled"

// KindDecoderDisabled is the alert a drop-in WASM decoder gets when the
// decoder host disables one of its versions after decoders.max_failures
// guest failures in a row (traps, timeouts, ABI breaches) and the
// previous version is restored (or none is left). Its subject is
// DecoderSubject(name) (routing key "decoder_disabled.decoder:<name>");
// it clears once the disabled file's bytes change (a new version loads)
// or the file is removed.
const KindDecoderDisabled = "decoder_disabled"

// KindRecordRefused is the alert a device gets when records it was acked
// for (they came through the failover queue or the spool) are refused by
// Postgres on replay. They are kept in rejected_records (GET
// /api/rejected/records); the subject is the device ID as store.Printable
// gives it (escaped, at most 256 bytes). The scorer does not clear it; the
// node does once no acked row of the device is left in rejected_records.
const KindRecordRefused = "record_refused"

// scorerKinds reports whether the scorer owns alerts of kind (opens and
// clears them from a device's windows).
func scorerKinds(kind string) bool {
	return kind != KindRecordRefused && kind != KindRuleDisabled && kind != KindDecoderDisabled
}

// rulePrefix marks alert subjects that are rules, not devices.
const rulePrefix = "rule:"

// RuleSubject is the device_id column of a rule's alerts.
func RuleSubject(rule string) string { return rulePrefix + rule }

// RuleOfSubject is the rule name of a RuleSubject ("" if it is not one).
func RuleOfSubject(subject string) string {
	name, ok := strings.CutPrefix(subject, rulePrefix)
	if !ok {
		return ""
	}
	return name
}

// decoderPrefix marks alert subjects that are drop-in decoders.
const decoderPrefix = "decoder:"

// DecoderSubject is the device_id column of a decoder's alerts.
func DecoderSubject(name string) string { return decoderPrefix + name }

// DecoderOfSubject is the decoder name of a DecoderSubject ("" if it is
// not one).
func DecoderOfSubject(subject string) string {
	name, ok := strings.CutPrefix(subject, decoderPrefix)
	if !ok {
		return ""
	}
	return name
}

// OpenAlert opens an alert of kind for subject, with its event in the
// outbox, unless one is open already; it reports whether it opened one.
func OpenAlert(ctx context.Context, pool *pgxpool.Pool, subject, kind, reason string) (bool, error) {
	opened := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO alerts (device_id, kind, state, reason) VALUES ($1, $2, 'open', $3)
			ON CONFLICT (device_id, kind) WHERE state = 'open' DO NOTHING RETURNING id`, subject, kind, reason).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // open already
		}
		if err != nil {
			return fmt.Errorf("opening %s alert: %w", kind, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO alert_events (alert_id, device_id, kind, state, reason)
			VALUES ($1, $2, $3, 'open', $4)`, id, subject, kind, reason); err != nil {
			return fmt.Errorf("recording alert event: %w", err)
		}
		opened = true
		return nil
	})
	return opened, err
}

// ClearAlert clears the open alert of kind for subject, if any, with its
// event in the outbox; it reports whether there was one.
func ClearAlert(ctx context.Context, pool *pgxpool.Pool, subject, kind, reason string) (bool, error) {
	cleared := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE alerts SET state = 'cleared', cleared = now(), clear_reason = $3
			WHERE device_id = $1 AND kind = $2 AND state = 'open' RETURNING id`, subject, kind, reason).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("clearing %s alert: %w", kind, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO alert_events (alert_id, device_id, kind, state, reason)
			VALUES ($1, $2, $3, 'cleared', $4)`, id, subject, kind, reason); err != nil {
			return fmt.Errorf("recording alert event: %w", err)
		}
		cleared = true
		return nil
	})
	return cleared, err
}

// OpenSubjects lists the subjects with an open alert of kind.
func OpenSubjects(ctx context.Context, pool *pgxpool.Pool, kind string) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT device_id FROM alerts WHERE kind = $1 AND state = 'open' ORDER BY device_id`, kind)
	if err != nil {
		return nil, fmt.Errorf("listing open %s alerts: %w", kind, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing open %s alerts: %w", kind, err)
	}
	return out, nil
}
