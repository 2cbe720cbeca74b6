package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/signal"
)

// WriteResult counts what one batch write did.
type WriteResult struct {
	Inserted   int // new rows
	Duplicates int // rows already stored (resends, replays)
	// Refused are the records Postgres refuses (DataError): not stored,
	// by index into the batch, in index order. Every other record of the
	// batch is committed.
	Refused []Refusal
	// Copies is how many COPY statements the write ran, failed ones
	// included: 1 for a clean batch; a refused record costs a few more.
	Copies int
	// Commits is how many transactions the write committed (each one WAL
	// flush): 1 for a clean batch, and 1 for a batch with refused records
	// too, however many parts isolating them took (up to maxSavepoints
	// parts per commit).
	Commits int
}

// Refusal is one record of a batch that Postgres refused.
type Refusal struct {
	Index    int    // into the batch given to WriteSignals
	SQLState string // e.g. 54000 (index row too large), 23514 (check)
	Message  string // the server's message
	// Kept: the record is in rejected_records, written in the same
	// transaction as the rest of the batch (acked = its Path is not
	// direct: it came through a tier that acked it). A refusal that is not
	// kept is the caller's to quarantine (QuarantineRecords).
	Kept bool
}

// WriteSignals stores a batch and returns only once it is committed; an
// error means the outcome is not known to be durable (the error is then
// Unavailable, or the context ended).
//
// The common case, a batch of new records, is one COPY in its own implicit
// transaction: a single round trip. When the COPY hits the idempotency key
// (a resend, a replay, a duplicate inside the batch) nothing was written,
// and the batch is written again in a transaction that first looks up
// which of its keys are already stored and copies only the others; if a
// concurrent writer stores one of them in between, that transaction falls
// back to a staging table and INSERT … ON CONFLICT DO NOTHING. Whichever
// path runs, every record ends up stored exactly once.
//
// A batch that Postgres refuses for its data (DataError: a check
// constraint, an index row too large, a value out of range …) is split
// until the refused records are isolated: when the error names the COPY
// row, the rows before it are written, the named record is tried alone
// (and refused, or stored when the position was wrong, after which
// halving takes over) and the write goes on after it; without a position
// the batch is halved, recursively. k refused records among n cost O(k)
// COPYs with positions and O(k·log n) without, never one write per row.
// The refused records are returned in WriteResult.Refused, every other
// record is committed, once.
//
// Each signal's Path must be set. The raw frame is stored once, on the
// first record of the frame that gets stored.
func (s *Store) WriteSignals(ctx context.Context, batch []signal.Signal) (WriteResult, error) {
	return s.writeSignals(ctx, batch, true)
}

// writeSignals is WriteSignals; without lines it ignores the COPY error
// positions and halves (tests hold the halving to its bound with it).
func (s *Store) writeSignals(ctx context.Context, batch []signal.Signal, lines bool) (WriteResult, error) {
	if len(batch) == 0 {
		return WriteResult{}, nil
	}
	w := &batchWrite{s: s, batch: batch, hashes: make([]int64, len(batch)), keys: make([]recentKey, len(batch)), trustLines: lines}
	for i := range batch {
		w.hashes[i] = batch[i].RecordHash()
		w.keys[i] = keyOf(batch[i].DeviceID, batch[i].TS.UnixMicro(), w.hashes[i])
	}
	// Leave out what this process knows is stored and repeats inside the
	// batch, so that resends do not fail the COPY.
	w.epoch = s.recent.currentEpoch()
	fresh := s.recent.fresh(w.keys)
	if len(fresh) < len(batch) && s.recent.currentEpoch() != w.epoch {
		// The server changed while the keys were looked up: look again.
		return s.writeSignals(ctx, batch, lines)
	}
	if len(fresh) == 0 {
		return WriteResult{Duplicates: len(batch)}, nil
	}
	w.refs = frameRefs(batch)
	if len(fresh) < len(batch) {
		w.knownStoredFrames(fresh)
	}
	if err := w.write(ctx, fresh); err != nil {
		return WriteResult{}, err
	}
	if len(fresh) < len(batch) && s.recent.currentEpoch() != w.epoch {
		// The records left out were known stored on a server this write
		// no longer reaches: write the whole batch again (Postgres drops
		// what it has) rather than ack them from memory.
		return s.writeSignals(ctx, batch, lines)
	}
	w.expandRefusals(fresh)
	w.res.Duplicates = len(batch) - w.res.Inserted - len(w.res.Refused)
	return w.res, nil
}

