package store

import (
	"math/rand/v2"
	"testing"
)

func randomKey(rng *rand.Rand) recentKey {
	return recentKey{hash: int64(rng.Uint64()), ts: int64(rng.Uint64() >> 12), dev: rng.Uint64()}
}

// naiveRecent is the definition fresh must meet: committed keys of the
// current and the previous generation, generations of limit keys.
type naiveRecent struct {
	limit     int
	cur, prev map[recentKey]struct{}
}

func (n *naiveRecent) add(keys []recentKey) {
	for _, k := range keys {
		if len(n.cur) >= n.limit {
			n.prev, n.cur = n.cur, map[recentKey]struct{}{}
		}
		n.cur[k] = struct{}{}
	}
}

func (n *naiveRecent) fresh(keys []recentKey) []int {
	seen := map[recentKey]bool{}
	var out []int
	for i, k := range keys {
		_, c := n.cur[k]
		_, p := n.prev[k]
		if c || p || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, i)
	}
	return out
}

// TestRecentKeysMatchesDefinition drives the cache and the definition with
// the same random batches (new keys, keys committed one or several
// generations ago, repeats inside a batch) across many generation changes.
func TestRecentKeysMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := newRecentKeysLimit(500)
	want := &naiveRecent{limit: 500, cur: map[recentKey]struct{}{}, prev: map[recentKey]struct{}{}}
	var history []recentKey
	skipped := 0
	for round := 0; round < 400; round++ {
		var batch []recentKey
		for i := 0; i < 1+rng.IntN(60); i++ {
			switch x := rng.IntN(10); {
			case x < 6 || len(history) == 0:
				batch = append(batch, randomKey(rng))
			case x < 9:
				batch = append(batch, history[len(history)-1-rng.IntN(min(len(history), 1500))])
			default:
				if len(batch) > 0 {
					batch = append(batch, batch[rng.IntN(len(batch))])
				}
			}
		}
		got, exp := r.fresh(batch), want.fresh(batch)
		if len(got) != len(exp) {
			t.Fatalf("round %d: fresh %v, want %v", round, got, exp)
		}
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("round %d: fresh %v, want %v", round, got, exp)
			}
		}
		skipped += len(batch) - len(got)
		committed := make([]recentKey, len(got))
		for j, i := range got {
			committed[j] = batch[i]
		}
		r.add(0, committed)
		want.add(committed)
		history = append(history, committed...)
	}
	if skipped < 1000 {
		t.Fatalf("only %d keys were known or repeated: the test no longer exercises the cache", skipped)
	}
}

// BenchmarkRecentKeysFresh: a 1,000-key batch of new keys against a full
// cache (two generations), then committing it.
func BenchmarkRecentKeysFresh(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	r := newRecentKeys()
	fill := make([]recentKey, 2*recentPerGeneration)
	for i := range fill {
		fill[i] = randomKey(rng)
	}
	r.add(0, fill)
	batch := make([]recentKey, 1000)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = randomKey(rng)
		}
		r.add(0, keysAt(batch, r.fresh(batch)))
	}
}

func keysAt(keys []recentKey, idx []int) []recentKey {
	out := make([]recentKey, len(idx))
	for j, i := range idx {
		out[j] = keys[i]
	}
	return out
}
