package suite

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// WriteFiles writes the result as JSON to jsonPath and, next to it, a
// Markdown report (.md) and its chart (.svg) with the same base name.
func WriteFiles(r *Result, jsonPath string) (mdPath, svgPath string, err error) {
	base := strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath))
	mdPath, svgPath = base+".md", base+".svg"
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("encoding the result: %w", err)
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", jsonPath, err)
	}
	svgName := ""
	if len(r.Series) > 0 { // the quality scenario has no time series
		if err := writeWith(svgPath, func(w io.Writer) error { return WriteSVG(w, r) }); err != nil {
			return "", "", err
		}
		svgName = filepath.Base(svgPath)
	} else {
		svgPath = ""
	}
	if err := writeWith(mdPath, func(w io.Writer) error { return WriteMarkdown(w, r, svgName) }); err != nil {
		return "", "", err
	}
	return mdPath, svgPath, nil
}

func writeWith(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WriteMarkdown writes the human report; svg is the chart's file name
// (relative to the report) or "" for none.
func WriteMarkdown(w io.Writer, r *Result, svg string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fleetcore bench: %s\n\n", r.Scenario)
	m := r.Machine
	rules := "WASM rules off"
	if r.Rules {
		rules = "WASM rules on"
	}
	fmt.Fprintf(&b, "Run %s on %d CPUs, %.1f GiB RAM (%s, Linux %s, %s). %s, %d devices (%s), rate %s, bad data %.0f %%, %s.\n\n",
		r.Started.Format("2006-01-02 15:04 UTC"), m.CPUs, float64(m.MemBytes)/(1<<30), orDash(m.CPUModel), orDash(m.Kernel), m.GoVersion,
		fmtDuration(r.DurationS), r.Devices, r.Mix, rateText(r.Rate), 100*r.BadShare, rules)
	if svg != "" {
		fmt.Fprintf(&b, "![throughput and ack latency over time](%s)\n\n", svg)
	}
	b.WriteString("| figure | value |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("signals acked (seen by the devices)", fmt.Sprintf("%d", r.SignalsAcked))
	row("signals stored (in Postgres)", fmt.Sprintf("%d", r.SignalsStored))
	row("lost (acked, not stored)", fmt.Sprintf("%d", r.Lost))
	row("duplicates (stored twice)", fmt.Sprintf("%d", r.Duplicates))
	row("stored, ack not seen", fmt.Sprintf("%d", r.StoredNotAcked))
	row("throughput", fmt.Sprintf("%.0f signals/s", r.ThroughputPerS))
	if r.CeilingPerS > 0 {
		row("ceiling (COPY from memory)", fmt.Sprintf("%.0f rows/s (ratio %.2f)", r.CeilingPerS, r.RatioToCeiling))
	}
	if r.NaivePerS > 0 {
		row("naive (INSERT+COMMIT per row)", fmt.Sprintf("%.0f rows/s (ratio %.1f)", r.NaivePerS, r.RatioToNaive))
	}
	row("ack latency p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.AckLatencyMS.P50, r.AckLatencyMS.P99, r.AckLatencyMS.Max))
	row("peak RSS", fmt.Sprintf("%.0f MiB", float64(r.RSSBytes)/(1<<20)))
	if c := r.CPU; c != nil {
		row("CPU during the load (cores)", cpuText(c))
		if c.BenchUSPerSignal > 0 {
			row("CPU per signal acked", fmt.Sprintf("bench process %.1f µs, Postgres %.1f µs", c.BenchUSPerSignal, c.PostgresUSPerSignal))
		}
	}
	keys := make([]string, 0, len(r.Extras))
	for k := range r.Extras {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(k, fmtValue(r.Extras[k]))
	}
	if len(r.Targets) > 0 {
		b.WriteString("\n## Targets\n\n| target | value | goal | met |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			met := "yes"
			if !t.Met {
				met = "**no**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, fmtValue(t.Value), t.Goal, met)
		}
	}
	if len(r.Ceiling) > 0 {
		b.WriteString("\n## References\n\n| reference | connections | rows | seconds | rows/s | CPU (cores) | CPU per row: client / Postgres |\n|---|---|---|---|---|---|---|\n")
		ref := func(name string, c RefRun) {
			cpu, per := "–", "–"
			if c.CPU != nil {
				cpu = fmt.Sprintf("%.2f of %d busy: client %.2f, Postgres %.2f", c.CPU.Busy, c.CPU.Cores, c.CPU.BenchProcess, c.CPU.Postgres)
				per = fmt.Sprintf("%.1f / %.1f µs", c.CPU.BenchUSPerSignal, c.CPU.PostgresUSPerSignal)
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %.0f | %s | %s |\n", name, c.Conns, c.Rows, c.Seconds, c.PerS, cpu, per)
		}
		for _, c := range r.Ceiling {
			ref("ceiling", c)
		}
		if r.Naive != nil {
			ref("naive", *r.Naive)
		}
	}
	if r.Quality != nil {
		writeQualityMarkdown(&b, r.Quality)
	}
	g := r.Generator
	fmt.Fprintf(&b, "\n## Load generator\n\nconnects %d (failed %d), frames acked %d, resent %d, ack timeouts %d, refused %d; bad data: zero fixes %d, future timestamps %d, duplicate frames %d, corrupted frames %d (acked anyway: %d); backlog dropped %d, unacked at end %d.\n",
		g.Connects, g.ConnectFails, g.Frames, g.Resends, g.Timeouts, g.Refused, g.ZeroFixes, g.Future, g.Duplicates, g.Corrupted, g.CorruptAcked, g.Dropped, g.Backlog)
	if r.RSSNote != "" {
		fmt.Fprintf(&b, "\nRSS: %s.\n", r.RSSNote)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cpuText is a CPU reading in one line: busy cores of all and who used
// them.
func cpuText(c *CPU) string {
	return fmt.Sprintf("%.2f of %d busy: fleetcore+generator %.2f, Postgres %.2f, other %.2f",
		c.Busy, c.Cores, c.BenchProcess, c.Postgres, c.Other)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rateText(r float64) string {
	if r == 0 {
		return "closed loop (next frame when the last is acked)"
	}
	return fmt.Sprintf("%g records/s per device", r)
}

func fmtDuration(s float64) string { return fmt.Sprintf("%.0f s", s) }

func fmtValue(v any) string {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) && (x > 1e3 || x < -1e3 || x == 0) {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.3g", x)
	case map[string]any: // a map read back from JSON
		m := make(map[string]int64, len(x))
		for k, v := range x {
			f, _ := v.(float64)
			m[k] = int64(f)
		}
		return fmtValue(m)
	case map[string]int64:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, x[k])
		}
		return strings.Join(parts, ", ")
	default:
		return fmt.Sprint(v)
	}
}

// WriteSummary writes one Markdown table over several results (the
// README's "latest figures").
func WriteSummary(w io.Writer, rs []*Result) error {
	var b strings.Builder
	b.WriteString("| scenario | devices | throughput/s | ceiling/s | naive/s | ×ceiling | ×naive | ack p50 / p99 / max ms | acked | lost | dup | peak RSS MiB | CPU busy of cores: fleetcore+gen / Postgres | scenario figures | targets |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		var extra []string
		switch r.Scenario {
		case "many-connections":
			extra = append(extra, "idle conns "+fmtValue(r.Extras["idle_connections"]))
			if v, ok := r.Extras["rss_per_idle_connection_bytes"].(float64); ok {
				extra = append(extra, fmt.Sprintf("%.1f KB RSS/conn", v/1024))
			}
		case "outage":
			for _, k := range []string{"before_per_s", "during_outage_per_s", "after_restore_per_s", "during_to_before", "drain_after_load_s"} {
				if v, ok := r.Extras[k]; ok {
					extra = append(extra, k+" "+fmtValue(v))
				}
			}
		case "burst":
			for _, k := range []string{"burst_records", "peak_per_s", "drain_s", "burst_worst_p99_ms"} {
				if v, ok := r.Extras[k]; ok {
					extra = append(extra, k+" "+fmtValue(v))
				}
			}
		case "poison":
			for _, k := range []string{"clean_per_s", "poison_to_clean", "clean_ack_p99_ms", "poison_ack_p99_ms", "poison_sent", "poison_acked", "rejected_records"} {
				if v, ok := r.Extras[k]; ok {
					extra = append(extra, k+" "+fmtValue(v))
				}
			}
		case "rules":
			for _, k := range []string{"organizer_lag_max_s", "organizer_lag_mean_s", "findings", "rules_interval"} {
				if v, ok := r.Extras[k]; ok {
					extra = append(extra, k+" "+fmtValue(v))
				}
			}
		}
		var missed []string
		for _, t := range r.Targets {
			if !t.Met {
				missed = append(missed, fmt.Sprintf("%s %s (goal %s)", t.Name, fmtValue(t.Value), t.Goal))
			}
		}
		targets := "all met"
		if len(missed) > 0 {
			targets = "missed: " + strings.Join(missed, "; ")
		}
		cpu := "–"
		if c := r.CPU; c != nil {
			cpu = fmt.Sprintf("%.2f of %d: %.2f / %.2f", c.Busy, c.Cores, c.BenchProcess, c.Postgres)
		}
		name := r.Scenario
		if r.Rules && r.Scenario != "rules" {
			name += " (rules on)"
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.0f | %.2f | %.1f | %.1f / %.1f / %.0f | %d | %d | %d | %.0f | %s | %s | %s |\n",
			name, r.Devices, r.ThroughputPerS, r.CeilingPerS, r.NaivePerS, r.RatioToCeiling, r.RatioToNaive,
			r.AckLatencyMS.P50, r.AckLatencyMS.P99, r.AckLatencyMS.Max, r.SignalsAcked, r.Lost, r.Duplicates,
			float64(r.RSSBytes)/(1<<20), cpu, strings.Join(extra, ", "), targets)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ReadResult loads a result written by WriteFiles.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	// JSON numbers come back as float64; the summary formats them.
	return &r, nil
}