// batchWrite is the state of one WriteSignals call.
type batchWrite struct {
	s      *Store
	batch  []signal.Signal
	hashes []int64
	keys   []recentKey
	// epoch is the recent keys' server epoch the write started in.
	epoch uint64
	refs  []frameRef
	// framed holds the frames known to be stored: with a record the cache
	// knows is stored, or committed by an earlier part of this write.
	framed map[int64]bool
	// trustLines is cleared once a COPY error named a row that then
	// stored fine alone: halving from then on.
	trustLines bool
	res        WriteResult
	// tx is the transaction that isolates refused records (nil: each
	// part commits on its own); pending are the keys it stored, for the
	// recent-key cache once it commits; savepoints counts its parts.
	tx         pgx.Tx
	pending    []recentKey
	savepoints int
	// kept counts the refusals already written to rejected_records.
	kept int
}

// knownStoredFrames marks the frames of records the recent-key cache left
// out as stored (not those left out as repeats inside the batch): every
// write that stores records of a frame stores the frame on one of them.
func (w *batchWrite) knownStoredFrames(fresh []int) {
	in := make(map[recentKey]struct{}, len(fresh))
	for _, i := range fresh {
		in[w.keys[i]] = struct{}{}
	}
	for i := range w.batch {
		if !w.refs[i].has {
			continue
		}
		if _, ok := in[w.keys[i]]; ok {
			continue
		}
		if w.framed == nil {
			w.framed = map[int64]bool{}
		}
		w.framed[w.refs[i].hash] = true
	}
}

// write stores the records idx (indices into the batch), isolating the
// ones Postgres refuses. It returns an error only when the outcome of a
// part is unknown or the error is not about the data.
func (w *batchWrite) write(ctx context.Context, idx []int) error {
	for len(idx) > 0 {
		pos, err := w.attempt(ctx, idx)
		if err == nil {
			return nil
		}
		if !DataError(err) {
			return err
		}
		if len(idx) == 1 {
			w.refuse(idx[0], err)
			return nil
		}
		if w.tx == nil {
			return w.isolate(ctx, idx, pos)
		}
		if idx, err = w.splitAt(ctx, idx, pos); err != nil {
			return err
		}
	}
	return nil
}

// maxSavepoints bounds the savepoints of one isolating transaction: past
// 64 subtransactions that wrote, Postgres's snapshots overflow their
// subtransaction cache and every other session pays for it, so the
// transaction is committed and a new one begun before that.
const maxSavepoints = 48

// isolate writes the records idx, of which one failed the COPY at pos
// (or -1: no position), in one transaction with a savepoint per part:
// however many parts the refused records split the batch into, they cost
// one commit (one WAL flush), not one each.
func (w *batchWrite) isolate(ctx context.Context, idx []int, pos int) error {
	if err := w.begin(ctx); err != nil {
		return err
	}
	err := func() error {
		rest, err := w.splitAt(ctx, idx, pos)
		if err != nil {
			return err
		}
		return w.write(ctx, rest)
	}()
	if err != nil {
		w.tx.Rollback(ctx) //nolint:errcheck // the outcome is reported as unknown anyway
		w.tx, w.pending = nil, nil
		return err
	}
	return w.commit(ctx)
}

func (w *batchWrite) begin(ctx context.Context) error {
	tx, err := w.s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("opening a transaction to isolate refused records: %w", err)
	}
	w.tx, w.savepoints = tx, 0
	return nil
}

// commit commits the isolating transaction; only then do its records
// count as stored for the recent-key cache.
func (w *batchWrite) commit(ctx context.Context) error {
	// The refused records go into rejected_records in the same
	// transaction: no commit of their own (one WAL flush each), and the
	// good records and the evidence of the bad ones land together.
	if fresh := w.res.Refused[w.kept:]; len(fresh) > 0 {
		recs := make([]RejectedRecord, len(fresh))
		for j, r := range fresh {
			sg := w.batch[r.Index]
			recs[j] = RejectedRecord{Signal: sg, Acked: sg.Path != signal.PathDirect, SQLState: r.SQLState, Reason: r.Message}
		}
		if err := w.s.quarantine(ctx, w.tx, recs); err != nil {
			w.tx.Rollback(ctx) //nolint:errcheck // reported as unknown below
			w.tx, w.pending = nil, nil
			return fmt.Errorf("keeping refused records: %w", err)
		}
		for j := range fresh {
			fresh[j].Kept = true
		}
		w.kept = len(w.res.Refused)
	}
	err := w.tx.Commit(ctx)
	w.tx = nil
	w.res.Commits++
	if err != nil {
		w.pending = nil
		return fmt.Errorf("committing the records isolated from refused ones: %w", err)
	}
	w.s.recent.add(w.epoch, w.pending)
	w.pending = nil
	return nil
}

