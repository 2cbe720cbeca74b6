package suite

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func sampleResult() *Result {
	r := &Result{
		Scenario: "outage", Started: time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC), Devices: 200, Mix: "teltonika",
		Machine: Machine{CPUs: 2, MemBytes: 24 << 30, GoVersion: "go1.26"}, DurationS: 10,
		SignalsAcked: 1000, SignalsStored: 1002, StoredNotAcked: 2, ThroughputPerS: 100, CeilingPerS: 400, NaivePerS: 5,
		RatioToCeiling: 0.25, RatioToNaive: 20, AckLatencyMS: Quantiles{P50: 3, P99: 40, Max: 90},
		Extras: map[string]any{"drain_s": 4.5, "stored_by_path": map[string]int64{"direct": 900, "failover": 102}},
		Events: []Event{{T: 3, Label: "Postgres <cut>"}},
	}
	for i := 1; i <= 10; i++ {
		p := Point{T: float64(i), AckedPerS: float64(100 * i), P50: 2, P99: float64(10 * i), MaxMS: float64(20 * i)}
		if i == 5 {
			p = Point{T: 5} // a second without acks: no latency
		}
		r.Series = append(r.Series, p)
	}
	r.target("lost", 0, "= 0", true)
	r.target("ratio_to_ceiling", 0.25, ">= 0.5", false)
	return r
}

func TestWriteSVG(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSVG(&buf, sampleResult()); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, and count the polylines and their points.
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	lines := map[string][]int{} // stroke -> point counts
	var texts []string
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, buf.String())
		}
		switch el := tok.(type) {
		case xml.StartElement:
			inText = el.Name.Local == "text"
			if el.Name.Local == "polyline" {
				var stroke, points string
				for _, a := range el.Attr {
					switch a.Name.Local {
					case "stroke":
						stroke = a.Value
					case "points":
						points = a.Value
					}
				}
				lines[stroke] = append(lines[stroke], len(strings.Fields(points)))
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(el))
			}
		case xml.EndElement:
			inText = false
		}
	}
	tests := []struct {
		stroke string
		want   []int
	}{
		{"#1f77b4", []int{10}},   // throughput: every second, zeros included
		{"#d62728", []int{4, 5}}, // p99: broken at the second without acks
		{"#2ca02c", []int{4, 5}},
	}
	for _, tc := range tests {
		got := lines[tc.stroke]
		if len(got) != len(tc.want) {
			t.Errorf("stroke %s: polylines %v, want %v", tc.stroke, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("stroke %s: polylines %v, want %v", tc.stroke, got, tc.want)
			}
		}
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"Postgres <cut>", "ceiling 400/s", "naive 5/s"} {
		if !strings.Contains(joined, want) {
			t.Errorf("chart text lacks %q: %s", want, joined)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, sampleResult(), "outage.svg"); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"# fleetcore bench: outage",
		"![throughput and ack latency over time](outage.svg)",
		"| throughput | 100 signals/s |",
		"| ceiling (COPY from memory) | 400 rows/s (ratio 0.25) |",
		"| ack latency p50 / p99 / max | 3.0 / 40.0 / 90.0 ms |",
		"| drain_s | 4.5 |",
		"| stored_by_path | direct 900, failover 102 |",
		"| ratio_to_ceiling | 0.25 | >= 0.5 | **no** |",
		"| lost | 0 | = 0 | yes |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{{0.1, "0.1"}, {1, "1"}, {12.5, "12.5"}, {1500, "1.5k"}, {40000, "40k"}, {2.5e6, "2.5M"}}
	for _, tc := range tests {
		if got := human(tc.v); got != tc.want {
			t.Errorf("human(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
