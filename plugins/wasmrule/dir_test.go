package wasmrule

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func speedRangeVersion(t *testing.T, version string) []byte {
	src, err := os.ReadFile("../../checks-wasm/examples/wat/speed_range.wat")
	if err != nil {
		t.Fatal(err)
	}
	if len(version) != len("1.0.0") {
		t.Fatal("the WAT example hard-codes the metadata length: keep the version 5 bytes long")
	}
	return wat2wasm(t, strings.Replace(string(src), `\"version\":\"1.0.0\"`, `\"version\":\"`+version+`\"`, 1))
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirHotReload(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuffer{}
	h := newTestHost(t, Config{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	dir := t.TempDir()
	d := NewDir(h, dir, time.Hour)
	defer d.Close(ctx)
	scan := func() {
		t.Helper()
		if err := d.Scan(ctx); err != nil {
			t.Fatal(err)
		}
	}
	live := func(version string) *Rule {
		t.Helper()
		r := d.Rule("example.speed_range")
		if r == nil || r.Version() != version {
			t.Fatalf("live rule %v, want version %s; status %+v", r, version, d.Status())
		}
		v, err := r.Check(ctx, speeds(10, 400))
		if err != nil || v[0].Status != StatusPass || v[1] != (Verdict{Status: StatusFail, Reason: 2}) {
			t.Fatalf("live rule check: %v %v", v, err)
		}
		return r
	}
	a := filepath.Join(dir, "speed.wasm")

	scan()
	if len(d.Rules()) != 0 || len(d.Status()) != 0 {
		t.Fatalf("empty folder has rules: %+v", d.Status())
	}

	// Added.
	writeFile(t, a, speedRange(t))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not a rule"))
	scan()
	v1 := live("1.0.0")
	if st := d.Status(); len(st) != 1 || st[0].Status != "live" || st[0].File != "speed.wasm" || st[0].Meta == nil {
		t.Fatalf("status %+v", st)
	}

	// Replaced by a broken file: refused, the previous version keeps running.
	writeFile(t, a, []byte("\x00asm\x01\x00\x00\x00broken"))
	scan()
	if live("1.0.0") != v1 {
		t.Fatal("the live rule changed")
	}
	st := d.Status()[0]
	if st.Status != "live" || !strings.Contains(st.Refused, "invalid rule module") {
		t.Fatalf("status after a broken file: %+v", st)
	}
	if !strings.Contains(logs.String(), "rule file refused; previous version keeps running") {
		t.Fatalf("no refusal log line:\n%s", logs)
	}
	scan() // unchanged broken file: not retried, not logged again
	if n := strings.Count(logs.String(), "rule file refused"); n != 1 {
		t.Errorf("refusal logged %d times", n)
	}

	// Replaced by a new version.
	writeFile(t, a, speedRangeVersion(t, "1.1.0"))
	scan()
	v2 := live("1.1.0")
	if _, err := v1.Check(ctx, speeds(1)); KindOf(err) != KindClosed {
		t.Errorf("the replaced version still runs: %v", err)
	}
	if d.Status()[0].Refused != "" {
		t.Errorf("refusal not cleared: %+v", d.Status()[0])
	}

	// A sibling test file whose case fails refuses the change.
	tests := filepath.Join(dir, "speed"+TestsSuffix)
	writeFile(t, tests, []byte(`{"name":"wrong on purpose","in":{"speed":50},"want":"fail","reason":2}`+"\n"))
	scan()
	if live("1.1.0") != v2 || !strings.Contains(d.Status()[0].Refused, `"wrong on purpose": want fail reason 2, got pass`) {
		t.Fatalf("failing tests file not refused: %+v", d.Status()[0])
	}
	writeFile(t, tests, []byte("# speed tests\n"+`{"name":"fast","in":{"speed":301},"want":"fail","reason":2}`+"\n"))
	scan()
	if live("1.1.0") == v2 || d.Status()[0].Refused != "" {
		t.Fatalf("passing tests file not applied: %+v", d.Status()[0])
	}

	// A second file with the same rule name waits until the name is free.
	b := filepath.Join(dir, "zz-copy.wasm")
	writeFile(t, b, speedRange(t))
	scan()
	st2 := d.Status()
	if len(st2) != 2 || st2[1].Status != "refused" || !strings.Contains(st2[1].Refused, "already served by speed.wasm") {
		t.Fatalf("name clash: %+v", st2)
	}

	// Removed: the rule goes away and the waiting copy takes the name.
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	scan()
	live("1.0.0")
	if st := d.Status(); len(st) != 1 || st[0].File != "zz-copy.wasm" || st[0].Status != "live" {
		t.Fatalf("after removal: %+v", st)
	}
}

func TestDirRunStopsOnCancel(t *testing.T) {
	h := newTestHost(t, Config{})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "speed.wasm"), speedRange(t))
	d := NewDir(h, dir, 10*time.Millisecond)
	if err := d.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := d.Rule("example.speed_range")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := r.Check(context.Background(), speeds(1)); KindOf(err) != KindClosed {
		t.Errorf("rule still open after Run returned: %v", err)
	}
}

// TestConcurrentChecks hammers one rule from many goroutines with a pool
// smaller than the number of callers and checks every verdict.
func TestConcurrentChecks(t *testing.T) {
	h := newTestHost(t, Config{PoolSize: 2, BatchSize: 16})
	r := compile(t, h, speedRange(t))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for it := 0; it < 40; it++ {
				vs := make([]float64, 1+rng.IntN(70))
				for i := range vs {
					vs[i] = rng.Float64()*800 - 100
				}
				got, err := r.Check(context.Background(), speeds(vs...))
				if err != nil {
					errs <- err
					return
				}
				for i, v := range vs {
					if got[i] != wantSpeed(v, true) {
						errs <- &Error{Rule: "mismatch", Kind: KindBadVerdict}
						return
					}
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := r.Stats(); st.Failed != 0 || st.Batches == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestCheckSplitsBatches: more inputs than BatchSize and inputs with
// different clocks are split into several calls, in order.
func TestCheckSplitsBatches(t *testing.T) {
	h := newTestHost(t, Config{BatchSize: 3})
	r := compile(t, h, speedRange(t))
	vs := []float64{1, -1, 2, 500, 3, -2, 4}
	in := speeds(vs...)
	in[4].Now = t0.Add(time.Hour)
	got, err := r.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if got[i] != wantSpeed(v, true) {
			t.Errorf("signal %d: %+v", i, got[i])
		}
	}
	// [1 -1 2] [500] [3] [-2 4]: the clock change at index 4 cuts twice.
	if st := r.Stats(); st.Batches != 4 || st.Signals != 7 {
		t.Errorf("batches %d signals %d, want 4 and 7", st.Batches, st.Signals)
	}
}
