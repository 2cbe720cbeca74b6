package organizer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

var (
	_ metrics.Collector = (*Organizer)(nil)
	_ health.Checker    = (*Organizer)(nil)
	_ metrics.Collector = RuleHealth{}
	_ health.Checker    = RuleHealth{}
)

// Collect writes each job's rounds, failures, last success and last
// duration.
func (o *Organizer) Collect(m *metrics.Writer) {
	st := o.Status()
	for _, j := range st {
		m.Counter("fleetcore_job_runs_total", "Organizer job rounds.", float64(j.Runs), "job", j.Name)
	}
	for _, j := range st {
		m.Counter("fleetcore_job_failures_total", "Organizer job rounds that failed.", float64(j.Failures), "job", j.Name)
	}
	for _, j := range st {
		v := 0.0
		if !j.LastSuccess.IsZero() {
			v = float64(j.LastSuccess.UnixMilli()) / 1000
		}
		m.Gauge("fleetcore_job_last_success_timestamp_seconds", "When the job last succeeded (0 = never).", v, "job", j.Name)
	}
	for _, j := range st {
		m.Gauge("fleetcore_job_last_duration_milliseconds", "Duration of the job's last round.", float64(j.LastMillis), "job", j.Name)
	}
}

// Check is the "organizer" service check (see Checker).
func (o *Organizer) Check(ctx context.Context) (string, string) {
	return o.Checker(time.Now).Check(ctx)
}

// Checker reports jobs that fail or lag, by the clock now: a job whose
// last success is older than three intervals (and that has run at least
// once) lags.
func (o *Organizer) Checker(now func() time.Time) health.Checker {
	return checkFunc(func(context.Context) (string, string) {
		var failing, lagging []string
		t := now()
		for _, s := range o.Status() {
			switch {
			case s.LastError != "":
				failing = append(failing, fmt.Sprintf("%s: %s", s.Name, s.LastError))
			case s.Runs > 0 && !s.LastSuccess.IsZero() && t.Sub(s.LastSuccess) > 3*s.Interval && !s.Running:
				lagging = append(lagging, fmt.Sprintf("%s: last success %s ago", s.Name, t.Sub(s.LastSuccess).Truncate(time.Second)))
			case s.Running && t.Sub(s.LastStart) > 3*s.Interval+time.Minute:
				lagging = append(lagging, fmt.Sprintf("%s: running for %s", s.Name, t.Sub(s.LastStart).Truncate(time.Second)))
			}
		}
		switch {
		case len(failing) > 0:
			return health.StatusWarn, "failing jobs: " + strings.Join(failing, "; ")
		case len(lagging) > 0:
			return health.StatusWarn, "lagging jobs: " + strings.Join(lagging, "; ")
		}
		return health.StatusOK, fmt.Sprintf("%d jobs on schedule", len(o.Status()))
	})
}

type checkFunc func(ctx context.Context) (string, string)

func (f checkFunc) Check(ctx context.Context) (string, string) { return f(ctx) }

// RuleHealth is what the quality rules measure and how they are: the rule
// host's per-rule counters (Dir), the runner's backlogs (Runner) and the
// failed batches of the last hour (Errors, from rule_errors). Dir and
// Runner are nil when rules are disabled.
type RuleHealth struct {
	Dir    *wasmrule.Dir
	Runner *RuleRunner
	// Errors counts failed batches and failing rule versions of the last
	// hour.
	Errors func(ctx context.Context) (batches, rules int64, err error)
}

// Collect writes the rule host's and the runner's per-rule counters.
func (h RuleHealth) Collect(w *metrics.Writer) {
	if h.Dir != nil {
		st := h.Dir.Status()
		for _, s := range st {
			if s.Stats != nil {
				w.Counter("fleetcore_rule_host_signals_total", "Signals evaluated by each loaded rule in this process.", float64(s.Stats.Signals), "rule", s.Name, "version", s.Version)
			}
		}
		for _, s := range st {
			if s.Stats != nil {
				w.Counter("fleetcore_rule_host_failed_batches_total", "Batches a loaded rule could not evaluate in this process.", float64(s.Stats.Failed), "rule", s.Name, "version", s.Version)
			}
		}
	}
	if h.Runner != nil {
		for _, s := range h.Runner.Status() {
			w.Gauge("fleetcore_rule_backlog_signals", "Signals stored but not yet evaluated by each rule (upper bound).", float64(s.Backlog), "rule", s.Rule, "version", s.Version)
		}
	}
}

// Check is the "rules" service check: degraded while a rule is disabled
// or batches failed in the last hour.
func (h RuleHealth) Check(ctx context.Context) (string, string) {
	recent, failing, err := h.Errors(ctx)
	if err != nil {
		return health.StatusWarn, "cannot read rule errors: " + err.Error()
	}
	disabled := 0
	live := 0
	if h.Dir != nil {
		for _, r := range h.Dir.Status() {
			switch r.Status {
			case "disabled":
				disabled++
			case "live":
				live++
			}
		}
	}
	switch {
	case disabled > 0:
		return health.StatusWarn, fmt.Sprintf("%d rules disabled after repeated failures; %d failed batches in the last hour", disabled, recent)
	case recent > 0:
		return health.StatusWarn, fmt.Sprintf("%d failed batches of %d rules in the last hour", recent, failing)
	case h.Dir == nil:
		return health.StatusOK, "rules disabled by configuration"
	}
	return health.StatusOK, fmt.Sprintf("%d rules live, no errors in the last hour", live)
}
