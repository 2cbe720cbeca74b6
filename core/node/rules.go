package node

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// JobRuleAlerts clears rule_disabled alerts of rules back in service.
const JobRuleAlerts = "rules.alerts"

// ruleDisabled opens the rule_disabled alert (integrity.KindRuleDisabled)
// of a rule the host disabled, and delivers it at once.
func (n *Node) ruleDisabled(ctx context.Context, a wasmrule.Alert) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opened, err := integrity.OpenAlert(ctx, n.st.Pool(), integrity.RuleSubject(a.Rule), integrity.KindRuleDisabled, a.Message)
	if err != nil {
		// The host has logged the disable; the alert is what is lost.
		n.log.Error("recording the rule_disabled alert", "rule", a.Rule, "version", a.Version, "error", err)
		return
	}
	if opened {
		n.org.Trigger(JobAlerts)
	}
}

// clearRuleAlerts clears the rule_disabled alert of every rule that has a
// version in service again (a new version, or re-enabled) or is gone from
// the rule folder.
func (n *Node) clearRuleAlerts(ctx context.Context) error {
	subjects, err := integrity.OpenSubjects(ctx, n.st.Pool(), integrity.KindRuleDisabled)
	if err != nil {
		return err
	}
	cleared := 0
	for _, s := range subjects {
		name := integrity.RuleOfSubject(s)
		var reason string
		switch r := n.rules.Rule(name); {
		case name == "":
			continue
		case r == nil:
			reason = "rule removed from the rule folder"
		case !r.Disabled():
			reason = fmt.Sprintf("rule %s %s in service", name, r.Version())
		default:
			continue
		}
		ok, err := integrity.ClearAlert(ctx, n.st.Pool(), s, integrity.KindRuleDisabled, reason)
		if err != nil {
			return err
		}
		if ok {
			cleared++
			n.log.Info("alert cleared", "rule", name, "kind", integrity.KindRuleDisabled, "reason", reason)
		}
	}
	if cleared > 0 {
		n.org.Trigger(JobAlerts)
	}
	return nil
}

// RulesCompiling is the reason /readyz gives while the rules of the first
// scan (the folder's or the built-in ones, and the checks of the config)
// are still compiling.
const RulesCompiling = "rules compiling"

// rulesPending is the api.Deps.Starting of the node: RulesCompiling until
// the first rule scan has finished.
func (n *Node) rulesPending() string {
	select {
	case <-n.rulesLive:
		return ""
	default:
		return RulesCompiling
	}
}