// splitAt handles a data error at pos (or -1) in idx: it writes the part
// before the named record and that record alone, or without a position
// the first half, and returns what is left to write.
func (w *batchWrite) splitAt(ctx context.Context, idx []int, pos int) ([]int, error) {
	if w.savepoints >= maxSavepoints {
		if err := w.commit(ctx); err != nil {
			return nil, err
		}
		if err := w.begin(ctx); err != nil {
			return nil, err
		}
	}
	if pos >= 0 && w.trustLines {
		if err := w.write(ctx, idx[:pos]); err != nil {
			return nil, err
		}
		before := len(w.res.Refused)
		if err := w.write(ctx, idx[pos:pos+1]); err != nil {
			return nil, err
		}
		if len(w.res.Refused) == before {
			w.trustLines = false // the row Postgres named stored fine
		}
		return idx[pos+1:], nil
	}
	h := len(idx) / 2
	if err := w.write(ctx, idx[:h]); err != nil {
		return nil, err
	}
	return idx[h:], nil
}

func (w *batchWrite) refuse(i int, err error) {
	code, msg := SQLState(err)
	w.res.Refused = append(w.res.Refused, Refusal{Index: i, SQLState: code, Message: msg})
}

// expandRefusals refuses the repeats inside the batch of a refused record
// too (the cache left them out of the write), and sorts the refusals.
func (w *batchWrite) expandRefusals(fresh []int) {
	if len(w.res.Refused) == 0 {
		return
	}
	if len(fresh) < len(w.batch) {
		byKey := make(map[recentKey]Refusal, len(w.res.Refused))
		for _, r := range w.res.Refused {
			byKey[w.keys[r.Index]] = r
		}
		isFresh := make(map[int]bool, len(fresh))
		for _, i := range fresh {
			isFresh[i] = true
		}
		for i := range w.batch {
			if isFresh[i] {
				continue
			}
			if r, ok := byKey[w.keys[i]]; ok {
				r.Index = i
				w.res.Refused = append(w.res.Refused, r)
			}
		}
	}
	sort.Slice(w.res.Refused, func(a, b int) bool { return w.res.Refused[a].Index < w.res.Refused[b].Index })
}

// stored notes that the records idx are committed.
func (w *batchWrite) stored(idx []int, inserted int) {
	w.res.Inserted += inserted
	keys := make([]recentKey, len(idx))
	for j, i := range idx {
		keys[j] = w.keys[i]
		if w.refs[i].has {
			if w.framed == nil {
				w.framed = map[int64]bool{}
			}
			w.framed[w.refs[i].hash] = true
		}
	}
	if w.tx != nil {
		w.pending = append(w.pending, keys...)
		return
	}
	w.s.recent.add(w.epoch, keys)
}

// frameBytes places the raw frames over the records idx: each frame not
// yet stored goes on the first of them that carries it.
func (w *batchWrite) frameBytes(idx []int) [][]byte {
	out := make([][]byte, len(idx))
	if w.framed == nil && len(idx) == len(w.batch) {
		// The whole batch, nothing stored yet: frameRefs placed them.
		for j, i := range idx {
			out[j] = w.refs[i].bytes
		}
		return out
	}
	var placed map[int64]struct{}
	var last int64
	haveLast := false
	for j, i := range idx {
		r := w.refs[i]
		if !r.has || (haveLast && r.hash == last) || w.framed[r.hash] {
			continue
		}
		if placed == nil {
			placed = make(map[int64]struct{}, 8)
		}
		if _, ok := placed[r.hash]; ok {
			continue
		}
		placed[r.hash] = struct{}{}
		last, haveLast = r.hash, true
		out[j] = w.batch[i].Frame
	}
	return out
}

// attempt writes the records idx in one go: all of them are committed, or
// none. On a data error pos is the position in idx of the record Postgres
// named, or -1.
func (w *batchWrite) attempt(ctx context.Context, idx []int) (pos int, err error) {
	n, err := w.copyFast(ctx, idx)
	if err == nil {
		w.stored(idx, int(n))
		return -1, nil
	}
	if !isUniqueViolation(err) {
		return lineIn(err, len(idx)), fmt.Errorf("copying signals: %w", err)
	}
	return w.conflict(ctx, idx)
}

