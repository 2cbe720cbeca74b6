package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
)

// QualityReport is what the quality scenario measured: how the rules and
// the scorer judged a labelled-fault fleet.
type QualityReport struct {
	Seed           uint64  `json:"seed"`
	Faults         string  `json:"faults"`
	Records        int     `json:"records"`
	FaultyRecords  int     `json:"faulty_records"`
	CleanRecords   int     `json:"clean_records"`
	FalseFlags     int     `json:"false_flags"`      // clean records with a finding
	FalseFlagShare float64 `json:"false_flag_share"` // of the clean records
	// Kinds is per fault kind: records labelled and flagged.
	Kinds []KindRecall `json:"kinds"`
	// FalseFlagRules counts the findings on clean records per rule.
	FalseFlagRules map[string]int `json:"false_flag_rules"`
	// Ranking: the faulty devices among the k worst scores (k = faulty
	// devices).
	K              int           `json:"k"`
	FaultyInKWorst int           `json:"faulty_in_k_worst"`
	Devices        []DeviceScore `json:"devices"` // worst first
	// Alerts: expected ones opened (at any time during the run), missing,
	// and spurious (on a clean device, or of a kind the fault does not
	// explain; score_low on a faulty device is neither).
	AlertsExpected int           `json:"alerts_expected"`
	AlertsOpened   int           `json:"alerts_expected_opened"`
	AlertsMissing  []string      `json:"alerts_missing"`
	AlertsSpurious []string      `json:"alerts_spurious"`
	Findings       []FindingStat `json:"findings"` // every finding, grouped by label, rule and reason code
	// WaitS is how long the rules and the scorer took to settle after the
	// last record was stored.
	WaitS float64 `json:"settle_s"`
}

// KindRecall is one fault kind's recall.
type KindRecall struct {
	Kind    string  `json:"kind"`
	Devices int     `json:"devices"`
	Records int     `json:"records"`
	Flagged int     `json:"flagged"`
	Recall  float64 `json:"recall"`
	Rules   string  `json:"rules"` // the rules that flagged them, most first
}

// DeviceScore is one device's place in the ranking.
type DeviceScore struct {
	IMEI   string  `json:"imei"`
	Fault  string  `json:"fault"` // "" clean, "isolated:<kind>" for a clean device's isolated fault
	Score  float64 `json:"score"`
	Reason string  `json:"top_reason"`
	Alerts string  `json:"alerts"`
}

