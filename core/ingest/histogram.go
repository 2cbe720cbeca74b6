package ingest

import (
	"math"
	"sort"
	"sync"
)

// Histogram is a fixed-bucket histogram safe for concurrent use, shaped for
// the Prometheus exposition format (cumulative buckets, sum, count).
type Histogram struct {
	mu      sync.Mutex
	bounds  []float64
	counts  []uint64 // per bucket, last is +Inf
	sum     float64
	count   uint64
	samples []float64 // ring of recent values for quantiles
	next    int
}

const histogramSamples = 4096

// NewHistogram returns a histogram with the given upper bounds (ascending).
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1), samples: make([]float64, 0, histogramSamples)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	h.mu.Lock()
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.count++
	if len(h.samples) < histogramSamples {
		h.samples = append(h.samples, v)
	} else {
		h.samples[h.next] = v
		h.next = (h.next + 1) % histogramSamples
	}
	h.mu.Unlock()
}

// Snapshot returns the bounds, cumulative counts (one per bound, then the
// total), the sum and the count.
func (h *Histogram) Snapshot() (bounds []float64, cumulative []uint64, sum float64, count uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cumulative = make([]uint64, len(h.counts))
	var c uint64
	for i, n := range h.counts {
		c += n
		cumulative[i] = c
	}
	return append([]float64(nil), h.bounds...), cumulative, h.sum, h.count
}

// Quantile estimates the q-quantile (0..1) over the most recent values;
// NaN when empty.
func (h *Histogram) Quantile(q float64) float64 {
	h.mu.Lock()
	s := append([]float64(nil), h.samples...)
	h.mu.Unlock()
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}
