package loadgen

import (
	"math"
	"sync"
	"time"
)

// Latency is a log-bucketed latency histogram (about 4 % resolution from
// 10 µs to 1000 s) that is cheap to merge; its zero value is empty.
type Latency struct {
	counts [latBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	latBase    = 1.04
	latMin     = 10 * time.Microsecond
	latBuckets = 480
)

var latLog = math.Log(latBase)

func latBucket(d time.Duration) int {
	if d <= latMin {
		return 0
	}
	i := int(math.Log(float64(d)/float64(latMin))/latLog) + 1
	return min(i, latBuckets-1)
}

// upper bound of bucket i.
func latUpper(i int) time.Duration {
	return time.Duration(float64(latMin) * math.Pow(latBase, float64(i)))
}

// Observe adds one latency.
func (l *Latency) Observe(d time.Duration) {
	l.counts[latBucket(d)]++
	l.n++
	l.max = max(l.max, d)
}

// Merge adds o's observations.
func (l *Latency) Merge(o *Latency) {
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.n += o.n
	l.max = max(l.max, o.max)
}

// Count is the number of observations.
func (l *Latency) Count() uint64 { return l.n }

// Max is the largest observation.
func (l *Latency) Max() time.Duration { return l.max }

// Quantile returns the q-quantile (0..1) as the upper bound of its bucket,
// capped at the maximum; 0 when empty.
func (l *Latency) Quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(l.n)))
	rank = max(rank, 1)
	var c uint64
	for i, n := range l.counts {
		c += n
		if c >= rank {
			return min(latUpper(i), l.max)
		}
	}
	return l.max
}

// Millis converts a duration to fractional milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// lockedLatency is a Latency behind a mutex.
type lockedLatency struct {
	mu sync.Mutex
	h  Latency
}

func (l *lockedLatency) observe(d time.Duration) {
	l.mu.Lock()
	l.h.Observe(d)
	l.mu.Unlock()
}

// take returns the histogram and resets it.
func (l *lockedLatency) take() Latency {
	l.mu.Lock()
	h := l.h
	l.h = Latency{}
	l.mu.Unlock()
	return h
}
