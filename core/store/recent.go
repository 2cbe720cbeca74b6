package store

import (
	"hash/maphash"
	"sync"
)

// recentKeys remembers the idempotency keys this process committed
// recently, so that a batch carrying resends (a device that did not get its
// ack, a replayed queue message) can leave the records it knows are stored
// out of the COPY instead of failing it on the unique key and writing the
// batch twice. It is an optimisation only: a key it does not know goes to
// Postgres, which stays the deduplicator; a key it knows was committed.
//
// Two generations of a bounded set: when the current one is full it
// becomes the previous one and the oldest is dropped, so memory stays
// bounded (about 2 × recentPerGeneration × 40 bytes).
type recentKeys struct {
	mu        sync.Mutex
	cur, prev map[recentKey]struct{}
}

// recentPerGeneration bounds one generation of remembered keys.
const recentPerGeneration = 1 << 18

// recentKey identifies a record by its record_hash, device time and a
// second, independently seeded hash of its device id: two records collide
// only if two 64-bit hashes of different functions collide at the same
// microsecond.
type recentKey struct {
	hash int64
	ts   int64
	dev  uint64
}

var devSeed = maphash.MakeSeed()

func keyOf(deviceID string, tsMicro, recordHash int64) recentKey {
	return recentKey{hash: recordHash, ts: tsMicro, dev: maphash.String(devSeed, deviceID)}
}

func newRecentKeys() *recentKeys {
	return &recentKeys{cur: make(map[recentKey]struct{}, 1024), prev: map[recentKey]struct{}{}}
}

// add records committed keys.
func (r *recentKeys) add(keys []recentKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if len(r.cur) >= recentPerGeneration {
			r.prev, r.cur = r.cur, make(map[recentKey]struct{}, recentPerGeneration)
		}
		r.cur[k] = struct{}{}
	}
}

// fresh returns the indices of keys neither known to be committed by this
// process nor repeats of an earlier key of the same batch, in order.
func (r *recentKeys) fresh(keys []recentKey) []int {
	out := make([]int, 0, len(keys))
	var seen map[recentKey]struct{}
	if len(keys) > 1 {
		seen = make(map[recentKey]struct{}, len(keys))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range keys {
		if _, ok := r.cur[k]; ok {
			continue
		}
		if len(r.prev) > 0 {
			if _, ok := r.prev[k]; ok {
				continue
			}
		}
		if seen != nil {
			if _, ok := seen[k]; ok {
				continue
			}
			seen[k] = struct{}{}
		}
		out = append(out, i)
	}
	return out
}