// startRules puts the quality rules in service: a WASM host, the rule
// folder with hot reload (Node.Rules) and the rule jobs of the organizer
// (Node.RuleRunner), which evaluate through a database pool of their own
// (rules.concurrency + 1 connections), so rule evaluation never takes a
// connection that ingest needs. The rules compile in the background (in
// parallel, Dir.Scan) so that the API and the listeners do not wait for
// them; n.rulesLive is closed once the first scan is done. While the
// folder is missing or holds no rule file, the built-in rules embedded in
// the binary (WithBuiltinRules) are served. Everything stops when ctx
// ends, after the organizer's jobs have returned.
func (n *Node) startRules(ctx context.Context) error {
	rc := n.cfg.Rules
	log := n.log.Named("rules")
	if !*rc.Enabled {
		log.Info("quality rules disabled by configuration")
		close(n.rulesLive)
		return nil
	}
	// A missing rule folder is watched for, not created, and without
	// built-in rules the compilation cache then stays in memory: a node
	// without rules leaves no folders behind.
	cacheDir := rc.CacheDir
	_, statErr := os.Stat(rc.Dir)
	switch {
	case statErr == nil:
	case n.builtinRules != nil: // the Dir logs that the built-in rules serve
	default:
		log.Warn("rule folder not found; rules go live when it appears", "dir", rc.Dir)
		cacheDir = ""
	}
	host, err := wasmrule.NewHost(wasmrule.Config{
		CacheDir:         cacheDir,
		MemoryLimitPages: uint32(rc.MemoryLimitMiB) * 16, // 64 KiB pages
		Budget:           config.Duration(rc.Timeout),
		BatchSize:        rc.BatchSize,
		PoolSize:         rc.Concurrency,
		MaxFailures:      rc.MaxFailures,
		Logger:           log.Named("host"),
		// Called in the failing batch's path: the alert is written aside.
		OnAlert: func(a wasmrule.Alert) { go n.ruleDisabled(ctx, a) },
	})
	if err != nil {
		return err
	}
	reload := config.Duration(rc.ReloadInterval)
	dir := wasmrule.NewDir(host, rc.Dir, reload)
	if n.builtinRules != nil {
		dir.WithFallback(n.builtinRules, "built-in")
	}
	scan := func() bool {
		if n.builtinRules == nil {
			if _, err := os.Stat(rc.Dir); err != nil {
				return false
			}
		}
		if err := dir.Scan(ctx); err != nil && ctx.Err() == nil {
			log.Error("scanning rule folder", "dir", rc.Dir, "error", err)
		}
		return true
	}
	st, err := store.Open(ctx, n.cfg.Database.URL, store.Options{
		MaxConns:       int32(rc.Concurrency + 1),
		ConnectTimeout: config.Duration(n.cfg.Database.ConnectTimeout),
	})
	if err != nil {
		_ = host.Close(ctx)
		return fmt.Errorf("opening the rules' database pool: %w", err)
	}
	runner := rules.New(st.Pool(), dir, n.runnerConfig(rc), log)
	if !n.migrated.Load() {
		// Started without Postgres: migrateThenPing checks the schema once
		// it has migrated; until then the rule jobs fail and retry.
		log.Warn("rules wait for Postgres")
	} else if err := runner.CheckSchema(ctx); err != nil {
		st.Close()
		_ = host.Close(ctx)
		return err
	}
	runner.Register(n.org)
	n.rules, n.ruleRunner, n.ruleScan = dir, runner, func() { scan() }
	n.org.Add(organizer.Job{Name: JobRuleAlerts, Interval: reload, Run: n.clearRuleAlerts})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		start := time.Now()
		// Checks of the config go live first, so a file with the same rule
		// name is the one refused.
		for _, c := range rc.Checks {
			source := fmt.Sprintf("%s: check %s", n.cfg.File, c.Name)
			m, err := c.Compile()
			if err == nil {
				err = dir.AddModule(ctx, source, m.Wasm)
			}
			if err != nil && ctx.Err() == nil {
				log.Error("check of the config refused", "check", c.Name, "error", err)
			}
		}
		present := scan()
		if ctx.Err() == nil {
			// The jobs of the rules now live, at once, and before
			// RulesLive says so: whoever waits for it can run them.
			runner.Sync()
			close(n.rulesLive)
			log.Info("quality rules in service", "dir", rc.Dir, "rules", len(dir.Rules()), "built_in", dir.UsingFallback(),
				"concurrency", rc.Concurrency, "interval", rc.Interval, "compile", time.Since(start).Round(time.Millisecond))
		}
		t := time.NewTicker(reload)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if err := dir.Close(context.Background()); err != nil {
					log.Warn("closing rules", "error", err)
				}
				return
			case <-t.C:
			}
			if ok := scan(); ok != present {
				present = ok
				if !ok {
					log.Warn("rule folder disappeared; the loaded rules keep running", "dir", rc.Dir)
				}
			}
		}
	}()
	n.rulesStopped = make(chan struct{})
	go func() {
		defer close(n.rulesStopped)
		<-ctx.Done()
		n.org.Wait() // rule jobs have returned
		<-watched    // rules closed
		st.Close()
		if err := host.Close(context.Background()); err != nil {
			log.Warn("closing rule host", "error", err)
		}
	}()
	log.Info("quality rules compiling in the background; /readyz says "+RulesCompiling+" until they are live", "dir", rc.Dir)
	return nil
}

// runnerConfig is the rule runner's config of a rules block.
func (n *Node) runnerConfig(rc *config.Rules) rules.Config {
	intervals := make(map[string]time.Duration, len(rc.Intervals))
	for name, v := range rc.Intervals {
		intervals[name] = config.Duration(v)
	}
	shadow := map[string]bool{}
	for name, m := range rc.Mode {
		shadow[name] = m == "shadow"
	}
	return rules.Config{
		Interval:     config.Duration(rc.Interval),
		Intervals:    intervals,
		BatchSize:    rc.BatchSize,
		MaxBatchSize: rc.MaxBatchSize,
		Concurrency:  rc.Concurrency,
		SampleEvery:  rc.Sample,
		Shadow:       shadow,
		Backfill:     *rc.Backfill,
		SyncInterval: config.Duration(rc.ReloadInterval),
		NodeID:       n.cfg.NodeID,
	}
}
