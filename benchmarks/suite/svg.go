package suite

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// chart geometry
const (
	chartW   = 860
	panelH   = 200
	marginL  = 70
	marginR  = 20
	marginT  = 48
	panelGap = 50
)

// WriteSVG draws the run as two stacked panels sharing the time axis:
// records acked per second, and ack latency (p50, p99, max per second,
// log scale). Events are vertical dashed lines. Hand-written SVG, no
// dependencies.
func WriteSVG(w io.Writer, r *Result) error {
	var b strings.Builder
	height := marginT + 2*panelH + panelGap + 45
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		chartW, height, chartW, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", marginL, esc(fmt.Sprintf(
		"fleetcore bench: %s (%d devices, %s)", r.Scenario, r.Devices, r.Mix)))
	tmax := 1.0
	for _, p := range r.Series {
		tmax = math.Max(tmax, p.T)
	}
	plotW := float64(chartW - marginL - marginR)
	x := func(t float64) float64 { return marginL + t/tmax*plotW }

	// Panel 1: throughput.
	top1 := float64(marginT)
	ymax := 1.0
	for _, p := range r.Series {
		ymax = math.Max(ymax, p.AckedPerS)
	}
	if r.CeilingPerS > 0 {
		ymax = math.Max(ymax, r.CeilingPerS)
	}
	ymax = niceCeil(ymax * 1.05)
	y1 := func(v float64) float64 { return top1 + panelH - v/ymax*panelH }
	axes(&b, top1, "records acked / s")
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			marginL, chartW-marginR, y1(v), y1(v), marginL-5, y1(v)+4, human(v))
	}
	if r.CeilingPerS > 0 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="6,3"/><text x="%d" y="%.1f" fill="#c33" text-anchor="end">ceiling %s/s</text>`+"\n",
			marginL, chartW-marginR, y1(r.CeilingPerS), y1(r.CeilingPerS), chartW-marginR-2, y1(r.CeilingPerS)-4, human(r.CeilingPerS))
	}
	if r.NaivePerS > 0 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="2,3"/><text x="%d" y="%.1f" fill="#777" text-anchor="end">naive %s/s</text>`+"\n",
			marginL, chartW-marginR, y1(r.NaivePerS), y1(r.NaivePerS), chartW-marginR-2, y1(r.NaivePerS)-4, human(r.NaivePerS))
	}
	polyline(&b, r.Series, x, func(p Point) float64 { return y1(p.AckedPerS) }, "#1f77b4", 2)

	// Panel 2: latency, log scale from 0.1 ms.
	top2 := top1 + panelH + panelGap
	lmax := 1.0
	for _, p := range r.Series {
		lmax = math.Max(lmax, p.MaxMS)
	}
	lo, hi := math.Log10(0.1), math.Ceil(math.Log10(lmax*1.1))
	y2 := func(v float64) float64 {
		v = math.Max(v, 0.1)
		return top2 + panelH - (math.Log10(v)-lo)/(hi-lo)*panelH
	}
	axes(&b, top2, "ack latency (ms, log)")
	for e := lo; e <= hi+1e-9; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			marginL, chartW-marginR, y2(v), y2(v), marginL-5, y2(v)+4, human(v))
	}
	has := func(p Point) bool { return p.MaxMS > 0 }
	polylineIf(&b, r.Series, x, func(p Point) float64 { return y2(p.MaxMS) }, has, "#bbb", 1)
	polylineIf(&b, r.Series, x, func(p Point) float64 { return y2(p.P99) }, has, "#d62728", 2)
	polylineIf(&b, r.Series, x, func(p Point) float64 { return y2(p.P50) }, has, "#2ca02c", 2)

	// Time axis and events.
	bottom := top2 + panelH
	for i := 0; i <= 6; i++ {
		t := tmax * float64(i) / 6
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0fs</text>`+"\n", x(t), bottom+15, t)
	}
	for i, e := range r.Events {
		// Stagger the labels so neighbouring events stay readable.
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="4,4"/><text x="%.1f" y="%.1f" fill="#555">%s</text>`+"\n",
			x(e.T), x(e.T), top1, bottom, x(e.T)+3, top1+12+float64(i%3)*13, esc(e.Label))
	}
	legend := []struct{ color, label string }{{"#1f77b4", "acked/s"}, {"#2ca02c", "p50"}, {"#d62728", "p99"}, {"#bbb", "max"}}
	for i, l := range legend {
		lx := marginL + i*110
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="14" height="4" fill="%s"/><text x="%d" y="%.1f">%s</text>`+"\n",
			lx, bottom+28, l.color, lx+18, bottom+33, l.label)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func axes(b *strings.Builder, top float64, label string) {
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", marginL, top, chartW-marginL-marginR, panelH)
	fmt.Fprintf(b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", marginL+4, top-5, esc(label))
}

func polyline(b *strings.Builder, ps []Point, x func(float64) float64, y func(Point) float64, color string, width int) {
	polylineIf(b, ps, x, y, func(Point) bool { return true }, color, width)
}

// polylineIf draws the points that pass keep; a skipped point breaks the
// line (a second with no acks has no latency).
func polylineIf(b *strings.Builder, ps []Point, x func(float64) float64, y func(Point) float64, keep func(Point) bool, color string, width int) {
	var pts []string
	flush := func() {
		if len(pts) > 0 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="%d" points="%s"/>`+"\n", color, width, strings.Join(pts, " "))
		}
		pts = pts[:0]
	}
	for _, p := range ps {
		if !keep(p) {
			flush()
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y(p)))
	}
	flush()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// human formats 1500 as 1.5k and 0.5 as 0.5.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return trim(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case v >= 1e3:
		return trim(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case v >= 1:
		return trim(fmt.Sprintf("%.1f", v))
	default:
		return trim(fmt.Sprintf("%.2f", v))
	}
}

func trim(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
