package metrics

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
		}, "# HELP b B.\n# TYPE b gauge\nb 1\n# HELP i I.\n# TYPE i gauge\ni +Inf\n# HELP n N.\n# TYPE n gauge\nn NaN\n"},
		{"histogram", func(w *Writer) {
			w.Histogram("h", "H.", fixedHist{}, "t", "x")
		}, "# HELP h H.\n# TYPE h histogram\nh_bucket{t=\"x\",le=\"1\"} 3\nh_bucket{t=\"x\",le=\"2.5\"} 5\nh_bucket{t=\"x\",le=\"+Inf\"} 6\nh_sum{t=\"x\"} 7.25\nh_count{t=\"x\"} 6\n"},
		{"milliseconds in seconds", func(w *Writer) {
			w.Histogram("h_seconds", "H.", Milliseconds(fixedHist{}))
		}, "# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.001\"} 3\nh_seconds_bucket{le=\"0.0025\"} 5\nh_seconds_bucket{le=\"+Inf\"} 6\nh_seconds_sum 0.00725\nh_seconds_count 6\n"},
		{"nil histogram writes nothing", func(w *Writer) {
			w.Histogram("h", "H.", nil)
			w.Histogram("h", "H.", Milliseconds(nil))
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			if err := reg.Register(Prometheus(CollectorFunc(tc.write))); err != nil {
				t.Fatal(err)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tc.want)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A duplicate sample is the registry's error, not a silent second line.
func TestWriterDuplicateIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Prometheus(CollectorFunc(func(w *Writer) {
		w.Counter("d_total", "D.", 1, "k", "a")
		w.Counter("d_total", "D.", 2, "k", "a")
	})))
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "d_total") {
		t.Fatalf("Gather = %v, want an error about d_total", err)
	}
}
