package health

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/metrics"
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

// New returns a checker; each probe gets timeout.
func New(log hclog.Logger, timeout time.Duration) *Health {
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

// Checker is what a stage exports to say how it is: a status (StatusOK,
// StatusWarn, StatusFail) and a one-line detail.
type Checker interface {
	Check(ctx context.Context) (status, detail string)
}

// Of names a stage's Checker as a Probe.
func Of(name string, c Checker) Probe { return Probe{Name: name, Check: c.Check} }

// Collect writes fleetcore_service_check_state: per check, one sample
// per state (ok, warn, fail), 1 for the check's current state and 0 for
// the others.
func (h *Health) Collect(w *metrics.Writer) {
	for _, c := range h.Results() {
		for _, s := range []string{StatusOK, StatusWarn, StatusFail} {
			w.Gauge("fleetcore_service_check_state", "Service check state: 1 for the check's current state (ok, warn = degraded, fail), 0 for the others.",
				metrics.Bool(c.Status == s), "check", c.Name, "state", s)
		}
	}
}
