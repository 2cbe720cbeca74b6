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
// bounded (about 2 × recentPerGeneration × 40 bytes, plus 2 MiB of filters).
type recentKeys struct {
	mu        sync.Mutex
	limit     int // keys per generation
	cur, prev map[recentKey]struct{}
	// curBits and prevBits are Bloom filters over the keys of cur and
	// prev: most keys of a batch are new, and two bits in a 1 MiB array
	// say so without probing two large maps (a filter never misses a key
	// it holds; a false "maybe" only costs the map lookup).
	curBits, prevBits []uint64
	// server identifies the Postgres server the keys were committed on
	// (serverIdentity); epoch counts the times it changed.
	server string
	epoch  uint64
}

// recentBloomBits is the size of one generation's filter: 32 bits per key
// at recentPerGeneration keys, two probes, about 0.4 % false "maybe"s.
const recentBloomBits = 1 << 23

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

func newRecentKeys() *recentKeys { return newRecentKeysLimit(recentPerGeneration) }

func newRecentKeysLimit(limit int) *recentKeys {
	return &recentKeys{limit: limit, cur: make(map[recentKey]struct{}, 1024), prev: map[recentKey]struct{}{},
		curBits: make([]uint64, recentBloomBits/64), prevBits: make([]uint64, recentBloomBits/64)}
}

// bloomBits are a key's two filter positions. The key's fields are hashes
// already; mixing them spreads the positions.
func (k recentKey) bloomBits() (uint64, uint64) {
	h := uint64(k.hash) ^ uint64(k.ts)*0x9e3779b97f4a7c15 ^ k.dev*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h % recentBloomBits, (h >> 32) % recentBloomBits
}

func maybeHas(bits []uint64, k recentKey) bool {
	a, b := k.bloomBits()
	return bits[a/64]&(1<<(a%64)) != 0 && bits[b/64]&(1<<(b%64)) != 0
}

// onServer notes the server a new connection reached. A server other
// than the one the keys were committed on (a promoted standby, a
// restarted or restored primary) may not hold them: they are forgotten,
// so a resend is written (and deduplicated by Postgres), never acked from
// memory. It reports whether keys were forgotten.
func (r *recentKeys) onServer(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == r.server {
		return false
	}
	first := r.server == ""
	r.server = id
	if first { // nothing was committed before the first connection
		return false
	}
	r.epoch++
	clear(r.cur)
	clear(r.prev)
	clear(r.curBits)
	clear(r.prevBits)
	return true
}

// currentEpoch is the number of server changes so far.
func (r *recentKeys) currentEpoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

// add records keys committed during epoch; keys of an earlier epoch (a
// commit on the previous server that finished after the change) are
// dropped.
func (r *recentKeys) add(epoch uint64, keys []recentKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch != r.epoch {
		return
	}
	for _, k := range keys {
		if len(r.cur) >= r.limit {
			r.prev, r.cur = r.cur, make(map[recentKey]struct{}, r.limit)
			r.prevBits, r.curBits = r.curBits, r.prevBits
			clear(r.curBits)
		}
		r.cur[k] = struct{}{}
		a, b := k.bloomBits()
		r.curBits[a/64] |= 1 << (a % 64)
		r.curBits[b/64] |= 1 << (b % 64)
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
		if maybeHas(r.curBits, k) {
			if _, ok := r.cur[k]; ok {
				continue
			}
		}
		if len(r.prev) > 0 && maybeHas(r.prevBits, k) {
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
