package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fleetcore/fleetcore/signal"
)

// RejectedRecord is a record Postgres refused (a WriteResult.Refusal),
// for the rejected_records quarantine table.
type RejectedRecord struct {
	Signal signal.Signal
	// Acked: the device was acked for it (it came through a failover
	// tier and was refused on replay). Such a record is kept here,
	// counted and alerted on: acked data is never dropped silently.
	Acked    bool
	SQLState string
	Reason   string
}

// RefusedRecords builds the quarantine rows of a write's refusals; the path of
// each is its signal's Path, acked is whether the device was acked.
func RefusedRecords(batch []signal.Signal, refused []Refusal, acked bool) []RejectedRecord {
	out := make([]RejectedRecord, len(refused))
	for i, r := range refused {
		out[i] = RejectedRecord{Signal: batch[r.Index], Acked: acked, SQLState: r.SQLState, Reason: r.Message}
	}
	return out
}

// Unkept returns the refusals WriteSignals did not keep in
// rejected_records itself (see Refusal.Kept).
func Unkept(refused []Refusal) []Refusal {
	var out []Refusal
	for _, r := range refused {
		if !r.Kept {
			out = append(out, r)
		}
	}
	return out
}

// Caps of the text columns of rejected_records: whatever a device sent,
// the quarantine row itself cannot be refused (the whole record is in
// the record column, as bytes).
const (
	MaxPrintable = 256  // device_id, protocol (bytes, after escaping)
	maxReason    = 1024 // reason
)

// Printable returns s as text Postgres always accepts and an index can
// hold: s itself when it is valid UTF-8 without control characters and at
// most max bytes long; otherwise escaped (\xNN for a NUL, a control
// character or an invalid byte, \\ for a backslash) and cut to max bytes
// with "…" at the end. Alert subjects and quarantine rows use it for
// device IDs.
func Printable(s string, max int) string {
	clean := len(s) <= max && utf8.ValidString(s)
	if clean {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				clean = false
				break
			}
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() <= max; {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r < 0x20, r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, s[i])
			size = 1
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	const ell = "…"
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return out[:cut] + ell
}

// rateLog lets one log line through per interval and counts the rest.
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back
// since the last one.
func (r *rateLog) allow(now time.Time, every time.Duration) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < every {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}

// refusalLogEvery bounds the WARN lines about refused records.
const refusalLogEvery = 10 * time.Second

// QuarantineRecords stores refused records in rejected_records, counts
// them (RefusedCounts) and logs a rate-limited warning. A record refused
// again (a device resending it, a replay delivered twice) bumps seen and
// last_at of its row instead of adding one: rows are keyed by device ID,
// device time, record hash and acked.
func (s *Store) QuarantineRecords(ctx context.Context, recs []RejectedRecord) error {
	return s.quarantine(ctx, s.pool, recs)
}

// execer runs a statement: the pool, or the transaction of a write.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *Store) quarantine(ctx context.Context, db execer, recs []RejectedRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var acked, unacked uint64
	for _, r := range recs {
		if r.Acked {
			acked++
		} else {
			unacked++
		}
	}
	s.refusedAcked.Add(acked)
	s.refusedUnacked.Add(unacked)
	if ok, held := s.refusalLog.allow(time.Now(), refusalLogEvery); ok {
		r := recs[0]
		s.log.Warn("Postgres refused records; kept in rejected_records",
			"records", len(recs), "acked", acked, "device", Printable(r.Signal.DeviceID, MaxPrintable),
			"path", r.Signal.Path, "sqlstate", r.SQLState, "reason", Printable(r.Reason, maxReason),
			"warnings_held_back", held)
	}
	type row struct {
		key     []byte
		rec     RejectedRecord
		seen    int
		encoded []byte
	}
	byKey := map[string]*row{}
	var order []*row
	for _, r := range recs {
		k := rejectedKey(&r.Signal, r.Acked)
		if x, ok := byKey[string(k)]; ok {
			x.seen++
			x.rec.SQLState, x.rec.Reason = r.SQLState, r.Reason
			continue
		}
		x := &row{key: k, rec: r, seen: 1, encoded: signal.AppendBatch(nil, []signal.Signal{r.Signal})}
		byKey[string(k)] = x
		order = append(order, x)
	}
	n := len(order)
	var (
		keys, records       = make([][]byte, n), make([][]byte, n)
		devs, protos, paths = make([]string, n), make([]string, n), make([]string, n)
		states, reasons     = make([]string, n), make([]string, n)
		devLens, seen       = make([]int32, n), make([]int32, n)
		tsUS, hashes        = make([]int64, n), make([]int64, n)
		ackeds              = make([]bool, n)
		tss                 = make([]pgtype.Timestamptz, n)
	)
	for i, x := range order {
		sg := &x.rec.Signal
		keys[i], records[i] = x.key, x.encoded
		devs[i] = Printable(sg.DeviceID, MaxPrintable)
		devLens[i] = int32(min(len(sg.DeviceID), 1<<31-1))
		protos[i] = Printable(sg.Protocol, MaxPrintable)
		paths[i] = sg.Path
		switch paths[i] {
		case signal.PathDirect, signal.PathFailover, signal.PathSpool:
		default:
			paths[i] = signal.PathDirect
		}
		states[i], reasons[i] = Printable(x.rec.SQLState, 16), Printable(x.rec.Reason, maxReason)
		seen[i], ackeds[i] = int32(x.seen), x.rec.Acked
		tsUS[i], hashes[i] = sg.TS.UnixMicro(), sg.RecordHash()
		if y := sg.TS.UTC().Year(); y >= -4712 && y <= 294275 {
			tss[i] = pgtype.Timestamptz{Time: sg.TS.UTC(), Valid: true}
		}
	}
	_, err := db.Exec(ctx, `INSERT INTO rejected_records (record_key, device_id, device_id_len, ts, ts_us, protocol, path,
			acked, record_hash, sqlstate, reason, record, seen)
		SELECT * FROM unnest($1::bytea[], $2::text[], $3::int[], $4::timestamptz[], $5::bigint[], $6::text[], $7::text[],
			$8::boolean[], $9::bigint[], $10::text[], $11::text[], $12::bytea[], $13::int[])
		ON CONFLICT (record_key) DO UPDATE SET seen = rejected_records.seen + excluded.seen, last_at = now(),
			sqlstate = excluded.sqlstate, reason = excluded.reason`,
		keys, devs, devLens, tss, tsUS, protos, paths, ackeds, hashes, states, reasons, records, seen)
	if err != nil {
		return fmt.Errorf("storing refused records: %w", err)
	}
	return nil
}

