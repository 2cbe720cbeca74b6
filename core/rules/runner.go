package rules

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// Scheduler runs the rule jobs; *organizer.Organizer is one. Rule jobs
// are added while the scheduler runs, one per interval as rules with it
// appear, and triggered when a group has backlog left.
type Scheduler interface {
	Add(j organizer.Job)
	Trigger(name string) bool
}

// Source supplies the rules in service; *wasmrule.Dir is one. Disabled
// rules are left out.
type Source interface {
	Rules() []*wasmrule.Rule
}

// Config tunes a Runner. Zero fields take defaults.
type Config struct {
	// Interval is how often each rule runs when it has caught up (default
	// 2s); Intervals overrides it per rule name. A run that found more than
	// a batch waiting runs again at once, so the interval only bounds the
	// lag of a rule that keeps up.
	Interval  time.Duration
	Intervals map[string]time.Duration
	// BatchSize is the most signals per transaction while a group is
	// nearly caught up (default 1024).
	BatchSize int
	// MaxBatchSize is the most signals per transaction while a group is
	// behind (default BatchSize: no growth): a batch takes the whole
	// backlog up to this size, so the per-batch costs (transaction, lease,
	// one rule_stats row per device, hour and rule) are shared by more
	// signals exactly when the group needs to catch up.
	MaxBatchSize int
	// MaxBatchesPerRun bounds one run of one rule (default 64); a rule with
	// more backlog is triggered again at once, so that other rules get
	// their turn in between.
	MaxBatchesPerRun int
	// Concurrency is the most rules evaluated at once (default 1). It bounds
	// the CPU rules take from ingest; pair it with the host's PoolSize and a
	// database pool of Concurrency+1 connections of its own.
	Concurrency int
	// SampleEvery evaluates only one signal in N for the named rules
	// (random-sample mode for expensive rules). The sample is deterministic:
	// a signal is in it when (hashint8(id) & 2147483647) % N = 0.
	SampleEvery map[string]int
	// Shadow lists the rules in shadow mode (rules.mode = { name =
	// "shadow" }): they are evaluated and their findings and statistics
	// stored marked shadow, which scores and alerts leave out.
	Shadow map[string]bool
	// Backfill makes a rule version seen for the first time start at the
	// oldest stored signal; when false it starts at the current frontier
	// and sees only new signals.
	Backfill bool
	// FrontierWait is how long a run waits for in-flight writers before it
	// falls back to the last confirmed frontier (default 1s).
	FrontierWait time.Duration
	// SyncInterval is how often the set of rules is checked for new names
	// and versions (default 2s).
	SyncInterval time.Duration
	// NodeID is recorded with watermark updates and errors.
	NodeID string
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1024
	}
	if c.MaxBatchSize < c.BatchSize {
		c.MaxBatchSize = c.BatchSize
	}
	if c.MaxBatchesPerRun <= 0 {
		c.MaxBatchesPerRun = 64
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.FrontierWait <= 0 {
		c.FrontierWait = time.Second
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 2 * time.Second
	}
	return c
}

// Runner evaluates quality rules over stored signals: each rule on its
// own interval, from its watermark (per rule and version, in Postgres) up to
// the safe frontier, in batches whose findings, hourly statistics and
// watermark advance commit in one transaction. The watermark row is held
// FOR UPDATE SKIP LOCKED while a batch is evaluated, so any number of
// organizers evaluate each signal exactly once per rule version.
//
// It uses its own database pool and at most Concurrency rules at a time, so
// rule evaluation never takes connections or more than its share of CPU
// from ingest.
type Runner struct {
	pool *pgxpool.Pool
	src  Source
	// cfg is the config in use: SetLive swaps it (the fields it may
	// change); read it with conf.
	cfg atomic.Pointer[Config]
	log hclog.Logger
	fr  *frontier
	sem chan struct{}

	// beforeCommit, when set (tests), runs before each batch commits.
	beforeCommit func(ctx context.Context, rule string, lastID int64)

	mu    sync.Mutex
	stats map[string]*ruleRunStats // by rule name
	seen  map[string]string        // rule name -> last version seen by sync
	// groups are the intervals that have a job.
	groups map[time.Duration]bool
	org    Scheduler
	// waiting lists rule jobs that found every slot busy, oldest first.
	waiting []string
	// retryAt holds back a rule version whose batch was not evaluated
	// until its interval has passed, so the immediate reruns of a group
	// that is behind do not turn a passing fault (a timeout under load)
	// into rules.max_failures failures within a second.
	retryAt map[string]time.Time // by name + "\x00" + version
}

