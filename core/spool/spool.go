package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/signal"
)

// Errors.
var (
	// ErrFull: the journal stayed at its size limit until the write's
	// context ended. The batch is not durable (backpressure: no ack).
	ErrFull = errors.New("spool full")
	// ErrClosed: Write after Close.
	ErrClosed = errors.New("spool closed")
)

const (
	headerSize = 8
	stampSize  = 8
	// maxRecord bounds a record length read back from disk, so a corrupt
	// length cannot make recovery allocate or skip gigabytes.
	maxRecord = 1 << 30
	segSuffix = ".seg"
	deadDir   = "dead"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure Open.
type Options struct {
	Dir          string
	MaxBytes     int64 // total journal size at which Write waits
	SegmentBytes int64 // a segment is sealed once it reaches this size
	FS           FS    // nil: the OS file system
	Log          hclog.Logger
}

type segment struct {
	seq     uint64
	size    int64 // committed bytes (what replay reads)
	records int
	signals int
	oldest  time.Time // written-at of its first record
}

func (s *segment) name() string { return fmt.Sprintf("%016d%s", s.seq, segSuffix) }

// Spool is the disk journal. It is safe for concurrent use.
type Spool struct {
	opt Options
	fs  FS
	log hclog.Logger

	mu       sync.Mutex
	segs     []*segment // oldest first; the last may be active
	active   File       // open file of segs[len-1], nil when sealed
	nextSeq  uint64
	total    int64
	freed    chan struct{} // closed and replaced whenever space is freed
	closed   bool
	created  []string   // directories Open made, deepest first
	replayMu sync.Mutex // one replay at a time

	writes, writeSignals, writeFailures, fullWaits, fullRefusals     atomic.Uint64
	replayedRecords, replayedSignals, replayedSegments, deadSegments atomic.Uint64
	recoveredRecords, truncatedBytes                                 atomic.Uint64
	full                                                             atomic.Bool
	// dead counts the segments in dead/ (found on open or moved there).
	dead atomic.Int64
}

// Open opens (creating it if needed) the journal in opt.Dir and recovers
// it: every segment is scanned, checksums verified, and a torn or corrupt
// tail is truncated away.
func Open(opt Options) (*Spool, error) {
	if opt.Dir == "" {
		return nil, errors.New("opening spool: no directory")
	}
	if opt.SegmentBytes <= 0 {
		opt.SegmentBytes = 16 << 20
	}
	if opt.MaxBytes < opt.SegmentBytes {
		opt.MaxBytes = opt.SegmentBytes
	}
	if opt.FS == nil {
		opt.FS = OS{}
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	s := &Spool{opt: opt, fs: opt.FS, log: opt.Log, nextSeq: 1, freed: make(chan struct{})}
	// Directories made here are removed again by Close if they are still
	// empty, so a node that never spooled leaves nothing behind.
	for p := filepath.Clean(opt.Dir); ; p = filepath.Dir(p) {
		if _, err := s.fs.ReadDir(p); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		s.created = append(s.created, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := s.fs.MkdirAll(opt.Dir); err != nil {
		return nil, fmt.Errorf("creating spool directory: %w", err)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Spool) path(name string) string { return filepath.Join(s.opt.Dir, name) }

func parseSeq(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(num) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(num, 10, 64)
	return v, err == nil && v > 0
}

func (s *Spool) recover() error {
	names, err := s.fs.ReadDir(s.opt.Dir)
	if err != nil {
		return fmt.Errorf("listing spool directory: %w", err)
	}
	for _, name := range names {
		seq, ok := parseSeq(name)
		if !ok {
			continue
		}
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
		b, err := s.fs.ReadFile(s.path(name))
		if err != nil {
			return fmt.Errorf("reading spool segment %s: %w", name, err)
		}
		seg := &segment{seq: seq}
		off, bad := scan(b, func(stamp time.Time, payload []byte) {
			if seg.records == 0 {
				seg.oldest = stamp
			}
			seg.records++
			seg.signals += batchLen(payload)
		})
		if bad != "" {
			s.log.Warn("spool segment has a torn or corrupt tail; truncating it (those bytes were never acked)",
				"segment", name, "valid_bytes", off, "dropped_bytes", len(b)-off, "reason", bad)
			if err := s.fs.Truncate(s.path(name), int64(off)); err != nil {
				return fmt.Errorf("truncating torn spool segment %s: %w", name, err)
			}
			s.truncatedBytes.Add(uint64(len(b) - off))
		}
		if seg.records == 0 {
			if err := s.fs.Remove(s.path(name)); err != nil {
				return fmt.Errorf("removing empty spool segment %s: %w", name, err)
			}
			continue
		}
		seg.size = int64(off)
		s.total += seg.size
		s.recoveredRecords.Add(uint64(seg.records))
		s.segs = append(s.segs, seg)
	}
	if names, err := s.fs.ReadDir(filepath.Join(s.opt.Dir, deadDir)); err == nil {
		for _, name := range names {
			if _, ok := parseSeq(name); ok {
				s.dead.Add(1)
			}
		}
		if n := s.dead.Load(); n > 0 {
			s.log.Warn("spool holds undecodable segments in dead/ (kept for inspection, not replayed)", "segments", n)
		}
	}
	if n := len(s.segs); n > 0 {
		s.log.Info("spool holds records to replay", "segments", n, "bytes", s.total,
			"records", s.recoveredRecords.Load(), "oldest", s.segs[0].oldest)
	}
	return nil
}

// batchLen reads the signal count of an encoded batch cheaply (0 when it
// cannot tell).
func batchLen(payload []byte) int {
	sigs, err := signal.DecodeBatch(payload)
	if err != nil {
		return 0
	}
	return len(sigs)
}

// scan walks the records of a segment, calling fn for each valid one, and
// returns the offset after the last valid record and, if it stopped early,
// why.
func scan(b []byte, fn func(stamp time.Time, payload []byte)) (int, string) {
	off := 0
	for off < len(b) {
		if len(b)-off < headerSize {
			return off, "short record header"
		}
		n := binary.BigEndian.Uint32(b[off:])
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n < stampSize || n > maxRecord {
			return off, fmt.Sprintf("bad record length %d", n)
		}
		if uint64(len(b)-off-headerSize) < uint64(n) {
			return off, "record shorter than its length"
		}
		body := b[off+headerSize : off+headerSize+int(n)]
		if crc32.Checksum(body, castagnoli) != sum {
			return off, "checksum mismatch"
		}
		fn(time.Unix(0, int64(binary.BigEndian.Uint64(body))), body[stampSize:])
		off += headerSize + int(n)
	}
	return off, ""
}

// Name is the path label "spool".
func (s *Spool) Name() string { return signal.PathSpool }

// encode builds one record.
func encode(batch []signal.Signal, now time.Time) []byte {
	rec := make([]byte, headerSize+stampSize, headerSize+stampSize+256*len(batch))
	binary.BigEndian.PutUint64(rec[headerSize:], uint64(now.UnixNano()))
	rec = signal.AppendBatch(rec, batch)
	body := rec[headerSize:]
	binary.BigEndian.PutUint32(rec, uint32(len(body)))
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(body, castagnoli))
	return rec
}

// Write appends the batch as one record and returns after it is fsynced.
// When the journal is full it waits for replay to free space until ctx
// ends, then returns ErrFull. Any error means the batch is not durable.
func (s *Spool) Write(ctx context.Context, batch []signal.Signal) error {
	rec := encode(batch, time.Now())
	if len(rec)-headerSize > maxRecord {
		s.writeFailures.Add(1)
		return fmt.Errorf("spooling batch: record of %d bytes exceeds the %d byte limit", len(rec), maxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	waited := false
	for !s.closed && s.total > 0 && s.total+int64(len(rec)) > s.opt.MaxBytes {
		if !waited {
			waited = true
			s.fullWaits.Add(1)
			if !s.full.Swap(true) {
				s.log.Warn("spool full: waiting for replay to free space; frames stay unacked meanwhile",
					"bytes", s.total, "max_bytes", s.opt.MaxBytes)
			}
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			s.fullRefusals.Add(1)
			s.writeFailures.Add(1)
			return fmt.Errorf("spooling batch: %w (%d of %d bytes): %w", ErrFull, s.total, s.opt.MaxBytes, ctx.Err())
		}
	}
	if s.closed {
		s.writeFailures.Add(1)
		return ErrClosed
	}
	if s.full.Swap(false) {
		s.log.Info("spool has space again", "bytes", s.total)
	}
	if err := s.appendLocked(rec, len(batch)); err != nil {
		s.writeFailures.Add(1)
		return fmt.Errorf("spooling batch: %w", err)
	}
	s.writes.Add(1)
	s.writeSignals.Add(uint64(len(batch)))
	return nil
}

func (s *Spool) appendLocked(rec []byte, nsig int) error {
	var seg *segment
	if n := len(s.segs); n > 0 && s.active != nil {
		seg = s.segs[n-1]
		if seg.size > 0 && seg.size+int64(len(rec)) > s.opt.SegmentBytes {
			s.sealLocked()
			seg = nil
		}
	}
	if seg == nil {
		seg = &segment{seq: s.nextSeq}
		f, err := s.fs.Create(s.path(seg.name()))
		if err != nil {
			return fmt.Errorf("creating segment: %w", err)
		}
		if err := s.fs.SyncDir(s.opt.Dir); err != nil {
			f.Close()
			s.fs.Remove(s.path(seg.name())) //nolint:errcheck // best effort; recovery removes empty segments
			return fmt.Errorf("syncing spool directory: %w", err)
		}
		s.nextSeq++
		s.active = f
		s.segs = append(s.segs, seg)
	}
	_, err := s.active.Write(rec)
	syncFailed := false
	if err == nil {
		if err = s.active.Sync(); err != nil {
			syncFailed = true
			err = fmt.Errorf("fsync: %w", err)
		}
	}
	if err != nil {
		// Undo a partial append so later records stay readable; if even
		// that fails, or fsync failed (the page cache can no longer be
		// trusted), seal the segment at its last good size: recovery and
		// replay read only up to there.
		if terr := s.active.Truncate(seg.size); terr != nil || syncFailed {
			s.sealLocked()
		}
		if seg.records == 0 {
			s.dropEmptyLocked(seg)
		}
		return err
	}
	if seg.records == 0 {
		seg.oldest = time.Unix(0, int64(binary.BigEndian.Uint64(rec[headerSize:])))
	}
	seg.size += int64(len(rec))
	seg.records++
	seg.signals += nsig
	s.total += int64(len(rec))
	return nil
}

func (s *Spool) dropEmptyLocked(seg *segment) {
	if s.active != nil && s.segs[len(s.segs)-1] == seg {
		s.active.Close()
		s.active = nil
	}
	for i, x := range s.segs {
		if x == seg {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	s.fs.Remove(s.path(seg.name())) //nolint:errcheck // an empty segment; recovery removes it otherwise
}

func (s *Spool) sealLocked() {
	if s.active != nil {
		s.active.Close()
		s.active = nil
	}
}

// Close seals the active segment. Pending writers get ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.sealLocked()
	close(s.freed)
	s.freed = make(chan struct{})
	if len(s.segs) == 0 {
		for _, dir := range s.created {
			if s.fs.Remove(dir) != nil { // not empty: keep it and its parents
				break
			}
		}
	}
	return nil
}

// Replay hands every record written before the call to fn, oldest first,
// grouping records into slices of up to maxSignals signals. A segment is
// deleted only after fn returned nil for all its records; on an error
// replay stops and the segment stays (it is replayed whole next time: fn
// must be idempotent, as store.WriteSignals is). fn keeps what the store
// refuses (records Postgres will never take are its to quarantine): an
// error from fn means "not stored yet". Only a segment whose records
// cannot be decoded is moved to dead/. It returns the signals replayed.
func (s *Spool) Replay(ctx context.Context, maxSignals int, fn func(ctx context.Context, batch []signal.Signal) error) (int, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.mu.Lock()
	if n := len(s.segs); n > 0 && s.active != nil {
		s.sealLocked()
	}
	pending := make([]segment, 0, len(s.segs))
	for _, seg := range s.segs {
		pending = append(pending, *seg)
	}
	s.mu.Unlock()
	total := 0
	for _, seg := range pending {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.replaySegment(ctx, seg, maxSignals, fn)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Spool) replaySegment(ctx context.Context, seg segment, maxSignals int, fn func(context.Context, []signal.Signal) error) (int, error) {
	b, err := s.fs.ReadFile(s.path(seg.name()))
	if err != nil {
		return 0, fmt.Errorf("reading spool segment %s: %w", seg.name(), err)
	}
	if int64(len(b)) > seg.size {
		b = b[:seg.size]
	}
	var batches [][]signal.Signal
	var decodeErr error
	off, bad := scan(b, func(_ time.Time, payload []byte) {
		if decodeErr != nil {
			return
		}
		sigs, err := signal.DecodeBatch(payload)
		if err != nil {
			decodeErr = err
			return
		}
		batches = append(batches, sigs)
	})
	if bad != "" || int64(off) != seg.size {
		decodeErr = fmt.Errorf("segment changed on disk: %s at byte %d", bad, off)
	}
	if decodeErr != nil {
		return 0, s.bury(seg, decodeErr)
	}
	n := 0
	var group []signal.Signal
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		if err := fn(ctx, group); err != nil {
			return err
		}
		n += len(group)
		group = nil
		return nil
	}
	for _, sigs := range batches {
		if len(group) > 0 && len(group)+len(sigs) > maxSignals {
			if err := flush(); err != nil {
				return n, fmt.Errorf("replaying spool segment %s: %w", seg.name(), err)
			}
		}
		group = append(group, sigs...)
	}
	if err := flush(); err != nil {
		return n, fmt.Errorf("replaying spool segment %s: %w", seg.name(), err)
	}
	s.replayedRecords.Add(uint64(seg.records))
	s.replayedSignals.Add(uint64(n))
	s.replayedSegments.Add(1)
	return n, s.release(seg.seq, s.fs.Remove(s.path(seg.name())), "removing replayed segment")
}

// bury moves an undecodable segment to dead/ so it is kept for inspection
// but no longer replayed.
func (s *Spool) bury(seg segment, why error) error {
	dead := filepath.Join(s.opt.Dir, deadDir)
	err := s.fs.MkdirAll(dead)
	if err == nil {
		err = s.fs.Rename(s.path(seg.name()), filepath.Join(dead, seg.name()))
	}
	if err == nil {
		s.deadSegments.Add(1)
		s.dead.Add(1)
		s.log.Error("spool segment cannot be decoded; moved to dead/ for inspection", "segment", seg.name(), "reason", why)
	}
	return s.release(seg.seq, err, "moving undecodable segment to dead/")
}

// release forgets a segment after it was removed or moved.
func (s *Spool) release(seq uint64, opErr error, what string) error {
	if opErr != nil {
		return fmt.Errorf("%s: %w", what, opErr)
	}
	s.fs.SyncDir(s.opt.Dir) //nolint:errcheck // a resurrected segment is replayed again, idempotently
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.segs {
		if x.seq == seq {
			s.total -= x.size
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	close(s.freed)
	s.freed = make(chan struct{})
	return nil
}

// Stats is a snapshot of the spool's counters and gauges.
type Stats struct {
	Bytes            int64 // journal size (the backlog)
	MaxBytes         int64
	Segments         int
	Records          int // records waiting for replay
	Signals          int // signals waiting for replay
	OldestAge        time.Duration
	Full             bool   // writers are waiting for space
	Writes           uint64 // batches spooled
	WriteSignals     uint64
	WriteFailures    uint64
	FullWaits        uint64 // writes that had to wait for space
	FullRefusals     uint64 // writes refused because the spool stayed full
	ReplayedRecords  uint64
	ReplayedSignals  uint64
	ReplayedSegments uint64
	DeadSegments     uint64 // segments this process moved to dead/
	DeadBacklog      int64  // segments in dead/ (undecodable, kept for inspection)
	RecoveredRecords uint64 // records found on open
	TruncatedBytes   uint64 // torn tails cut on open
}

// Stats returns a snapshot.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{Bytes: s.total, MaxBytes: s.opt.MaxBytes, Segments: len(s.segs)}
	for _, seg := range s.segs {
		st.Records += seg.records
		st.Signals += seg.signals
	}
	if len(s.segs) > 0 && s.segs[0].records > 0 {
		st.OldestAge = time.Since(s.segs[0].oldest)
	}
	s.mu.Unlock()
	st.Full = s.full.Load()
	st.Writes, st.WriteSignals, st.WriteFailures = s.writes.Load(), s.writeSignals.Load(), s.writeFailures.Load()
	st.FullWaits, st.FullRefusals = s.fullWaits.Load(), s.fullRefusals.Load()
	st.ReplayedRecords, st.ReplayedSignals = s.replayedRecords.Load(), s.replayedSignals.Load()
	st.ReplayedSegments, st.DeadSegments = s.replayedSegments.Load(), s.deadSegments.Load()
	st.DeadBacklog = s.dead.Load()
	st.RecoveredRecords, st.TruncatedBytes = s.recoveredRecords.Load(), s.truncatedBytes.Load()
	return st
}