// FindingStat groups findings: the record's label, the rule, its reason
// code, how many, and one reason text.
type FindingStat struct {
	Label   string `json:"label"` // fault kind, or "clean"
	Rule    string `json:"rule"`
	Status  string `json:"status"`
	Reason  int    `json:"reason"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// expectedAlert is the alert a device fault should open.
var expectedAlert = map[string]string{
	loadgen.FaultZeroFix:         "gps_broken",
	loadgen.FaultClockAhead:      "clock_drift",
	loadgen.FaultClockSlow:       "clock_drift",
	loadgen.FaultGPSRollover:     "clock_drift",
	loadgen.FaultTeleport:        "teleport",
	loadgen.FaultTeleportStretch: "teleport",
	loadgen.FaultDupSame:         "duplicate_storm",
	loadgen.FaultReportingGap:    "reporting_gap",
}

// recordKey identifies a stored signal of the fleet: device, device time
// and voltage in mV (same-time twins differ in voltage).
type recordKey struct {
	imei string
	ts   int64
	mv   int64
}

func labelKey(l loadgen.Label) recordKey {
	return recordKey{l.IMEI, l.TS, int64(math.Round(l.Volt * 1000))}
}

// qualityFinding is one finding as read back.
type qualityFinding struct {
	key    recordKey
	rule   string
	status string
	reason int
	text   string
}

type qualityAlert struct {
	device, kind, state, reason string
}

type qualityScore struct {
	device string
	centi  int64
	reason string
}

// judgeQuality compares what the rules and the scorer said with the
// labels. Pure: the scenario reads the database, this does the counting.
func judgeQuality(labels []loadgen.Label, findings []qualityFinding, scores []qualityScore, alerts []qualityAlert) *QualityReport {
	q := &QualityReport{Records: len(labels), FalseFlagRules: map[string]int{}}
	byKey := make(map[recordKey]loadgen.Label, len(labels))
	deviceFault := map[string]string{}
	isolated := map[string]string{}
	kindDevices := map[string]map[string]bool{}
	for _, l := range labels {
		byKey[labelKey(l)] = l
		deviceFault[l.IMEI] = l.DeviceFault
		if l.Kind != "" && l.DeviceFault == "" {
			isolated[l.IMEI] = l.Kind
		}
		if l.Kind != "" {
			if kindDevices[l.Kind] == nil {
				kindDevices[l.Kind] = map[string]bool{}
			}
			kindDevices[l.Kind][l.IMEI] = true
		}
	}
	flagged := map[recordKey]map[string]bool{}
	type statKey struct {
		label, rule, status string
		reason              int
	}
	stats := map[statKey]*FindingStat{}
	for _, f := range findings {
		l, ok := byKey[f.key]
		label := "unlabelled"
		if ok {
			label = l.Kind
			if label == "" {
				label = "clean"
			}
			if flagged[f.key] == nil {
				flagged[f.key] = map[string]bool{}
			}
			flagged[f.key][f.rule] = true
		}
		sk := statKey{label, f.rule, f.status, f.reason}
		if stats[sk] == nil {
			stats[sk] = &FindingStat{Label: label, Rule: f.rule, Status: f.status, Reason: f.reason, Example: f.text}
		}
		stats[sk].Count++
	}
	kinds := map[string]*KindRecall{}
	kindRules := map[string]map[string]int{}
	for _, l := range labels {
		rules := flagged[labelKey(l)]
		if l.Kind == "" {
			q.CleanRecords++
			if len(rules) > 0 {
				q.FalseFlags++
				for r := range rules {
					q.FalseFlagRules[r]++
				}
			}
			continue
		}
		q.FaultyRecords++
		k := kinds[l.Kind]
		if k == nil {
			k = &KindRecall{Kind: l.Kind, Devices: len(kindDevices[l.Kind])}
			kinds[l.Kind] = k
			kindRules[l.Kind] = map[string]int{}
		}
		k.Records++
		if len(rules) > 0 {
			k.Flagged++
			for r := range rules {
				kindRules[l.Kind][r]++
			}
		}
	}
	for _, name := range loadgen.FaultKinds {
		k := kinds[name]
		if k == nil {
			continue
		}
		k.Recall = float64(k.Flagged) / float64(k.Records)
		k.Rules = countsText(kindRules[name])
		q.Kinds = append(q.Kinds, *k)
	}
	if q.CleanRecords > 0 {
		q.FalseFlagShare = float64(q.FalseFlags) / float64(q.CleanRecords)
	}
	// Ranking, worst first; ties by IMEI so the order is stable.
	sort.Slice(scores, func(i, j int) bool {
		if scores[i].centi != scores[j].centi {
			return scores[i].centi < scores[j].centi
		}
		return scores[i].device < scores[j].device
	})
	devAlerts := map[string][]string{}
	for _, a := range alerts {
		devAlerts[a.device] = append(devAlerts[a.device], a.kind)
	}
	for dev := range deviceFault {
		if deviceFault[dev] != "" {
			q.K++
		}
	}
	for i, s := range scores {
		fault := deviceFault[s.device]
		if fault == "" && isolated[s.device] != "" {
			fault = "isolated:" + isolated[s.device]
		}
		if i < q.K && deviceFault[s.device] != "" {
			q.FaultyInKWorst++
		}
		as := devAlerts[s.device]
		sort.Strings(as)
		q.Devices = append(q.Devices, DeviceScore{
			IMEI: s.device, Fault: fault, Score: float64(s.centi) / 100, Reason: s.reason, Alerts: strings.Join(as, ", "),
		})
	}
	// Alerts.
	opened := map[[2]string]bool{}
	for _, a := range alerts {
		opened[[2]string{a.device, a.kind}] = true
		fault := deviceFault[a.device]
		switch {
		case fault != "" && (a.kind == "score_low" || expectedAlert[fault] == a.kind):
		default:
			what := "clean device"
			if fault != "" {
				what = fault + " device"
			} else if k := isolated[a.device]; k != "" {
				what = "clean device with one " + k + " record"
			}
			q.AlertsSpurious = append(q.AlertsSpurious, fmt.Sprintf("%s on %s (%s): %s", a.kind, a.device, what, a.reason))
		}
	}
	devs := make([]string, 0, len(deviceFault))
	for d := range deviceFault {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, d := range devs {
		want := expectedAlert[deviceFault[d]]
		if want == "" {
			continue
		}
		q.AlertsExpected++
		if opened[[2]string{d, want}] {
			q.AlertsOpened++
		} else {
			q.AlertsMissing = append(q.AlertsMissing, fmt.Sprintf("%s on %s (%s)", want, d, deviceFault[d]))
		}
	}
	sort.Strings(q.AlertsSpurious)
	for _, s := range stats {
		q.Findings = append(q.Findings, *s)
	}
	sort.Slice(q.Findings, func(i, j int) bool {
		a, b := q.Findings[i], q.Findings[j]
		if a.Label != b.Label {
			return a.Label < b.Label
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Status != b.Status {
			return a.Status < b.Status
		}
		return a.Reason < b.Reason
	})
	return q
}

// countsText is "a 12, b 3": the counts, largest first.
func countsText(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var s []kv
	for k, v := range m {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].v != s[j].v {
			return s[i].v > s[j].v
		}
		return s[i].k < s[j].k
	})
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s %d", x.k, x.v)
	}
	return strings.Join(parts, ", ")
}

// quality sends a labelled-fault fleet through the Teltonika gateway with
// the rules on, waits until the rules have evaluated every signal and the
// scorer has scored every device, and compares the verdicts with the
// labels.
func (r *runner) quality(ctx context.Context) error {
	cfg, err := r.serverConfig(r.db, false, []string{"teltonika"})
	if err != nil {
		return err
	}
	cfg.Rules.Interval = "1s"
	cfg.Organizer.ScoreInterval = "2s"
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("building the server config: %w", err)
	}
	specs, err := loadgen.ParseFaults(r.o.Faults, r.o.Devices)
	if err != nil {
		return err
	}
	const interval = 5 * time.Second
	fleet, err := loadgen.NewFleet(loadgen.FleetConfig{
		Devices: r.o.Devices, Records: r.o.Records, Interval: interval, End: time.Now().UTC().Truncate(time.Second),
		Faults: specs, Seed: r.o.Seed,
	})
	if err != nil {
		return err
	}
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck
	var labels []loadgen.Label
	for _, d := range fleet.Devices {
		labels = append(labels, d.Labels...)
	}
	if r.o.LabelsOut != "" {
		f, err := os.Create(r.o.LabelsOut)
		if err != nil {
			return fmt.Errorf("creating the labels file: %w", err)
		}
		err = fleet.WriteLabels(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(r.o.Progress, "quality: %d devices, %d records (%d faulty devices), seed %d\n",
		len(fleet.Devices), fleet.Records(), len(fleet.FaultyDevices()), r.o.Seed)
	r.start = time.Now()
	cpu0, cpuOK := readCPU()
	st, err := fleet.Send(ctx, loadgen.SendOptions{Target: cfg.Listeners[0].Address, Parallel: 60})
	sent := time.Since(r.start)
	if err != nil {
		return fmt.Errorf("sending the labelled fleet: %w", err)
	}
	r.res.SignalsAcked = int64(st.Records)
	r.res.Generator.Devices, r.res.Generator.Frames, r.res.Generator.Acked, r.res.Generator.Resends =
		len(fleet.Devices), st.Frames, st.Records, st.Resends
	conn, err := pgx.Connect(ctx, r.db)
	if err != nil {
		return fmt.Errorf("connecting to read the verdicts: %w", err)
	}
	defer conn.Close(context.Background())
	settled, err := r.waitVerdicts(ctx, conn, int64(fleet.Records()), len(fleet.Devices), 5*time.Minute)
	if err != nil {
		return err
	}
	if cpu1, ok := readCPU(); ok && cpuOK {
		c := cpuBetween(cpu0, cpu1, r.res.Machine.CPUs, int64(st.Records))
		r.res.CPU = &c
	}
	findings, scores, alerts, err := readVerdicts(ctx, conn)
	if err != nil {
		return err
	}
	q := judgeQuality(labels, findings, scores, alerts)
	q.Seed, q.Faults, q.WaitS = r.o.Seed, r.o.Faults, settled.Seconds()
	r.res.Quality = q
	r.res.DurationS = sent.Seconds()
	r.res.ThroughputPerS = float64(st.Records) / sent.Seconds()
	r.res.SignalsStored = int64(fleet.Records())
	r.res.Extras["records_per_device"] = r.o.Records
	r.res.Extras["rules_dir"] = cfg.Rules.Dir
	return r.stopNode()
}

// waitVerdicts waits until every record is stored, every rule's watermark
// is at the newest signal, and two score runs in a row left every
// device's score as it was; it returns how long that took.
func (r *runner) waitVerdicts(ctx context.Context, c *pgx.Conn, records int64, devices int, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	deadline := t0.Add(limit)
	var last string
	stable := 0
	for {
		if time.Now().After(deadline) {
			return time.Since(t0), fmt.Errorf("rules and scorer did not settle within %s", limit)
		}
		if !sleepCtx(ctx, time.Second) {
			return time.Since(t0), ctx.Err()
		}
		var stored int64
		if err := c.QueryRow(ctx, `SELECT count(*) FROM signals`).Scan(&stored); err != nil {
			return 0, fmt.Errorf("counting signals: %w", err)
		}
		lag, rules, ok, err := ruleLag(ctx, c)
		if err != nil {
			return 0, err
		}
		var snap string
		var n int
		err = c.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(device_id || ':' || score || ':' || md5(losses::text), ',' ORDER BY device_id), '')
			FROM device_scores`).Scan(&n, &snap)
		if err != nil {
			return 0, fmt.Errorf("reading scores: %w", err)
		}
		fmt.Fprintf(r.o.Progress, "\rquality: stored %d of %d, %d rules lag %.0fs, %d of %d devices scored, stable %d ",
			stored, records, rules, lag.Seconds(), n, devices, stable)
		if stored < records || !ok || lag > 0 || n < devices {
			stable, last = 0, ""
			continue
		}
		if snap == last {
			stable++
		} else {
			stable, last = 0, snap
		}
		// The score job runs every 2 s: 3 unchanged polls a second
		// apart span more than one run after the rules caught up.
		if stable >= 3 {
			fmt.Fprintln(r.o.Progress)
			return time.Since(t0), nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func readVerdicts(ctx context.Context, c *pgx.Conn) ([]qualityFinding, []qualityScore, []qualityAlert, error) {
	rows, err := c.Query(ctx, `SELECT f.device_id, f.ts, coalesce(s.voltage, 0), f.rule, f.status, f.reason, f.reason_text
		FROM findings f JOIN signals s ON s.id = f.signal_id`)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading findings: %w", err)
	}
	var fs []qualityFinding
	for rows.Next() {
		var f qualityFinding
		var ts time.Time
		var v float64
		if err := rows.Scan(&f.key.imei, &ts, &v, &f.rule, &f.status, &f.reason, &f.text); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("reading findings: %w", err)
		}
		f.key.ts, f.key.mv = ts.UnixMicro(), int64(math.Round(v*1000))
		fs = append(fs, f)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("reading findings: %w", err)
	}
	rows, err = c.Query(ctx, `SELECT device_id, score, losses FROM device_scores`)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading scores: %w", err)
	}
	var ss []qualityScore
	for rows.Next() {
		var s qualityScore
		var losses []byte
		if err := rows.Scan(&s.device, &s.centi, &losses); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("reading scores: %w", err)
		}
		var ls []struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(losses, &ls) == nil && len(ls) > 0 {
			s.reason = ls[0].Reason
		}
		ss = append(ss, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("reading scores: %w", err)
	}
	rows, err = c.Query(ctx, `SELECT device_id, kind, state, reason FROM alerts ORDER BY id`)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading alerts: %w", err)
	}
	var as []qualityAlert
	for rows.Next() {
		var a qualityAlert
		if err := rows.Scan(&a.device, &a.kind, &a.state, &a.reason); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("reading alerts: %w", err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("reading alerts: %w", err)
	}
	return fs, ss, as, nil
}