// lineIn is the 0-based row of a COPY of n rows that err names, or -1.
func lineIn(err error, n int) int {
	if line, ok := copyLine(err); ok && line <= n {
		return line - 1
	}
	return -1
}

// copyFast writes the signals idx with one binary COPY in its own
// transaction and returns the rows copied.
func (w *batchWrite) copyFast(ctx context.Context, idx []int) (int64, error) {
	frames := w.frameBytes(idx)
	bufp := copyBufs.Get().(*[]byte)
	buf := append((*bufp)[:0], copyHeader...)
	var now time.Time
	for j, i := range idx {
		recv := w.batch[i].Recv
		if recv.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			recv = now
		}
		fr := frameRef{hash: w.refs[i].hash, has: w.refs[i].has, bytes: frames[j]}
		buf = appendCopyRow(buf, &w.batch[i], recv, w.hashes[i], fr)
	}
	buf = append(buf, copyTrailer...)
	if w.tx != nil {
		return w.copyInSavepoint(ctx, bufp, buf)
	}
	c, err := w.s.pool.Acquire(ctx)
	if err != nil {
		copyBufs.Put(bufp)
		return 0, err
	}
	defer c.Release()
	w.res.Copies++
	tag, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), copySignalsSQL)
	if err == nil {
		w.res.Commits++
	}
	if err != nil {
		// When the server fails the COPY, pgconn may return before its
		// sending goroutine stops reading buf: the buffer is not reused.
		return 0, err
	}
	if cap(buf) <= maxPooledCopyBuf {
		*bufp = buf
		copyBufs.Put(bufp)
	}
	return tag.RowsAffected(), nil
}

// copyInSavepoint runs the COPY of buf inside the isolating transaction,
// under a savepoint that a refused COPY rolls back to.
func (w *batchWrite) copyInSavepoint(ctx context.Context, bufp *[]byte, buf []byte) (int64, error) {
	sp, err := w.tx.Begin(ctx)
	if err != nil {
		copyBufs.Put(bufp)
		return 0, fmt.Errorf("opening savepoint: %w", err)
	}
	w.savepoints++
	w.res.Copies++
	tag, err := sp.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), copySignalsSQL)
	if err != nil {
		// As in copyFast, buf is not reused after a failed COPY. A failed
		// rollback leaves the transaction's outcome unknown: that error,
		// not the data error, is what the write reports.
		if rerr := sp.Rollback(ctx); rerr != nil {
			return 0, fmt.Errorf("rolling back to savepoint after a refused COPY: %w", rerr)
		}
		return 0, err
	}
	if cap(buf) <= maxPooledCopyBuf {
		*bufp = buf
		copyBufs.Put(bufp)
	}
	if err := sp.Commit(ctx); err != nil {
		return 0, fmt.Errorf("releasing savepoint: %w", err)
	}
	return tag.RowsAffected(), nil
}

// conflict writes the records idx after a COPY hit the idempotency key:
// in one transaction it looks up which keys are stored and copies the
// others; if a concurrent writer stored some since, it inserts through a
// staging table with ON CONFLICT DO NOTHING.
func (w *batchWrite) conflict(ctx context.Context, idx []int) (int, error) {
	pos := -1
	inserted := 0
	// Inside the isolating transaction this is a savepoint of it.
	var db interface {
		Begin(ctx context.Context) (pgx.Tx, error)
	} = w.s.pool
	if w.tx != nil {
		db = w.tx
		w.savepoints++
	}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, at, err := w.unstored(ctx, tx, idx)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("opening savepoint: %w", err)
		}
		w.res.Copies++
		n, err := sp.CopyFrom(ctx, pgx.Identifier{"signals"}, SignalColumns, pgx.CopyFromRows(rows))
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("releasing savepoint: %w", err)
			}
			inserted = int(n)
			return nil
		}
		if !isUniqueViolation(err) {
			if p := lineIn(err, len(rows)); p >= 0 {
				pos = at[p]
			}
			return fmt.Errorf("copying new signals: %w", err)
		}
		// A concurrent writer stored some of them since the lookup.
		if err := sp.Rollback(ctx); err != nil {
			return fmt.Errorf("rolling back to savepoint: %w", err)
		}
		ins, p, err := w.insertIdempotent(ctx, tx, rows)
		if p >= 0 {
			pos = at[p]
		}
		inserted = ins
		return err
	})
	if err != nil {
		return pos, err
	}
	if w.tx == nil {
		w.res.Commits++
	}
	w.stored(idx, inserted) // every key of idx is stored now
	return -1, nil
}

