package metrics

import (
	"bufio"
	"math"
	"strings"
	"testing"
)

type fixedHist struct{}

func (fixedHist) Snapshot() ([]float64, []uint64, float64, uint64) {
	return []float64{1, 2.5}, []uint64{3, 5}, 7.25, 6
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w *Writer)
		want  string
	}{
		{"counter with labels, help once", func(w *Writer) {
			w.Counter("x_total", "Things.", 1, "k", "a")
			w.Counter("x_total", "", 2, "k", "b")
		}, "# HELP x_total Things.\n# TYPE x_total counter\nx_total{k=\"a\"} 1\nx_total{k=\"b\"} 2\n"},
		{"gauge escapes help and label values", func(w *Writer) {
			w.Gauge("g", "a\\b\nc", 0.5, "v", "q\"\\\n")
		}, "# HELP g a\\\\b\\nc\n# TYPE g gauge\ng{v=\"q\\\"\\\\\\n\"} 0.5\n"},
		{"special values", func(w *Writer) {
			w.Gauge("i", "I.", math.Inf(1))
			w.Gauge("n", "N.", math.NaN())
			w.Gauge("b", "B.", Bool(true))
		}, "# HELP i I.\n# TYPE i gauge\ni +Inf\n# HELP n N.\n# TYPE n gauge\nn NaN\n# HELP b B.\n# TYPE b gauge\nb 1\n"},
		{"histogram", func(w *Writer) {
			w.Histogram("h", "H.", fixedHist{}, "t", "x")
		}, "# HELP h H.\n# TYPE h histogram\nh_bucket{t=\"x\",le=\"1\"} 3\nh_bucket{t=\"x\",le=\"2.5\"} 5\nh_bucket{t=\"x\",le=\"+Inf\"} 6\nh_sum{t=\"x\"} 7.25\nh_count{t=\"x\"} 6\n"},
		{"nil histogram writes nothing", func(w *Writer) { w.Histogram("h", "H.", nil) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			bw := bufio.NewWriter(&b)
			tc.write(NewWriter(bw))
			bw.Flush()
			if b.String() != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}
