package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

func batchOf(dev string, from, n int) []signal.Signal {
	out := make([]signal.Signal, n)
	for i := range out {
		s := signal.New(dev, time.Date(2026, 1, 1, 0, 0, from+i, 0, time.UTC))
		s.Lat, s.Lon = 54.6, 25.2
		s.SetAttr("seq", from+i)
		s.Protocol, s.Path, s.Frame = "test", signal.PathSpool, []byte{byte(from), byte(i)}
		out[i] = s
	}
	return out
}

func open(t *testing.T, dir string, mut func(*Options)) *Spool {
	t.Helper()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 12}
	if mut != nil {
		mut(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// collect replays everything and returns the seq attrs in order.
func collect(t *testing.T, s *Spool) []int64 {
	t.Helper()
	var got []int64
	_, err := s.Replay(context.Background(), 1000, func(_ context.Context, b []signal.Signal) error {
		for _, sig := range b {
			got = append(got, sig.Attrs["seq"].(int64))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func wantSeq(t *testing.T, got []int64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("replayed %d signals, want %d", len(got), n)
	}
	for i, v := range got {
		if v != int64(i) {
			t.Fatalf("signal %d has seq %d: out of order", i, v)
		}
	}
}

func TestWriteReplayInOrderAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, nil)
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		if err := s.Write(ctx, batchOf("dev", i*5, 5)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Segments < 3 || st.Records != 40 || st.Signals != 200 || st.Bytes == 0 {
		t.Fatalf("stats %+v: want several segments, 40 records, 200 signals", st)
	}
	wantSeq(t, collect(t, s), 200)
	if st := s.Stats(); st.Bytes != 0 || st.Segments != 0 || st.ReplayedSignals != 200 {
		t.Fatalf("after replay %+v", st)
	}
	if names, _ := (OS{}).ReadDir(dir); len(names) != 0 {
		t.Fatalf("segments left after replay: %v", names)
	}
}

func TestReplayKeepsSegmentUntilCommit(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := s.Write(ctx, batchOf("dev", i*2, 2)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("postgres down")
	n, err := s.Replay(ctx, 1000, func(context.Context, []signal.Signal) error { return boom })
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("replay returned %d, %v", n, err)
	}
	if st := s.Stats(); st.Records != 3 {
		t.Fatalf("records after failed replay: %d, want 3", st.Records)
	}
	wantSeq(t, collect(t, s), 6)
}

func TestRecoveryTruncatesTornTail(t *testing.T) {
	tests := []struct {
		name string
		tail func(full []byte) []byte
	}{
		{"half header", func(full []byte) []byte { return full[:3] }},
		{"half payload", func(full []byte) []byte { return full[:len(full)/2] }},
		{"bad checksum", func(full []byte) []byte {
			b := append([]byte(nil), full...)
			b[len(b)-1] ^= 0x55
			return b
		}},
		{"zero length", func([]byte) []byte { return make([]byte, 12) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if err := s.Write(context.Background(), batchOf("dev", i*3, 3)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			// A crash while appending the 4th record: part of it on disk,
			// Write never returned, so it was never acked.
			seg := filepath.Join(dir, fmt.Sprintf("%016d.seg", 1))
			before, _ := os.Stat(seg)
			f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.tail(encode(batchOf("dev", 9, 3), time.Now())))
			f.Close()

			r := open(t, dir, nil)
			st := r.Stats()
			if st.Records != 3 || st.RecoveredRecords != 3 || st.TruncatedBytes == 0 {
				t.Fatalf("recovered %+v: want the 3 complete records and a truncated tail", st)
			}
			after, _ := os.Stat(seg)
			if after.Size() != before.Size() {
				t.Fatalf("segment %d bytes after recovery, want %d", after.Size(), before.Size())
			}
			// New writes after recovery land after the good records.
			if err := r.Write(context.Background(), batchOf("dev", 9, 3)); err != nil {
				t.Fatal(err)
			}
			wantSeq(t, collect(t, r), 12)
		})
	}
}

// faultFS fails writes (like a full disk) while fail is set.
type faultFS struct {
	OS
	mu   sync.Mutex
	fail error
}

func (f *faultFS) set(err error) { f.mu.Lock(); f.fail = err; f.mu.Unlock() }
func (f *faultFS) err() error    { f.mu.Lock(); defer f.mu.Unlock(); return f.fail }

func (f *faultFS) Create(name string) (File, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	file, err := f.OS.Create(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.err(); err != nil {
		// Half the record reaches the disk, then ENOSPC.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, err
	}
	return f.File.Write(p)
}

func TestWriteErrorLeavesNoPartialRecord(t *testing.T) {
	dir := t.TempDir()
	ffs := &faultFS{}
	s := open(t, dir, func(o *Options) { o.FS = ffs })
	ctx := context.Background()
	if err := s.Write(ctx, batchOf("dev", 0, 2)); err != nil {
		t.Fatal(err)
	}
	ffs.set(&os.PathError{Op: "write", Path: "seg", Err: syscall.ENOSPC})
	for i := 0; i < 3; i++ {
		if err := s.Write(ctx, batchOf("dev", 100, 2)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write on a full disk: %v", err)
		}
	}
	ffs.set(nil)
	if err := s.Write(ctx, batchOf("dev", 2, 2)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.WriteFailures != 3 || st.Writes != 2 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()
	r := open(t, dir, nil)
	if st := r.Stats(); st.TruncatedBytes != 0 || st.Records != 2 {
		t.Fatalf("reopened %+v: partial records were left behind", st)
	}
	wantSeq(t, collect(t, r), 4)
}

func TestFullSpoolBlocksThenRefusesThenResumes(t *testing.T) {
	one := int64(len(encode(batchOf("dev", 0, 4), time.Now())))
	s := open(t, t.TempDir(), func(o *Options) { o.SegmentBytes = one * 2; o.MaxBytes = one * 4 })
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if err := s.Write(ctx, batchOf("dev", i*4, 4)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.Write(short, batchOf("dev", 16, 4))
	cancel()
	if !errors.Is(err, ErrFull) {
		t.Fatalf("write to a full spool: %v, want ErrFull", err)
	}
	if st := s.Stats(); st.FullRefusals != 1 || st.Records != 4 || !st.Full {
		t.Fatalf("stats %+v", st)
	}
	// A writer waits; replay frees space; the writer completes.
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, batchOf("dev", 16, 4)) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().FullWaits < 2 {
		if time.Now().After(deadline) {
			t.Fatal("writer never waited for space")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("write returned %v while the spool was full", err)
	default:
	}
	wantSeq(t, collect(t, s), 16)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := collect(t, s)
	if len(got) != 4 || got[0] != 16 {
		t.Fatalf("after resume replayed %v", got)
	}
}

func TestUndecodableSegmentMovedToDead(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A record with a valid checksum whose batch is from a future version.
	rec := encode(batchOf("dev", 0, 1), time.Now())
	rec[headerSize+stampSize+3] = 99
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(rec[headerSize:], castagnoli))
	if err := os.WriteFile(filepath.Join(dir, "0000000000000007.seg"), rec, 0o640); err != nil {
		t.Fatal(err)
	}
	r := open(t, dir, nil)
	n, err := r.Replay(context.Background(), 100, func(context.Context, []signal.Signal) error {
		t.Fatal("undecodable record handed to replay")
		return nil
	})
	if err != nil || n != 0 {
		t.Fatalf("replay %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dead", "0000000000000007.seg")); err != nil {
		t.Fatalf("segment not kept in dead/: %v", err)
	}
	if st := r.Stats(); st.DeadSegments != 1 || st.DeadBacklog != 1 || st.Segments != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Reopened, the spool still knows dead/ holds a segment (health must
	// not say "empty" then).
	r2 := open(t, dir, nil)
	if st := r2.Stats(); st.DeadBacklog != 1 || st.DeadSegments != 0 {
		t.Fatalf("reopened: stats %+v", st)
	}
	// The next segment number continues after the dead one.
	if err := r.Write(context.Background(), batchOf("dev", 0, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "0000000000000008.seg")); err != nil {
		t.Fatalf("new segment: %v", err)
	}
}

func TestCloseRemovesDirectoriesItMadeWhenUnused(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "var", "spool")
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(root, "var")); !os.IsNotExist(err) {
		t.Fatalf("unused spool left %s behind: %v", filepath.Join(root, "var"), err)
	}
	// A spool with records keeps its directory.
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), batchOf("d", 0, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("spool with records lost its directory: %v", err)
	}
}
