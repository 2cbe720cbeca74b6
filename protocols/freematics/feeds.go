package freematics

import (
	"container/list"
	"crypto/subtle"
	"fmt"
	"net"
	"sync"
	"time"
)

// Feed ids this server assigns: from 0x100 up to the four hex digits a
// header can carry. Small ids (1, 2, …) are left to other servers: Traccar
// answers every login with feed 1, so a device moved from Traccar sends
// "1#…" and is recognised by its session instead.
const (
	firstFeed = 0x100
	lastFeed  = 0xFFFF
	feedIDs   = lastFeed - firstFeed + 1
)

// Bounds of the feed table.
const (
	// MaxFeeds is how many devices hold a feed id at once (every id a
	// header can carry). Beyond it the device idle longest loses its id.
	MaxFeeds = feedIDs
	// MaxFeedsPerSource is how many of them one source IP address holds
	// at once. Beyond it that source's device idle longest loses its id,
	// so a flood of logins from one address churns only its own entries
	// and never takes an id from a device behind another address. 1,024
	// leaves room for many devices behind one carrier NAT address.
	MaxFeedsPerSource = 1024
)

// feedTable holds the feed ids assigned at login, shared by every session
// of the decoder (every listener), so that a device whose UDP source port
// changes is still recognised by its feed id. It is bounded globally and
// per source address, least recently used first out; a device that loses
// its id keeps its session (which knows its own feed) and gets a new id at
// its next login.
type feedTable struct {
	mu        sync.Mutex
	max       int
	perSource int
	byFeed    map[uint16]*feedEntry
	byDev     map[string]*feedEntry
	lru       list.List // *feedEntry, most recently used first
	sources   map[string]*list.List
	used      [lastFeed + 1]bool
	next      int // the next id to try: ids are handed out round robin
}

type feedEntry struct {
	dev    string
	feed   uint16
	source string // the IP address of the login
	// key is the server key the login carried ("" on a listener without
	// one): a listener with a key resolves only feed ids whose login
	// carried the same key.
	key string
	// base is the device's tick base (UTC minus its millisecond tick),
	// shared by its sessions; baseGPS says it was learned from GPS time.
	base      time.Time
	baseGPS   bool
	global    *list.Element
	perSource *list.Element
}

func (t *feedTable) init() {
	if t.byFeed != nil {
		return
	}
	if t.max <= 0 || t.max > feedIDs {
		t.max = MaxFeeds
	}
	if t.perSource <= 0 {
		t.perSource = MaxFeedsPerSource
	}
	t.byFeed = map[uint16]*feedEntry{}
	t.byDev = map[string]*feedEntry{}
	t.sources = map[string]*list.List{}
	t.next = firstFeed
}

// assign returns the feed id of dev, logged in from source with key,
// assigning the next free one (and making room) when it has none.
func (t *feedTable) assign(dev, source, key string) (uint16, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	if e, ok := t.byDev[dev]; ok {
		e.key = key
		if e.source != source {
			t.leaveSource(e)
			e.source = source
			t.joinSource(e)
		} else {
			t.sources[source].MoveToFront(e.perSource)
		}
		t.lru.MoveToFront(e.global)
		return e.feed, nil
	}
	if l := t.sources[source]; l != nil && l.Len() >= t.perSource {
		t.evict(l.Back().Value.(*feedEntry))
	}
	if len(t.byDev) >= t.max {
		t.evict(t.lru.Back().Value.(*feedEntry))
	}
	id, ok := t.free()
	if !ok {
		// Not reached: eviction above leaves a free id.
		return 0, fmt.Errorf("assigning a feed id to %q: all %d feed ids are in use", dev, feedIDs)
	}
	e := &feedEntry{dev: dev, feed: id, source: source, key: key}
	e.global = t.lru.PushFront(e)
	t.joinSource(e)
	t.byDev[dev] = e
	t.byFeed[id] = e
	t.used[id] = true
	return id, nil
}

// free finds an unused id, round robin from the last one handed out, so
// that an id freed by eviction is handed out again as late as possible.
func (t *feedTable) free() (uint16, bool) {
	for range feedIDs {
		id := t.next
		t.next++
		if t.next > lastFeed {
			t.next = firstFeed
		}
		if !t.used[id] {
			return uint16(id), true
		}
	}
	return 0, false
}

func (t *feedTable) joinSource(e *feedEntry) {
	l := t.sources[e.source]
	if l == nil {
		l = list.New()
		t.sources[e.source] = l
	}
	e.perSource = l.PushFront(e)
}

func (t *feedTable) leaveSource(e *feedEntry) {
	l := t.sources[e.source]
	l.Remove(e.perSource)
	if l.Len() == 0 {
		delete(t.sources, e.source)
	}
}

func (t *feedTable) evict(e *feedEntry) {
	t.leaveSource(e)
	t.lru.Remove(e.global)
	delete(t.byDev, e.dev)
	delete(t.byFeed, e.feed)
	t.used[e.feed] = false
}

// lookup returns the device a feed id was assigned to, when it was
// assigned to a login from the same source address and, on a listener with
// a server key, to a login that carried that key. A feed id is 16 bits,
// easily guessed: binding it to the login's address keeps another sender
// from writing into a device's records by naming its feed.
func (t *feedTable) lookup(feed uint16, source, key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byFeed[feed]
	if !ok || e.source != source || subtle.ConstantTimeCompare([]byte(e.key), []byte(key)) != 1 {
		return "", false
	}
	t.lru.MoveToFront(e.global)
	t.sources[e.source].MoveToFront(e.perSource)
	return e.dev, true
}

// TickBaseTolerance is how far a newly learned tick base may be from the
// device's shared one and still be taken as the same (the same boot, the
// estimate off by network delay or clock drift): the shared one is used, so
// every session of the device times tick-only records alike.
const TickBaseTolerance = 2 * time.Second

// tickBase returns the tick base a session of dev should use, given the one
// it just learned: the device's shared base when the new one is within
// TickBaseTolerance of it (a GPS-learned base replaces one learned from a
// receive time once), else the new one, which becomes the shared base (a
// reboot restarts the tick; drift beyond the tolerance). A device without a
// feed entry keeps its own.
func (t *feedTable) tickBase(dev string, base time.Time, fromGPS bool) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byDev[dev]
	if !ok {
		return base
	}
	d := base.Sub(e.base)
	if d < 0 {
		d = -d
	}
	if !e.base.IsZero() && d <= TickBaseTolerance && (e.baseGPS || !fromGPS) {
		return e.base
	}
	e.base, e.baseGPS = base, fromGPS
	return base
}

// len reports how many devices hold a feed id.
func (t *feedTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byDev)
}

// sourceOf is the address part of a remote address: the unit the per-source
// bound counts (a device's UDP port may change, its address rarely).
func sourceOf(addr net.Addr) string {
	switch a := addr.(type) {
	case nil:
		return ""
	case *net.UDPAddr:
		if a != nil {
			return a.IP.String()
		}
		return ""
	case *net.TCPAddr:
		if a != nil {
			return a.IP.String()
		}
		return ""
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}