// unstored returns the rows of the records idx whose keys are not stored
// yet, each key once, with the raw frame moved to the first remaining
// record of each frame not stored yet, and for each row its position in
// idx.
func (w *batchWrite) unstored(ctx context.Context, tx pgx.Tx, idx []int) ([][]any, []int, error) {
	devs := make([]string, len(idx))
	tss := make([]time.Time, len(idx))
	hashes := make([]int64, len(idx))
	for j, i := range idx {
		devs[j], tss[j], hashes[j] = w.batch[i].DeviceID, w.batch[i].TS.UTC(), w.hashes[i]
	}
	q, err := tx.Query(ctx, `SELECT k.i FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) WITH ORDINALITY AS k(d, t, h, i)
		WHERE EXISTS (SELECT 1 FROM signals s WHERE s.device_id = k.d AND s.ts = k.t AND s.record_hash = k.h)`, devs, tss, hashes)
	if err != nil {
		return nil, nil, fmt.Errorf("looking up stored keys: %w", err)
	}
	stored := make(map[int]bool)
	for q.Next() {
		var i int64
		if err := q.Scan(&i); err != nil {
			q.Close()
			return nil, nil, fmt.Errorf("looking up stored keys: %w", err)
		}
		stored[int(i)-1] = true
	}
	q.Close()
	if err := q.Err(); err != nil {
		return nil, nil, fmt.Errorf("looking up stored keys: %w", err)
	}
	// Every write that stores records of a frame stores the frame on one
	// of them, so a frame with any record already stored is stored.
	framed := make(map[int64]bool, len(w.framed))
	for h := range w.framed {
		framed[h] = true
	}
	for j := range stored {
		if r := w.refs[idx[j]]; r.has {
			framed[r.hash] = true
		}
	}
	seen := make(map[recentKey]bool, len(idx))
	rows := make([][]any, 0, len(idx))
	at := make([]int, 0, len(idx))
	for j, i := range idx {
		k := w.keys[i]
		if stored[j] || seen[k] {
			continue
		}
		seen[k] = true
		var fh, frame any
		if r := w.refs[i]; r.has {
			fh = r.hash
			if !framed[r.hash] {
				framed[r.hash] = true
				frame = w.batch[i].Frame
			}
		}
		rows = append(rows, signalRow(&w.batch[i], fh, frame))
		at = append(at, j)
	}
	return rows, at, nil
}

// insertIdempotent inserts rows through a staging table with ON CONFLICT
// DO NOTHING on the idempotency key. On a data error p is the row the
// staging COPY named, or -1.
func (w *batchWrite) insertIdempotent(ctx context.Context, tx pgx.Tx, rows [][]any) (n, p int, err error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS signals_staging (
		device_id text, ts timestamptz, recv timestamptz,
		lat double precision, lon double precision, alt double precision, speed double precision,
		heading double precision, sats double precision, hdop double precision, valid boolean,
		rpm double precision, coolant double precision, fuel double precision, voltage double precision,
		odometer double precision, engine_load double precision, throttle double precision,
		dtcs text[], attrs jsonb, protocol text, path text, record_hash bigint, frame_hash bigint, frame bytea,
		decoder_version text
	) ON COMMIT DELETE ROWS`); err != nil {
		return 0, -1, fmt.Errorf("creating staging table: %w", err)
	}
	// A previous transaction on this connection that rolled back may have
	// left rows behind.
	if _, err := tx.Exec(ctx, "TRUNCATE signals_staging"); err != nil {
		return 0, -1, fmt.Errorf("clearing staging table: %w", err)
	}
	w.res.Copies++
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"signals_staging"}, SignalColumns, pgx.CopyFromRows(rows)); err != nil {
		return 0, lineIn(err, len(rows)), fmt.Errorf("copying signals to staging: %w", err)
	}
	cols := strings.Join(SignalColumns, ", ")
	tag, err := tx.Exec(ctx, `INSERT INTO signals (`+cols+`) SELECT `+cols+`
		FROM signals_staging ON CONFLICT (device_id, ts, record_hash) DO NOTHING`)
	if err != nil {
		// No position here: the write halves.
		return 0, -1, fmt.Errorf("inserting signals from staging: %w", err)
	}
	return int(tag.RowsAffected()), -1, nil
}

// isUniqueViolation: the COPY hit a unique key, normally the idempotency
// key (signals_idempotency, on each partition under its own name). A
// unique violation the conflict path cannot resolve (ON CONFLICT covers
// only that key) comes out of it as a DataError.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
