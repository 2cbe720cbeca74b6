package rules

import (
	"context"
	"fmt"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

var (
	_ metrics.Collector = RuleHealth{}
	_ health.Checker    = RuleHealth{}
)

// RuleHealth is what the quality rules measure and how they are: the rule
// host's per-rule counters (Dir), the runner's backlogs (Runner) and the
// failed batches of the last hour (Errors, from rule_errors). Dir and
// Runner are nil when rules are disabled.
type RuleHealth struct {
	Dir    *wasmrule.Dir
	Runner *Runner
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
		rs := h.Runner.Status()
		for _, s := range rs {
			w.Counter("fleetcore_rule_failures_total", "Signals this process evaluated with a fail verdict, per rule version (shadow rules included).", float64(s.Fails), "rule", s.Rule, "version", s.Version)
		}
		for _, s := range rs {
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
