package plugins

import (
	"hash/maphash"
	"sync"
	"time"
)

// Defaults of a ServerTimes whose zero value is used.
const (
	// DefaultServerTimeEntries bounds the frames a ServerTimes remembers
	// (about 160 bytes each, measured: some 10 MiB when full).
	DefaultServerTimeEntries = 1 << 16
	// DefaultResendWindow is how long after a frame's first receipt a
	// resend of it gets the same timestamp: longer than devices take to
	// resend a frame whose ack was lost (they do on reconnect, within
	// seconds to a few minutes), short enough that a periodic message that
	// really repeats itself is not merged with copies from much earlier.
	DefaultResendWindow = 10 * time.Minute
)

// ServerTimes gives records that carry no device time a timestamp that a
// resend of the same frame reproduces.
//
// A record's idempotency key is (device_id, ts, record_hash). A record
// without a device time is stamped with the server's receive time, so a
// resend of it (the ack was lost, the device sends the same bytes again on
// a new connection, maybe to another listener) would get a new ts, a new key
// and be stored twice. A decoder therefore asks Stamp for the record's ts:
// the first receipt of a (device, fingerprint) pair stamps it with the
// receive time and remembers that; a receipt of the same pair within the
// resend window gets the remembered time, the same key, and the store
// drops the copy.
//
// The fingerprint is whatever tells one message from another: the frame's
// bytes including any sequence number the protocol carries. Where a
// protocol has none, an identical message within the window cannot be told
// from a resend and is taken as one; its README says so.
//
// The memory is bounded: at most a fixed number of entries (the oldest are
// forgotten first) of a fixed size each, whatever the length of device ids
// and frames (both are hashed). It does not survive a restart and is not
// shared between nodes: a resend after either gets a new timestamp.
//
// A ServerTimes is safe for concurrent use; a decoder owns one, shared by
// all its sessions on every listener. The zero value is ready to use with
// DefaultServerTimeEntries and DefaultResendWindow.
type ServerTimes struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	seeds   [2]maphash.Seed
	entries map[serverTimeKey]serverTimeEntry
	// fifo holds the keys in the order they were stamped (a ring of
	// len(fifo) slots from head); entries expire and are evicted in that
	// order.
	fifo  []serverTimeSlot
	head  int
	count int
	gen   uint64
}

// serverTimeKey is a 128-bit hash of (device, fingerprint): fixed-size
// entries however long the inputs, and collisions out of reach.
type serverTimeKey [2]uint64

type serverTimeEntry struct {
	ts  time.Time
	gen uint64 // which fifo slot owns the entry
}

type serverTimeSlot struct {
	key serverTimeKey
	gen uint64
	ts  time.Time
}

// NewServerTimes returns a ServerTimes that remembers at most maxEntries
// frames (DefaultServerTimeEntries when ≤ 0) for window after their first
// receipt (DefaultResendWindow when ≤ 0).
func NewServerTimes(maxEntries int, window time.Duration) *ServerTimes {
	return &ServerTimes{max: maxEntries, window: window}
}

func (c *ServerTimes) init() {
	if c.entries != nil {
		return
	}
	if c.max <= 0 {
		c.max = DefaultServerTimeEntries
	}
	if c.window <= 0 {
		c.window = DefaultResendWindow
	}
	c.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	c.entries = make(map[serverTimeKey]serverTimeEntry)
}

// grow makes room for one more slot: the ring doubles up to max, and at
// max the oldest entry is forgotten.
func (c *ServerTimes) grow() {
	if c.count < len(c.fifo) {
		return
	}
	if len(c.fifo) >= c.max {
		c.pop()
		return
	}
	n := min(max(2*len(c.fifo), 64), c.max)
	ring := make([]serverTimeSlot, n)
	for i := range c.count {
		ring[i] = c.fifo[(c.head+i)%len(c.fifo)]
	}
	c.fifo, c.head = ring, 0
}

func (c *ServerTimes) key(device string, fingerprint []byte) serverTimeKey {
	var k serverTimeKey
	for i, seed := range c.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		_, _ = h.WriteString(device)
		_ = h.WriteByte(0)
		_, _ = h.Write(fingerprint)
		k[i] = h.Sum64()
	}
	return k
}

// Stamp returns the timestamp of a record of device that has no device
// time, decoded from a frame whose fingerprint is fingerprint, received at
// recv (already truncated to the precision the decoder stores). It is recv
// on the first receipt, and the first receipt's time for a receipt of the
// same device and fingerprint within the resend window after it.
func (c *ServerTimes) Stamp(device string, fingerprint []byte, recv time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	c.expire(recv)
	k := c.key(device, fingerprint)
	if e, ok := c.entries[k]; ok {
		// Either order: sessions stamp concurrently, so the original can
		// reach Stamp after its resend did.
		if d := recv.Sub(e.ts); d >= -c.window && d <= c.window {
			return e.ts
		}
		// Outside the window: a new message.
	}
	c.grow()
	c.gen++
	slot := (c.head + c.count) % len(c.fifo)
	c.fifo[slot] = serverTimeSlot{key: k, gen: c.gen, ts: recv}
	c.count++
	c.entries[k] = serverTimeEntry{ts: recv, gen: c.gen}
	return recv
}

// expire forgets the entries stamped more than the window before now.
func (c *ServerTimes) expire(now time.Time) {
	for c.count > 0 && now.Sub(c.fifo[c.head].ts) > c.window {
		c.pop()
	}
}

// pop forgets the oldest entry.
func (c *ServerTimes) pop() {
	s := c.fifo[c.head]
	if e, ok := c.entries[s.key]; ok && e.gen == s.gen {
		delete(c.entries, s.key)
	}
	c.fifo[c.head] = serverTimeSlot{}
	c.head = (c.head + 1) % len(c.fifo)
	c.count--
}

// Len reports how many frames are remembered.
func (c *ServerTimes) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
