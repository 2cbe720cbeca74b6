package rules

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// fakeRule stands in for a rule in service: its verdict on a signal is
// given by the signal's latitude (0 pass, 1 warn, 2 fail, 3 not
// applicable; the reason is the status), and it can stop after a prefix
// with an error, as wasmrule.Rule.Check does.
type fakeRule struct {
	stopAfter int   // with err: verdicts for this many inputs, then err
	err       error // nil: every input gets a verdict
	got       []int64
}

func (f *fakeRule) Check(_ context.Context, in []wasmrule.Input) ([]wasmrule.Verdict, error) {
	for _, x := range in {
		f.got = append(f.got, int64(x.Signal.Alt)) // the test keeps the id in alt
	}
	n := len(in)
	if f.err != nil {
		n = min(n, f.stopAfter)
	}
	out := make([]wasmrule.Verdict, n)
	for i := range out {
		st := wasmrule.Status(in[i].Signal.Lat)
		out[i] = wasmrule.Verdict{Status: st}
		if st == wasmrule.StatusWarn || st == wasmrule.StatusFail {
			out[i].Reason = uint16(st)
		}
	}
	return out, f.err
}

var hour0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// sig is one fetched signal: its id, device, minutes after hour0, sample
// hash and the fake rule's verdict on it.
type sig struct {
	id      int64
	dev     string
	min     int
	hash    int64
	verdict wasmrule.Status
}

// batchOf builds a fetched batch the way fetch does, groups included.
func batchOf(sigs ...sig) fetched {
	var b fetched
	groupOf := map[devHour]int32{}
	for _, x := range sigs {
		s := signal.New(x.dev, hour0.Add(time.Duration(x.min)*time.Minute))
		s.Lat, s.Alt = float64(x.verdict), float64(x.id)
		b.ids = append(b.ids, x.id)
		b.hashes = append(b.hashes, x.hash)
		dh := devHour{s.DeviceID, s.TS.Truncate(time.Hour)}
		gi, ok := groupOf[dh]
		if !ok {
			gi = int32(len(b.groups))
			groupOf[dh] = gi
			b.groups = append(b.groups, dh)
		}
		b.group = append(b.group, gi)
		b.inputs = append(b.inputs, wasmrule.Input{Signal: s, Now: s.TS})
	}
	return b
}

func meta(name string) wasmrule.Meta {
	return wasmrule.Meta{Name: name, Version: "1.0.0", Dimension: "validity", Severity: "critical",
		Reasons: map[uint16]string{1: "odd", 2: "wrong"}}
}

// The summaries a case asserts.
type (
	outcomeSum struct {
		Rule                string
		Closed              bool
		NewWM               int64
		N, Findings, Failed int
		SampledOut          int64
		NotEvaluated        string // the error's kind
		FirstFailed         int64
	}
	findingSum struct {
		ID                  int64
		Dev, Rule, Status   string
		Reason              int32
		Text, Dim, Severity string
	}
	statSum struct {
		Rule, Dev     string
		Hour          int // hours after hour0
		E, P, W, F, N int64
	}
	advanceSum struct {
		Rule                string
		Last, Eval, Sampled int64
	}
	errorSum struct {
		Rule, Kind  string
		First, Last int64
		Signals     int
	}
)

func summarize(ev batchEval) (outs []outcomeSum, fs []findingSum, stats []statSum, adv []advanceSum, errs []errorSum) {
	for _, o := range ev.outs {
		s := outcomeSum{Rule: o.x.meta.Name, Closed: o.closed, NewWM: o.newWM, N: o.n, Findings: o.findings,
			Failed: o.failed, SampledOut: o.sampledOut, FirstFailed: o.firstFailed}
		if o.cerr != nil {
			s.NotEvaluated = wasmrule.KindOf(o.cerr).String()
		}
		outs = append(outs, s)
	}
	w := ev.w
	for i := range w.fIDs {
		fs = append(fs, findingSum{w.fIDs[i], w.fDevs[i], w.fRules[i], w.fStat[i], w.fReason[i], w.fText[i], w.fDims[i], w.fSevs[i]})
	}
	for _, rs := range w.stats {
		for g, row := range rs.rows {
			if row.e > 0 {
				stats = append(stats, statSum{rs.meta.Name, w.groups[g].dev, int(w.groups[g].hour.Sub(hour0) / time.Hour),
					row.e, row.p, row.w, row.f, row.n})
			}
		}
	}
	for i := range w.wRules {
		adv = append(adv, advanceSum{w.wRules[i], w.wLast[i], w.wEval[i], w.wSampled[i]})
	}
	for _, e := range w.errs {
		errs = append(errs, errorSum{e.rule, e.kind, e.first, e.last, e.signals})
	}
	return outs, fs, stats, adv, errs
}

// ruleCase is one rule of a case: its name, watermark, sample and fake.
type ruleCase struct {
	name   string
	wm     int64
	sample int
	fake   *fakeRule
}

