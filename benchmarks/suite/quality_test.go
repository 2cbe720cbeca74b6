package suite

import (
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
)

func TestJudgeQuality(t *testing.T) {
	l := func(imei string, ts int64, kind, dev string) loadgen.Label {
		return loadgen.Label{IMEI: imei, TS: ts, Volt: 13.8, Kind: kind, DeviceFault: dev}
	}
	labels := []loadgen.Label{
		l("a", 1, "", "teleport"), l("a", 2, "teleport", "teleport"), l("a", 3, "", "teleport"), l("a", 4, "teleport", "teleport"),
		l("b", 1, "", ""), l("b", 2, "", ""), l("b", 3, "zero_fix", ""), // a clean device with an isolated fault
		l("c", 1, "", "stuck_obd"), l("c", 2, "stuck_obd", "stuck_obd"),
	}
	k := func(imei string, ts int64) recordKey { return recordKey{imei, ts, 13800} }
	findings := []qualityFinding{
		{key: k("a", 2), rule: "gps.teleport", status: "fail", reason: 1, text: "jump"},
		{key: k("a", 3), rule: "gps.teleport", status: "fail", reason: 1, text: "jump"}, // the jump back: a false flag
		{key: k("b", 3), rule: "gps.zero_island", status: "fail", reason: 1, text: "zero"},
		{key: k("b", 3), rule: "gps.poor_fix", status: "fail", reason: 1, text: "sats"},
		{key: recordKey{"x", 9, 1}, rule: "time.future", status: "fail", reason: 1, text: "?"},
	}
	scores := []qualityScore{{"b", 9000, "b's reason"}, {"a", 8000, "a's reason"}, {"c", 9500, ""}}
	alerts := []qualityAlert{{"a", "teleport", "open", "2 jumps"}, {"b", "teleport", "cleared", "one"}, {"c", "score_low", "open", ""}}
	q := judgeQuality(labels, findings, scores, alerts)
	if q.Records != 9 || q.FaultyRecords != 4 || q.CleanRecords != 5 || q.FalseFlags != 1 || q.FalseFlagRules["gps.teleport"] != 1 {
		t.Errorf("counts: %+v", q)
	}
	want := map[string][2]int{"teleport": {2, 1}, "zero_fix": {1, 1}, "stuck_obd": {1, 0}}
	if len(q.Kinds) != len(want) {
		t.Fatalf("kinds %+v", q.Kinds)
	}
	for _, kr := range q.Kinds {
		w := want[kr.Kind]
		if kr.Records != w[0] || kr.Flagged != w[1] {
			t.Errorf("%s: %d of %d flagged, want %d of %d", kr.Kind, kr.Flagged, kr.Records, w[1], w[0])
		}
	}
	// Worst first: a (faulty), b (clean), c (faulty): k = 2, one faulty among them.
	if q.K != 2 || q.FaultyInKWorst != 1 || q.Devices[0].IMEI != "a" || q.Devices[1].Fault != "isolated:zero_fix" {
		t.Errorf("ranking: k %d, %d faulty in it, %+v", q.K, q.FaultyInKWorst, q.Devices)
	}
	if q.AlertsExpected != 1 || q.AlertsOpened != 1 || len(q.AlertsMissing) != 0 {
		t.Errorf("alerts expected %d opened %d missing %v", q.AlertsExpected, q.AlertsOpened, q.AlertsMissing)
	}
	if len(q.AlertsSpurious) != 1 || !strings.Contains(q.AlertsSpurious[0], "teleport on b") {
		t.Errorf("spurious %v", q.AlertsSpurious)
	}
	var unlabelled bool
	for _, f := range q.Findings {
		unlabelled = unlabelled || f.Label == "unlabelled"
	}
	if !unlabelled {
		t.Errorf("a finding on no labelled record is not reported: %+v", q.Findings)
	}
	var b strings.Builder
	writeQualityMarkdown(&b, q)
	if !strings.Contains(b.String(), "| teleport | 1 | 2 | 1 | 0.500 | gps.teleport 1 |") {
		t.Errorf("markdown:\n%s", b.String())
	}
}
