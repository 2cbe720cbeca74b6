package metrics

import (
	"bufio"
	"math"
	"strconv"
	"strings"
)

// Collector writes a stage's metric families. A family's samples must be
// written one after another, and no two collectors may write the same
// family unless they are called one after the other.
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

// Writer writes the Prometheus text exposition format (version 0.0.4).
// Samples of one metric name must be written one after another; HELP and
// TYPE are written before the first (the help of later samples of the
// same name is ignored, so it may be "").
type Writer struct {
	w    *bufio.Writer
	seen map[string]bool
}

// NewWriter returns a Writer onto w; the caller flushes w.
func NewWriter(w *bufio.Writer) *Writer {
	return &Writer{w: w, seen: map[string]bool{}}
}

func (m *Writer) header(name, typ, help string) {
	if m.seen[name] {
		return
	}
	m.seen[name] = true
	m.w.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	m.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// labels renders k1, v1, k2, v2 … as {k1="v1",k2="v2"}.
func labels(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + `="` + escapeLabel(kv[i+1]) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func (m *Writer) sample(name string, v float64, kv ...string) {
	m.w.WriteString(name + labels(kv...) + " " + formatValue(v) + "\n")
}

// Counter writes one counter sample; kv are label names and values.
func (m *Writer) Counter(name, help string, v float64, kv ...string) {
	m.header(name, "counter", help)
	m.sample(name, v, kv...)
}

// Gauge writes one gauge sample; kv are label names and values.
func (m *Writer) Gauge(name, help string, v float64, kv ...string) {
	m.header(name, "gauge", help)
	m.sample(name, v, kv...)
}

// Histogram writes a histogram family from h; a nil h writes nothing.
func (m *Writer) Histogram(name, help string, h Histogram, kv ...string) {
	if h == nil {
		return
	}
	m.header(name, "histogram", help)
	bounds, cum, sum, count := h.Snapshot()
	for i, b := range bounds {
		m.sample(name+"_bucket", float64(cum[i]), append(append([]string(nil), kv...), "le", formatValue(b))...)
	}
	m.sample(name+"_bucket", float64(count), append(append([]string(nil), kv...), "le", "+Inf")...)
	m.sample(name+"_sum", sum, kv...)
	m.sample(name+"_count", float64(count), kv...)
}

// Bool is 1 for true and 0 for false, the value of a 0/1 gauge.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
