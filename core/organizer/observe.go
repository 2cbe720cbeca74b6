package organizer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
)

var (
	_ metrics.Collector = (*Organizer)(nil)
	_ health.Checker    = (*Organizer)(nil)
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
		m.Gauge("fleetcore_job_last_duration_seconds", "Duration of the job's last round.", float64(j.LastMillis)/1000, "job", j.Name)
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
