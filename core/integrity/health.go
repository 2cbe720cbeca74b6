package integrity

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/organizer"
)

// Service check outcomes.
const (
	StatusOK   = "ok"
	StatusWarn = "warn" // degraded but taking traffic
	StatusFail = "fail"
)

// Probe is one service check.
type Probe struct {
	Name string
	// Check returns a status and a one-line detail.
	Check func(ctx context.Context) (status, detail string)
}

// CheckResult is a probe's latest outcome.
type CheckResult struct {
	Name    string    `json:"name"`
	Status  string    `json:"status"`
	Detail  string    `json:"detail"`
	Checked time.Time `json:"checked"`
	Millis  int64     `json:"millis"`
	Since   time.Time `json:"since"` // when the status last changed
}

// Health runs the service checks (organizer job "health") and keeps their
// latest results for /readyz, /metrics and the dashboard. A status change
// is logged once.
type Health struct {
	log     hclog.Logger
	timeout time.Duration

	mu      sync.Mutex
	probes  []Probe
	results map[string]CheckResult
}

// NewHealth returns a checker; each probe gets timeout.
func NewHealth(log hclog.Logger, timeout time.Duration) *Health {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Health{log: log, timeout: timeout, results: map[string]CheckResult{}}
}

// Add registers a probe.
func (h *Health) Add(p Probe) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probes = append(h.probes, p)
}

// Run checks everything once; the error lists failing checks.
func (h *Health) Run(ctx context.Context) error {
	h.mu.Lock()
	probes := append([]Probe(nil), h.probes...)
	h.mu.Unlock()
	var failing []string
	for _, p := range probes {
		cctx, cancel := context.WithTimeout(ctx, h.timeout)
		start := time.Now()
		status, detail := safeProbe(cctx, p)
		cancel()
		r := CheckResult{Name: p.Name, Status: status, Detail: detail, Checked: start.UTC(), Millis: time.Since(start).Milliseconds()}
		h.mu.Lock()
		prev, seen := h.results[p.Name]
		r.Since = r.Checked
		if seen && prev.Status == status {
			r.Since = prev.Since
		}
		h.results[p.Name] = r
		h.mu.Unlock()
		if !seen || prev.Status != status {
			switch {
			case status == StatusOK && seen:
				h.log.Info("service check recovered", "check", p.Name, "detail", detail)
			case status == StatusWarn:
				h.log.Warn("service check degraded", "check", p.Name, "detail", detail)
			case status == StatusFail:
				h.log.Error("service check failing", "check", p.Name, "detail", detail)
			}
		}
		if status == StatusFail {
			failing = append(failing, p.Name+": "+detail)
		}
	}
	if len(failing) > 0 {
		return fmt.Errorf("service checks failing: %s", strings.Join(failing, "; "))
	}
	return nil
}

func safeProbe(ctx context.Context, p Probe) (status, detail string) {
	defer func() {
		if r := recover(); r != nil {
			status, detail = StatusFail, fmt.Sprintf("check panicked: %v", r)
		}
	}()
	return p.Check(ctx)
}

// Results returns the latest results sorted by name.
func (h *Health) Results() []CheckResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]CheckResult, 0, len(h.results))
	for _, r := range h.results {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OrganizerProbe reports jobs that fail or lag: a job whose last success is
// older than three intervals (and that has run at least once) lags.
func OrganizerProbe(o *organizer.Organizer, now func() time.Time) Probe {
	return Probe{Name: "organizer", Check: func(ctx context.Context) (string, string) {
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
			return StatusWarn, "failing jobs: " + strings.Join(failing, "; ")
		case len(lagging) > 0:
			return StatusWarn, "lagging jobs: " + strings.Join(lagging, "; ")
		}
		return StatusOK, fmt.Sprintf("%d jobs on schedule", len(o.Status()))
	}}
}
