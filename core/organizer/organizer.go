package organizer

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Job is one periodic piece of work.
type Job struct {
	Name     string
	Interval time.Duration
	// Run does one round of work. Returning an error marks the job failing
	// until a later round succeeds.
	Run func(ctx context.Context) error
}

// JobStatus is a snapshot of one job.
type JobStatus struct {
	Name        string
	Interval    time.Duration
	Runs        uint64
	Failures    uint64
	LastStart   time.Time
	LastSuccess time.Time
	LastError   string
	LastMillis  int64
	Running     bool
}

type jobState struct {
	job     Job
	trigger chan struct{}

	runs, failures atomic.Uint64
	running        atomic.Bool
	mu             sync.Mutex
	lastStart      time.Time
	lastSuccess    time.Time
	lastErr        string
	lastMillis     int64
}

// Organizer runs jobs.
type Organizer struct {
	log  hclog.Logger
	sem  chan struct{}
	mu   sync.Mutex
	jobs map[string]*jobState
	wg   sync.WaitGroup
	// run starts a job's loop once Start has run (nil before): jobs
	// added later start at once, under Start's context.
	run func(js *jobState)
}

// New makes an organizer running at most concurrency jobs at once.
func New(log hclog.Logger, concurrency int) *Organizer {
	if concurrency < 1 {
		concurrency = 1
	}
	return &Organizer{log: log, sem: make(chan struct{}, concurrency), jobs: map[string]*jobState{}}
}

// Add registers a job. Jobs added after Start start at once. It panics on
// an empty or duplicate name or a non-positive interval (a wiring mistake).
func (o *Organizer) Add(j Job) {
	if j.Name == "" || j.Interval <= 0 || j.Run == nil {
		panic(fmt.Sprintf("organizer: invalid job %q", j.Name))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.jobs[j.Name]; dup {
		panic(fmt.Sprintf("organizer: job %q added twice", j.Name))
	}
	js := &jobState{job: j, trigger: make(chan struct{}, 1)}
	o.jobs[j.Name] = js
	if o.run != nil {
		o.run(js)
	}
}

// Start runs every job until ctx ends; Wait waits for them to stop.
func (o *Organizer) Start(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.run = func(js *jobState) {
		o.wg.Add(1)
		go o.loop(ctx, js)
	}
	for _, js := range o.jobs {
		o.run(js)
	}
}

// Wait blocks until every job loop has returned (after ctx ended).
func (o *Organizer) Wait() { o.wg.Wait() }

// Trigger asks a job to run as soon as possible (coalesced with a pending
// trigger). It reports whether the job exists.
func (o *Organizer) Trigger(name string) bool {
	o.mu.Lock()
	js, ok := o.jobs[name]
	o.mu.Unlock()
	if ok {
		select {
		case js.trigger <- struct{}{}:
		default:
		}
	}
	return ok
}

// RunNow runs a job once synchronously (outside its schedule, still never
// concurrently with itself) and returns its error. Tests and CLI use it.
func (o *Organizer) RunNow(ctx context.Context, name string) error {
	o.mu.Lock()
	js, ok := o.jobs[name]
	o.mu.Unlock()
	if !ok {
		return fmt.Errorf("organizer: no job %q", name)
	}
	return o.runOnce(ctx, js)
}

func (o *Organizer) loop(ctx context.Context, js *jobState) {
	defer o.wg.Done()
	t := time.NewTicker(js.job.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-js.trigger:
		}
		o.runOnce(ctx, js) //nolint:errcheck // recorded in the job status
	}
}

func (o *Organizer) runOnce(ctx context.Context, js *jobState) error {
	for !js.running.CompareAndSwap(false, true) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	defer js.running.Store(false)
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-o.sem }()
	start := time.Now()
	js.mu.Lock()
	js.lastStart = start
	js.mu.Unlock()
	err := safeRun(ctx, js.job.Run)
	js.runs.Add(1)
	js.mu.Lock()
	defer js.mu.Unlock()
	js.lastMillis = time.Since(start).Milliseconds()
	if err != nil {
		js.failures.Add(1)
		if js.lastErr == "" && ctx.Err() == nil {
			o.log.Warn("job failing", "job", js.job.Name, "error", err)
		}
		js.lastErr = err.Error()
		return err
	}
	if js.lastErr != "" {
		o.log.Info("job recovered", "job", js.job.Name)
	}
	js.lastErr = ""
	js.lastSuccess = time.Now()
	return nil
}

// safeRun turns a panicking job into an error so one bad job cannot stop
// the organizer.
func safeRun(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("job panicked: %v", r)
		}
	}()
	return run(ctx)
}

// Status returns every job's status, sorted by name.
func (o *Organizer) Status() []JobStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]JobStatus, 0, len(o.jobs))
	for _, js := range o.jobs {
		js.mu.Lock()
		out = append(out, JobStatus{
			Name: js.job.Name, Interval: js.job.Interval, Runs: js.runs.Load(), Failures: js.failures.Load(),
			LastStart: js.lastStart, LastSuccess: js.lastSuccess, LastError: js.lastErr, LastMillis: js.lastMillis,
			Running: js.running.Load(),
		})
		js.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