// writeQualityMarkdown appends the quality section of a report.
func writeQualityMarkdown(b *strings.Builder, q *QualityReport) {
	fmt.Fprintf(b, "\n## Data quality (seed %d, faults %q)\n\n", q.Seed, q.Faults)
	fmt.Fprintf(b, "%d records: %d faulty, %d clean; %d clean records flagged (%.3f %%); %d of the %d faulty devices among the %d worst; expected alerts opened %d of %d, missing %d, spurious %d; rules and scorer settled %.0f s after the upload.\n\n",
		q.Records, q.FaultyRecords, q.CleanRecords, q.FalseFlags, 100*q.FalseFlagShare, q.FaultyInKWorst, q.K, q.K,
		q.AlertsOpened, q.AlertsExpected, len(q.AlertsMissing), len(q.AlertsSpurious), q.WaitS)
	b.WriteString("| fault | devices | faulty records | flagged | recall | flagged by |\n|---|---|---|---|---|---|\n")
	for _, k := range q.Kinds {
		fmt.Fprintf(b, "| %s | %d | %d | %d | %.3f | %s |\n", k.Kind, k.Devices, k.Records, k.Flagged, k.Recall, orDash(k.Rules))
	}
	if len(q.FalseFlagRules) > 0 {
		fmt.Fprintf(b, "\nFalse flags by rule: %s.\n", countsText(q.FalseFlagRules))
	}
	b.WriteString("\n### Ranking (worst first)\n\n| # | device | fault | score | alerts | top reason |\n|---|---|---|---|---|---|\n")
	for i, d := range q.Devices {
		mark := ""
		if i == q.K-1 {
			mark = " ← k"
		}
		fmt.Fprintf(b, "| %d%s | %s | %s | %.2f | %s | %s |\n", i+1, mark, d.IMEI, orDash(d.Fault), d.Score, orDash(d.Alerts), mdCell(d.Reason))
	}
	if len(q.AlertsMissing) > 0 {
		b.WriteString("\n### Expected alerts not opened\n\n")
		for _, a := range q.AlertsMissing {
			fmt.Fprintf(b, "- %s\n", a)
		}
	}
	if len(q.AlertsSpurious) > 0 {
		b.WriteString("\n### Spurious alerts\n\n")
		for _, a := range q.AlertsSpurious {
			fmt.Fprintf(b, "- %s\n", mdCell(a))
		}
	}
	b.WriteString("\n### Findings by record label, rule and reason\n\n| label | rule | status | reason | findings | example reason |\n|---|---|---|---|---|---|\n")
	for _, f := range q.Findings {
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %s |\n", f.Label, f.Rule, f.Status, f.Reason, f.Count, mdCell(f.Example))
	}
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// judgeQualityTargets states the goals for the quality scenario.
func judgeQualityTargets(res *Result) {
	q := res.Quality
	if q == nil {
		return
	}
	for _, k := range q.Kinds {
		res.target("recall "+k.Kind, k.Recall, ">= 0.99", k.Recall >= 0.99)
	}
	res.target("false_flag_share_percent", 100*q.FalseFlagShare, "<= 0.1", q.FalseFlagShare <= 0.001)
	res.target("faulty_devices_in_k_worst", float64(q.FaultyInKWorst), fmt.Sprintf("= %d", q.K), q.FaultyInKWorst == q.K)
	res.target("expected_alerts_missing", float64(len(q.AlertsMissing)), "= 0", len(q.AlertsMissing) == 0)
	res.target("spurious_alerts", float64(len(q.AlertsSpurious)), "= 0", len(q.AlertsSpurious) == 0)
}