type ruleRunStats struct {
	version              string
	runs, batches        uint64
	evaluated, findings  uint64
	fails                uint64
	sampledOut, failures uint64
	lastRun              time.Time
	lastErr              string
	lastID               int64
}

// RunStatus is a snapshot of one rule's scheduling in this process.
type RunStatus struct {
	Rule       string    `json:"rule"`
	Version    string    `json:"version"`
	Interval   string    `json:"interval"`
	SampleOne  int       `json:"sample_one_in,omitempty"`
	Mode       string    `json:"mode"` // active or shadow
	Runs       uint64    `json:"runs"`
	Batches    uint64    `json:"batches"`
	Evaluated  uint64    `json:"evaluated"`
	Findings   uint64    `json:"findings"`
	Fails      uint64    `json:"fails"` // fail verdicts (of findings)
	SampledOut uint64    `json:"sampled_out"`
	Failures   uint64    `json:"failures"` // batches not evaluated
	LastRun    time.Time `json:"last_run,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Watermark  int64     `json:"watermark"` // last id this process saw for the version
	Backlog    int64     `json:"backlog"`   // frontier - watermark (an upper bound on signals waiting)
}

// New returns a runner that reads and writes through pool (give it
// a pool of its own) and evaluates the rules src serves.
func New(pool *pgxpool.Pool, src Source, cfg Config, log hclog.Logger) *Runner {
	cfg = cfg.withDefaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r := &Runner{
		pool: pool, src: src, log: log,
		fr:      &frontier{pool: pool, wait: cfg.FrontierWait, log: log},
		sem:     make(chan struct{}, cfg.Concurrency),
		stats:   map[string]*ruleRunStats{},
		seen:    map[string]string{},
		groups:  map[time.Duration]bool{},
		retryAt: map[string]time.Time{},
	}
	r.cfg.Store(&cfg)
	return r
}

// ErrSequenceCache means signals_id_seq hands out ids from a per-session
// cache, which breaks the frontier's reasoning (see frontier.go).
var ErrSequenceCache = errors.New("signals_id_seq must have CACHE 1 for exactly-once rule evaluation")

// CheckSchema verifies what the runner relies on in the database.
func (r *Runner) CheckSchema(ctx context.Context) error {
	var cache int64
	if err := r.pool.QueryRow(ctx, seqCacheSQL).Scan(&cache); err != nil {
		return fmt.Errorf("checking signals_id_seq: %w", err)
	}
	if cache != 1 {
		return fmt.Errorf("checking signals_id_seq: cache is %d: %w", cache, ErrSequenceCache)
	}
	return nil
}

// JobName is the organizer job that runs the named rule: rules with the
// same interval share one job ("rules@30s") and are evaluated together, one
// fetch per batch for all of them.
func (r *Runner) JobName(rule string) string { return groupJobName(r.interval(rule)) }

func groupJobName(d time.Duration) string { return "rules@" + d.String() }

// SyncJobName is the organizer job that adds jobs for new rules.
const SyncJobName = "rules.sync"

// Register adds the rule jobs to o: SyncJobName, which adds a job per
// interval as rules with it appear (JobName) and triggers a rule's job when
// a new rule or version goes live, and the jobs of the rules already in
// service.
func (r *Runner) Register(o Scheduler) {
	r.mu.Lock()
	r.org = o
	r.mu.Unlock()
	o.Add(organizer.Job{Name: SyncJobName, Interval: r.conf().SyncInterval, Run: func(ctx context.Context) error {
		r.Sync()
		return nil
	}})
	r.Sync()
}

// Sync adds the job of every interval not seen before and triggers the job
// of a rule that is new or whose version changed.
func (r *Runner) Sync() {
	r.mu.Lock()
	o := r.org
	var add []time.Duration
	trigger := map[string]bool{}
	for _, rule := range r.src.Rules() {
		name, ver := rule.Name(), rule.Version()
		d := r.interval(name)
		if !r.groups[d] {
			r.groups[d] = true
			add = append(add, d)
		}
		old, ok := r.seen[name]
		r.seen[name] = ver
		if !ok || old != ver {
			if ok {
				r.log.Info("rule version changed; evaluating from its own watermark", "rule", name,
					"old_version", old, "version", ver)
			}
			trigger[groupJobName(d)] = true
		}
	}
	r.mu.Unlock()
	if o == nil {
		return
	}
	for _, d := range add {
		d := d
		o.Add(organizer.Job{Name: groupJobName(d), Interval: d, Run: func(ctx context.Context) error {
			_, err := r.RunInterval(ctx, d)
			return err
		}})
	}
	for job := range trigger {
		o.Trigger(job)
	}
}

// conf is the config in use.
func (r *Runner) conf() *Config { return r.cfg.Load() }

// SetLive applies the live fields of next to the running runner: Interval,
// Intervals, BatchSize, MaxBatchSize, SampleEvery, Shadow and Backfill (a
// rule version seen from then on). The other fields keep the values New
// was given; the returned names say which of them differ in next, so the
// caller can report that they need a restart. A rule whose interval
// changed moves to the job of its new interval at its next run (Sync).
func (r *Runner) SetLive(next Config) (needRestart []string) {
	next = next.withDefaults()
	cur := *r.conf()
	if next.Concurrency != cur.Concurrency {
		needRestart = append(needRestart, "concurrency")
	}
	if next.SyncInterval != cur.SyncInterval {
		needRestart = append(needRestart, "sync_interval")
	}
	if next.NodeID != cur.NodeID {
		needRestart = append(needRestart, "node_id")
	}
	cur.Interval, cur.Intervals = next.Interval, next.Intervals
	cur.BatchSize, cur.MaxBatchSize = next.BatchSize, next.MaxBatchSize
	cur.SampleEvery, cur.Shadow, cur.Backfill = next.SampleEvery, next.Shadow, next.Backfill
	r.cfg.Store(&cur)
	r.Sync()
	return needRestart
}

func (r *Runner) interval(name string) time.Duration {
	if d, ok := r.conf().Intervals[name]; ok && d > 0 {
		return d
	}
	return r.conf().Interval
}

func (r *Runner) sampleEvery(name string) int {
	if n := r.conf().SampleEvery[name]; n > 1 {
		return n
	}
	return 1
}

// RunInterval runs the rules in service whose interval is d, together, and
// triggers their job again at once when backlog remains or when the run was
// behind (it found a full batch waiting: what arrived during the run is
// then likely more than a batch too). It never waits for a rule
// slot: when Concurrency groups are already running it queues the job and
// returns, and the job is triggered when a slot frees, so waiting rules do
// not hold the organizer's shared job slots.
func (r *Runner) RunInterval(ctx context.Context, d time.Duration) ([]RunResult, error) {
	var rules []*wasmrule.Rule
	now := time.Now()
	r.mu.Lock()
	for _, rule := range r.src.Rules() {
		if r.interval(rule.Name()) != d {
			continue
		}
		if at, ok := r.retryAt[rule.Name()+"\x00"+rule.Version()]; ok && now.Before(at) {
			continue // its failed batch is retried on a later run
		}
		rules = append(rules, rule)
	}
	r.mu.Unlock()
	if len(rules) == 0 {
		return nil, nil
	}
	job := groupJobName(d)
	if !r.tryAcquire(job) {
		return nil, nil
	}
	res, behind, err := r.runGroup(ctx, rules)
	r.release()
	more := behind
	r.mu.Lock()
	for i, rule := range rules {
		key := rule.Name() + "\x00" + rule.Version()
		delete(r.retryAt, key)
		if i < len(res) && res[i].Failed > 0 {
			r.retryAt[key] = time.Now().Add(d)
		}
	}
	r.mu.Unlock()
	for i, rule := range rules {
		if i < len(res) {
			r.record(rule, res[i], err)
			more = more || res[i].More
		}
	}
	if err == nil && more {
		r.trigger(job)
	}
	return res, err
}

func (r *Runner) tryAcquire(job string) bool {
	select {
	case r.sem <- struct{}{}:
		return true
	default:
	}
	r.mu.Lock()
	r.waiting = append(r.waiting, job)
	r.mu.Unlock()
	// A slot freed between the first try and the queueing would have found
	// the queue empty: try once more.
	select {
	case r.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// release frees a rule slot and wakes the longest-waiting rule job.
func (r *Runner) release() {
	<-r.sem
	r.mu.Lock()
	var next string
	if len(r.waiting) > 0 {
		next = r.waiting[0]
		r.waiting = r.waiting[1:]
	}
	r.mu.Unlock()
	if next != "" {
		r.trigger(next)
	}
}

func (r *Runner) trigger(job string) {
	r.mu.Lock()
	o := r.org
	r.mu.Unlock()
	if o != nil {
		o.Trigger(job)
	}
}

// RunResult says what one run did for one rule.
type RunResult struct {
	Batches    int   // committed batches that advanced the rule
	Evaluated  int   // signals evaluated
	Findings   int   // warn and fail verdicts stored
	Fails      int   // fail verdicts stored (of Findings)
	SampledOut int   // signals skipped by the sample mode
	Failed     int   // signals not evaluated (recorded in rule_errors)
	Watermark  int64 // the watermark after the run
	Frontier   int64 // the frontier the run worked towards
	Leased     bool  // another organizer held the watermark: nothing done
	More       bool  // stopped at MaxBatchesPerRun with backlog left
}

// RunAll runs every rule in service once, together, and returns what it
// did per rule (in the order of the source); tests and the CLI use it.
func (r *Runner) RunAll(ctx context.Context) ([]RunResult, error) {
	return r.RunRules(ctx, r.src.Rules())
}

// RunRule runs one rule; see RunRules.
func (r *Runner) RunRule(ctx context.Context, rule *wasmrule.Rule) (RunResult, error) {
	res, err := r.RunRules(ctx, []*wasmrule.Rule{rule})
	if len(res) == 0 {
		return RunResult{}, err
	}
	return res[0], err
}

// RunRules evaluates rules together from their watermarks towards the
// frontier, at most MaxBatchesPerRun batches, waiting for a rule slot. A
// batch a rule cannot evaluate is recorded in rule_errors and ends that
// rule's run without error (the batch is retried next run); errors are
// database or context errors.
func (r *Runner) RunRules(ctx context.Context, rules []*wasmrule.Rule) ([]RunResult, error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res, _, err := r.runGroup(ctx, rules)
	r.release()
	for i, rule := range rules {
		if i < len(res) {
			r.record(rule, res[i], err)
		}
	}
	return res, err
}

func (r *Runner) record(rule *wasmrule.Rule, res RunResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats[rule.Name()]
	if st == nil || st.version != rule.Version() {
		st = &ruleRunStats{version: rule.Version()}
		r.stats[rule.Name()] = st
	}
	st.runs++
	st.batches += uint64(res.Batches)
	st.evaluated += uint64(res.Evaluated)
	st.findings += uint64(res.Findings)
	st.fails += uint64(res.Fails)
	st.sampledOut += uint64(res.SampledOut)
	if res.Failed > 0 {
		st.failures++
	}
	st.lastRun = time.Now()
	if res.Watermark > st.lastID {
		st.lastID = res.Watermark
	}
	switch {
	case err != nil:
		st.lastErr = err.Error()
	case res.Failed > 0:
		st.lastErr = fmt.Sprintf("%d signals not evaluated; see rule_errors", res.Failed)
	default:
		st.lastErr = ""
	}
}

// Status returns this process's view of every rule it ran, by name.
func (r *Runner) Status() []RunStatus {
	front := r.fr.Confirmed()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RunStatus, 0, len(r.stats))
	for name, st := range r.stats {
		s := RunStatus{Rule: name, Version: st.version, Interval: r.interval(name).String(),
			Runs: st.runs, Batches: st.batches, Evaluated: st.evaluated, Findings: st.findings, Fails: st.fails,
			SampledOut: st.sampledOut, Failures: st.failures, LastRun: st.lastRun, LastError: st.lastErr,
			Watermark: st.lastID, Backlog: max(front-st.lastID, 0)}
		if n := r.sampleEvery(name); n > 1 {
			s.SampleOne = n
		}
		s.Mode = "active"
		if r.conf().Shadow[name] {
			s.Mode = "shadow"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}

// Frontier returns the last confirmed safe frontier (see frontier.go).
func (r *Runner) Frontier() int64 { return r.fr.Confirmed() }

// Watermark is the stored progress of one rule version (all organizers).
type Watermark struct {
	Rule       string    `json:"rule"`
	Version    string    `json:"version"`
	StartID    int64     `json:"start_id"`
	LastID     int64     `json:"last_id"`
	Evaluated  int64     `json:"evaluated"`
	SampledOut int64     `json:"sampled_out"`
	Batches    int64     `json:"batches"`
	Updated    time.Time `json:"updated"`
	UpdatedBy  string    `json:"updated_by"`
}

// Watermarks reads every rule version's progress from the database, by
// rule and version.
func (r *Runner) Watermarks(ctx context.Context) ([]Watermark, error) {
	rows, err := r.pool.Query(ctx, `SELECT rule, rule_version, start_id, last_id, evaluated, sampled_out,
		batches, updated, updated_by FROM rule_watermarks ORDER BY rule, rule_version`)
	if err != nil {
		return nil, fmt.Errorf("reading rule watermarks: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Watermark])
	if err != nil {
		return nil, fmt.Errorf("reading rule watermarks: %w", err)
	}
	return out, nil
}