func TestEvaluate(t *testing.T) {
	pass, warn, fail, na := wasmrule.StatusPass, wasmrule.StatusWarn, wasmrule.StatusFail, wasmrule.StatusNotApplicable
	trap := &wasmrule.Error{Rule: "r", Kind: wasmrule.KindTrap, Err: errors.New("unreachable")}
	timeout := &wasmrule.Error{Rule: "r", Kind: wasmrule.KindTimeout}
	closed := &wasmrule.Error{Rule: "r", Kind: wasmrule.KindClosed}
	// Two devices over two hours of device time.
	mixed := []sig{{11, "a", 5, 0, pass}, {12, "a", 10, 0, warn}, {13, "b", 20, 0, fail},
		{14, "a", 70, 0, na}, {15, "b", 80, 0, fail}}
	cases := []struct {
		name    string
		batch   []sig
		end     int64
		rules   []ruleCase
		checked map[string][]int64 // ids each rule was given
		outs    []outcomeSum
		fs      []findingSum
		stats   []statSum
		adv     []advanceSum
		errs    []errorSum
		wantErr bool
	}{{
		name:  "verdicts become findings for warn and fail only, statistics per device and hour",
		batch: mixed, end: 20,
		rules:   []ruleCase{{name: "r", wm: 10, fake: &fakeRule{}}},
		checked: map[string][]int64{"r": {11, 12, 13, 14, 15}},
		outs:    []outcomeSum{{Rule: "r", NewWM: 20, N: 5, Findings: 3}},
		fs: []findingSum{{12, "a", "r", "warn", 1, "odd", "validity", "critical"}, {13, "b", "r", "fail", 2, "wrong", "validity", "critical"},
			{15, "b", "r", "fail", 2, "wrong", "validity", "critical"}},
		stats: []statSum{{"r", "a", 0, 2, 1, 1, 0, 0}, {"r", "b", 0, 1, 0, 0, 1, 0}, {"r", "a", 1, 1, 0, 0, 0, 1}, {"r", "b", 1, 1, 0, 0, 1, 0}},
		adv:   []advanceSum{{"r", 20, 5, 0}},
	}, {
		name:  "each rule evaluates above its own watermark; one ahead of the batch is left alone",
		batch: mixed, end: 15,
		rules:   []ruleCase{{name: "behind", wm: 12, fake: &fakeRule{}}, {name: "ahead", wm: 15, fake: &fakeRule{}}},
		checked: map[string][]int64{"behind": {13, 14, 15}},
		outs:    []outcomeSum{{Rule: "behind", NewWM: 15, N: 3, Findings: 2}},
		fs:      []findingSum{{13, "b", "behind", "fail", 2, "wrong", "validity", "critical"}, {15, "b", "behind", "fail", 2, "wrong", "validity", "critical"}},
		stats:   []statSum{{"behind", "b", 0, 1, 0, 0, 1, 0}, {"behind", "a", 1, 1, 0, 0, 0, 1}, {"behind", "b", 1, 1, 0, 0, 1, 0}},
		adv:     []advanceSum{{"behind", 15, 3, 0}},
	}, {
		name:  "a trap after a prefix: the prefix counts, the rest is not evaluated, never failing",
		batch: mixed, end: 15,
		rules:   []ruleCase{{name: "r", wm: 10, fake: &fakeRule{stopAfter: 2, err: trap}}},
		checked: map[string][]int64{"r": {11, 12, 13, 14, 15}},
		outs:    []outcomeSum{{Rule: "r", NewWM: 12, N: 2, Findings: 1, Failed: 3, NotEvaluated: "trap", FirstFailed: 13}},
		fs:      []findingSum{{12, "a", "r", "warn", 1, "odd", "validity", "critical"}},
		stats:   []statSum{{"r", "a", 0, 2, 1, 1, 0, 0}},
		adv:     []advanceSum{{"r", 12, 2, 0}},
		errs:    []errorSum{{"r", "trap", 13, 15, 3}},
	}, {
		name:  "a timeout before any verdict: the watermark stays, the batch is a rule error",
		batch: mixed, end: 15,
		rules:   []ruleCase{{name: "r", wm: 10, fake: &fakeRule{stopAfter: 0, err: timeout}}},
		checked: map[string][]int64{"r": {11, 12, 13, 14, 15}},
		outs:    []outcomeSum{{Rule: "r", NewWM: 10, Failed: 5, NotEvaluated: "timeout", FirstFailed: 11}},
		errs:    []errorSum{{"r", "timeout", 11, 15, 5}},
	}, {
		name:  "an error after every signal got its verdict is no error",
		batch: mixed[:2], end: 12,
		rules:   []ruleCase{{name: "r", wm: 10, fake: &fakeRule{stopAfter: 2, err: trap}}},
		checked: map[string][]int64{"r": {11, 12}},
		outs:    []outcomeSum{{Rule: "r", NewWM: 12, N: 2, Findings: 1}},
		fs:      []findingSum{{12, "a", "r", "warn", 1, "odd", "validity", "critical"}},
		stats:   []statSum{{"r", "a", 0, 2, 1, 1, 0, 0}},
		adv:     []advanceSum{{"r", 12, 2, 0}},
	}, {
		name:    "sample mode evaluates one signal in N by hash and counts the rest as sampled out",
		batch:   []sig{{21, "a", 1, 0, fail}, {22, "a", 2, 1, fail}, {23, "a", 3, 2, pass}, {24, "a", 4, 3, fail}, {25, "a", 5, 4, pass}},
		end:     30,
		rules:   []ruleCase{{name: "s", wm: 20, sample: 2, fake: &fakeRule{}}},
		checked: map[string][]int64{"s": {21, 23, 25}},
		outs:    []outcomeSum{{Rule: "s", NewWM: 30, N: 3, Findings: 1, SampledOut: 2}},
		fs:      []findingSum{{21, "a", "s", "fail", 2, "wrong", "validity", "critical"}},
		stats:   []statSum{{"s", "a", 0, 3, 2, 0, 1, 0}},
		adv:     []advanceSum{{"s", 30, 3, 2}},
	}, {
		name:    "a sampled rule that traps counts as sampled out only what it passed over",
		batch:   []sig{{21, "a", 1, 0, pass}, {22, "a", 2, 1, fail}, {23, "a", 3, 2, pass}, {24, "a", 4, 3, fail}, {25, "a", 5, 4, pass}},
		end:     25,
		rules:   []ruleCase{{name: "s", wm: 20, sample: 2, fake: &fakeRule{stopAfter: 2, err: trap}}},
		checked: map[string][]int64{"s": {21, 23, 25}},
		outs:    []outcomeSum{{Rule: "s", NewWM: 23, N: 2, Failed: 1, SampledOut: 1, NotEvaluated: "trap", FirstFailed: 25}},
		stats:   []statSum{{"s", "a", 0, 2, 2, 0, 0, 0}},
		adv:     []advanceSum{{"s", 23, 2, 1}},
		errs:    []errorSum{{"s", "trap", 25, 25, 1}},
	}, {
		name:  "an empty range advances the watermark to the end of what was seen",
		end:   40,
		rules: []ruleCase{{name: "r", wm: 30, fake: &fakeRule{}}},
		outs:  []outcomeSum{{Rule: "r", NewWM: 40}},
		adv:   []advanceSum{{"r", 40, 0, 0}},
	}, {
		name:  "a rule closed while running is left for the next run and writes nothing",
		batch: mixed, end: 15,
		rules:   []ruleCase{{name: "gone", wm: 10, fake: &fakeRule{err: closed}}, {name: "r", wm: 14, fake: &fakeRule{}}},
		checked: map[string][]int64{"gone": {11, 12, 13, 14, 15}, "r": {15}},
		outs:    []outcomeSum{{Rule: "gone", Closed: true}, {Rule: "r", NewWM: 15, N: 1, Findings: 1}},
		fs:      []findingSum{{15, "b", "r", "fail", 2, "wrong", "validity", "critical"}},
		stats:   []statSum{{"r", "b", 1, 1, 0, 0, 1, 0}},
		adv:     []advanceSum{{"r", 15, 1, 0}},
	}, {
		name:  "an error that is not the rule's (a broken host) fails the batch",
		batch: mixed, end: 15,
		rules:   []ruleCase{{name: "r", wm: 10, fake: &fakeRule{err: fmt.Errorf("host: %w", errors.New("broken"))}}},
		checked: map[string][]int64{"r": {11, 12, 13, 14, 15}},
		wantErr: true,
	}, {
		name:  "a canceled evaluation fails the batch rather than recording a rule error",
		batch: mixed, end: 15,
		rules:   []ruleCase{{name: "r", wm: 10, fake: &fakeRule{err: &wasmrule.Error{Rule: "r", Kind: wasmrule.KindCanceled}}}},
		checked: map[string][]int64{"r": {11, 12, 13, 14, 15}},
		wantErr: true,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := batchOf(c.batch...)
			var active []leasedRule
			for _, rc := range c.rules {
				active = append(active, leasedRule{&groupRule{check: rc.fake, meta: meta(rc.name), sample: max(rc.sample, 1)}, rc.wm})
			}
			ev, err := evaluate(context.Background(), active, &b, c.end)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want error %v", err, c.wantErr)
			}
			checked := map[string][]int64{}
			for _, rc := range c.rules {
				if rc.fake.got != nil {
					checked[rc.name] = rc.fake.got
				}
			}
			if c.checked == nil {
				c.checked = map[string][]int64{}
			}
			if !reflect.DeepEqual(checked, c.checked) {
				t.Errorf("rules were given %v, want %v", checked, c.checked)
			}
			if c.wantErr {
				return
			}
			outs, fs, stats, adv, errs := summarize(ev)
			for _, x := range []struct {
				what      string
				got, want any
			}{{"outcomes", outs, c.outs}, {"findings", fs, c.fs}, {"statistics", stats, c.stats},
				{"watermark advances", adv, c.adv}, {"rule errors", errs, c.errs}} {
				if !reflect.DeepEqual(x.got, x.want) {
					t.Errorf("%s:\n got %+v\nwant %+v", x.what, x.got, x.want)
				}
			}
		})
	}
}
