package quarantine

import (
	"net"
	"sort"
	"sync"
	"time"
)

// bucket is a token bucket: it holds up to burst tokens and gains rate
// tokens per second.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// full reports whether the bucket would be full at now: forgetting it then
// changes nothing.
func (b *bucket) full(now time.Time, rate, burst float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// sourceState is one source's bucket and what it held back since the last
// summary.
type sourceState struct {
	bucket
	held uint64
}

// OverflowSource names the shared bucket of the sources that found the
// source table full (more than maxSources distinct sources at once).
const OverflowSource = "(other sources)"

// limiter rate-limits rejections per source and for all sources together.
// It is safe for concurrent use.
type limiter struct {
	rate, burst             float64 // per source, tokens per second
	globalRate, globalBurst float64
	maxSources              int

	mu      sync.Mutex
	sources map[string]*sourceState
	global  bucket
	swept   time.Time
}

func newLimiter(perMinute, burst, globalPerMinute, globalBurst, maxSources int, now time.Time) *limiter {
	return &limiter{
		rate: float64(perMinute) / 60, burst: float64(burst),
		globalRate: float64(globalPerMinute) / 60, globalBurst: float64(globalBurst),
		maxSources: maxSources, sources: map[string]*sourceState{},
		global: bucket{tokens: float64(globalBurst), last: now},
	}
}

// allow reports whether a rejection from source may be stored and logged;
// when not, it is counted against the source for the next summary. The
// source's bucket is charged first, so one source's flood cannot use up
// the shared budget beyond its own rate.
func (l *limiter) allow(source string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[source]
	if s == nil {
		// A full table is swept at most once a second: under a spray of
		// new addresses a sweep per rejection would cost O(maxSources).
		if len(l.sources) >= l.maxSources && now.Sub(l.swept) >= time.Second {
			l.sweep(now)
		}
		if len(l.sources) >= l.maxSources {
			source = OverflowSource
			s = l.sources[source]
		}
		if s == nil {
			s = &sourceState{bucket: bucket{tokens: l.burst, last: now}}
			l.sources[source] = s
		}
	}
	if !s.take(now, l.rate, l.burst) || !l.global.take(now, l.globalRate, l.globalBurst) {
		s.held++
		return false
	}
	return true
}

// sweep forgets sources whose bucket has refilled and that held nothing
// back since the last summary: a new bucket for them would be the same.
func (l *limiter) sweep(now time.Time) {
	for k, s := range l.sources {
		if s.held == 0 && s.full(now, l.rate, l.burst) {
			delete(l.sources, k)
		}
	}
	l.swept = now
}

// held is one source's count of rejections held back.
type held struct {
	source string
	n      uint64
}

// takeHeld returns the sources that held rejections back since the last
// call, most first, resets their counts and forgets idle sources.
func (l *limiter) takeHeld(now time.Time) []held {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []held
	for k, s := range l.sources {
		if s.held > 0 {
			out = append(out, held{k, s.held})
			s.held = 0
		}
	}
	l.sweep(now)
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].source < out[j].source
	})
	return out
}

// tracked is how many sources have a bucket.
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// Source is the rate-limit key of a remote address: its IP without the
// port, and for IPv6 the /64 network (one subscriber's prefix), so a
// sender cannot get a fresh budget from each of its addresses.
func Source(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() != nil {
		return ip.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
