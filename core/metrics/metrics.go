package metrics

import (
	"math"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector writes a stage's metric families. Every sample of a family
// (one metric name) carries the same label names, and a family's help
// is the same wherever it is written.
type Collector interface {
	Collect(w *Writer)
}

// CollectorFunc adapts a function to Collector.
type CollectorFunc func(w *Writer)

// Collect calls f.
func (f CollectorFunc) Collect(w *Writer) { f(w) }

// Histogram is what a histogram family is written from: upper bounds and
// cumulative counts per bound (the +Inf bucket is count), sum and count.
type Histogram interface {
	Snapshot() (bounds []float64, cumulative []uint64, sum float64, count uint64)
}

// Writer turns a collector's samples into client_golang constant
// metrics. The help of a later sample of the same name may be "": the
// first one's is used.
type Writer struct {
	ch    chan<- prometheus.Metric
	help  map[string]string
	descs map[string]*prometheus.Desc
}

// NewWriter returns a Writer that sends onto ch (what a
// prometheus.Collector's Collect is given).
func NewWriter(ch chan<- prometheus.Metric) *Writer {
	return &Writer{ch: ch, help: map[string]string{}, descs: map[string]*prometheus.Desc{}}
}

// desc returns the descriptor of name with the label names of kv (k1, v1,
// k2, v2 …) and the label values.
func (m *Writer) desc(name, help string, kv []string) (*prometheus.Desc, []string) {
	if help == "" {
		help = m.help[name]
	} else if _, ok := m.help[name]; !ok {
		m.help[name] = help
	}
	names := make([]string, 0, len(kv)/2)
	values := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		names = append(names, kv[i])
		values = append(values, kv[i+1])
	}
	key := name + "\xff" + strings.Join(names, "\xff")
	d, ok := m.descs[key]
	if !ok {
		d = prometheus.NewDesc(name, help, names, nil)
		m.descs[key] = d
	}
	return d, values
}

func (m *Writer) send(d *prometheus.Desc, typ prometheus.ValueType, v float64, values []string) {
	s, err := prometheus.NewConstMetric(d, typ, v, values...)
	if err != nil {
		s = prometheus.NewInvalidMetric(d, err)
	}
	m.ch <- s
}

// Counter writes one counter sample; kv are label names and values.
func (m *Writer) Counter(name, help string, v float64, kv ...string) {
	d, values := m.desc(name, help, kv)
	m.send(d, prometheus.CounterValue, v, values)
}

// Gauge writes one gauge sample; kv are label names and values.
func (m *Writer) Gauge(name, help string, v float64, kv ...string) {
	d, values := m.desc(name, help, kv)
	m.send(d, prometheus.GaugeValue, v, values)
}

// Histogram writes a histogram from h; a nil h writes nothing.
func (m *Writer) Histogram(name, help string, h Histogram, kv ...string) {
	if h == nil {
		return
	}
	d, values := m.desc(name, help, kv)
	bounds, cum, sum, count := h.Snapshot()
	buckets := make(map[float64]uint64, len(bounds))
	for i, b := range bounds {
		if !math.IsInf(b, 1) {
			buckets[b] = cum[i]
		}
	}
	s, err := prometheus.NewConstHistogram(d, count, sum, buckets, values...)
	if err != nil {
		s = prometheus.NewInvalidMetric(d, err)
	}
	m.ch <- s
}

// Bool is 1 for true and 0 for false, the value of a 0/1 gauge.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Milliseconds presents a histogram kept in milliseconds in seconds, the
// base unit /metrics uses (bounds and sum divided by 1000); nil stays nil.
func Milliseconds(h Histogram) Histogram {
	if h == nil {
		return nil
	}
	return scaled{h, 1000}
}

type scaled struct {
	h   Histogram
	div float64
}

func (s scaled) Snapshot() ([]float64, []uint64, float64, uint64) {
	bounds, cum, sum, count := s.h.Snapshot()
	out := make([]float64, len(bounds))
	for i, b := range bounds {
		out[i] = b / s.div
	}
	return out, cum, sum / s.div, count
}

// Prometheus turns c into a prometheus.Collector. It describes nothing
// (an unchecked collector: the families a stage writes may vary, e.g.
// one sample per rule), so register it with a prometheus.Registry's
// Register and let Gather check consistency.
func Prometheus(c Collector) prometheus.Collector { return adapter{c} }

type adapter struct{ c Collector }

func (adapter) Describe(chan<- *prometheus.Desc) {}

func (a adapter) Collect(ch chan<- prometheus.Metric) { a.c.Collect(NewWriter(ch)) }