// rejectedKey is the idempotency key of a rejected_records row: a digest
// of the whole device ID, the device time, the record hash and acked.
func rejectedKey(sg *signal.Signal, acked bool) []byte {
	h := sha256.New()
	var b [8 + 8 + 1]byte
	binary.BigEndian.PutUint64(b[0:], uint64(sg.TS.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(sg.RecordHash()))
	if acked {
		b[16] = 1
	}
	h.Write(b[:])
	h.Write([]byte(sg.DeviceID))
	return h.Sum(nil)
}

// RefusedCounts returns how many records Postgres refused so far in this
// process, acked (refused on replay) and not acked (refused on direct
// ingest; the device was not acked and resends), resends counted.
func (s *Store) RefusedCounts() (acked, unacked uint64) {
	return s.refusedAcked.Load(), s.refusedUnacked.Load()
}

// RejectedFilter selects rejected_records rows for ListRejectedRecords.
type RejectedFilter struct {
	DeviceID string // "" any; else the stored (Printable) device ID
	Acked    *bool  // nil any
	Limit    int    // rows; at most MaxRejectedLimit (0: DefaultRejectedLimit)
	Offset   int
}

// Bounds of one listing.
const (
	DefaultRejectedLimit = 100
	MaxRejectedLimit     = 1000
)

// RejectedRow is one rejected_records row. Signal is the decoded record
// (DecodeErr says why when it could not be decoded).
type RejectedRow struct {
	ID          int64
	FirstAt     time.Time
	LastAt      time.Time
	Seen        int64
	DeviceID    string // Printable form
	DeviceIDLen int    // bytes of the original device ID
	TS          *time.Time
	Protocol    string
	Path        string
	Acked       bool
	SQLState    string
	Reason      string
	Signal      *signal.Signal
	DecodeErr   string
}

// Querier runs a query (a pool, a connection, a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ListRejectedRecords calls fn for the rows of rejected_records that f
// selects, newest first, one at a time (nothing is collected in memory).
// An error from fn stops the listing and is returned.
func ListRejectedRecords(ctx context.Context, q Querier, f RejectedFilter, fn func(RejectedRow) error) error {
	if f.Limit <= 0 {
		f.Limit = DefaultRejectedLimit
	}
	if f.Limit > MaxRejectedLimit || f.Offset < 0 {
		return errors.New("listing rejected records: limit or offset out of range")
	}
	var dev any
	if f.DeviceID != "" {
		dev = f.DeviceID
	}
	var acked any
	if f.Acked != nil {
		acked = *f.Acked
	}
	rows, err := q.Query(ctx, `SELECT id, first_at, last_at, seen, device_id, device_id_len, ts, protocol, path, acked,
			sqlstate, reason, record
		FROM rejected_records
		WHERE ($1::text IS NULL OR device_id = $1) AND ($2::boolean IS NULL OR acked = $2)
		ORDER BY id DESC LIMIT $3 OFFSET $4`, dev, acked, f.Limit, f.Offset)
	if err != nil {
		return fmt.Errorf("listing rejected records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r RejectedRow
		var record []byte
		var devLen int32
		if err := rows.Scan(&r.ID, &r.FirstAt, &r.LastAt, &r.Seen, &r.DeviceID, &devLen, &r.TS, &r.Protocol, &r.Path,
			&r.Acked, &r.SQLState, &r.Reason, &record); err != nil {
			return fmt.Errorf("listing rejected records: %w", err)
		}
		r.DeviceIDLen = int(devLen)
		if sigs, err := signal.DecodeBatch(record); err != nil {
			r.DecodeErr = err.Error()
		} else if len(sigs) != 1 {
			r.DecodeErr = "record holds " + strconv.Itoa(len(sigs)) + " signals"
		} else {
			r.Signal = &sigs[0]
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing rejected records: %w", err)
	}
	return nil
}

// RejectedRecords lists rejected_records (see ListRejectedRecords).
func (s *Store) RejectedRecords(ctx context.Context, f RejectedFilter, fn func(RejectedRow) error) error {
	return ListRejectedRecords(ctx, s.pool, f, fn)
}
