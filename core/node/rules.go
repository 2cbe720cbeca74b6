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

// startRules puts the quality rules in service: a WASM host, the rule
// folder with hot reload (Node.Rules) and the rule jobs of the organizer
// (Node.RuleRunner), which evaluate through a database pool of their own
// (rules.concurrency + 1 connections), so rule evaluation never takes a
// connection that ingest needs. Everything stops when ctx ends, after the
// organizer's jobs have returned.
func (n *Node) startRules(ctx context.Context) error {
	rc := n.cfg.Rules
	log := n.log.Named("rules")
	if !*rc.Enabled {
		log.Info("quality rules disabled by configuration")
		return nil
	}
	// A missing rule folder is watched for, not created, and then the
	// compilation cache stays in memory: a node without rules leaves no
	// folders behind.
	cacheDir := rc.CacheDir
	if _, err := os.Stat(rc.Dir); err != nil {
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
	// Checks of the config go live first, so a file with the same rule
	// name is the one refused.
	for _, c := range rc.Checks {
		source := fmt.Sprintf("%s: check %s", n.cfg.File, c.Name)
		m, err := c.Compile()
		if err == nil {
			err = dir.AddModule(ctx, source, m.Wasm)
		}
		if err != nil {
			log.Error("check of the config refused", "check", c.Name, "error", err)
		}
	}
	scan := func() bool {
		if _, err := os.Stat(rc.Dir); err != nil {
			return false
		}
		if err := dir.Scan(ctx); err != nil && ctx.Err() == nil {
			log.Error("scanning rule folder", "dir", rc.Dir, "error", err)
		}
		return true
	}
	scan()
	st, err := store.Open(ctx, n.cfg.Database.URL, store.Options{
		MaxConns:       int32(rc.Concurrency + 1),
		ConnectTimeout: config.Duration(n.cfg.Database.ConnectTimeout),
	})
	if err != nil {
		_ = dir.Close(ctx)
		_ = host.Close(ctx)
		return fmt.Errorf("opening the rules' database pool: %w", err)
	}
	intervals := make(map[string]time.Duration, len(rc.Intervals))
	for name, v := range rc.Intervals {
		intervals[name] = config.Duration(v)
	}
	shadow := map[string]bool{}
	for name, m := range rc.Mode {
		shadow[name] = m == "shadow"
	}
	runner := rules.New(st.Pool(), dir, rules.Config{
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
	}, log)
	if !n.migrated.Load() {
		// Started without Postgres: migrateThenPing checks the schema once
		// it has migrated; until then the rule jobs fail and retry.
		log.Warn("rules wait for Postgres")
	} else if err := runner.CheckSchema(ctx); err != nil {
		st.Close()
		_ = dir.Close(ctx)
		_ = host.Close(ctx)
		return err
	}
	runner.Register(n.org)
	n.rules, n.ruleRunner = dir, runner
	n.org.Add(organizer.Job{Name: JobRuleAlerts, Interval: reload, Run: n.clearRuleAlerts})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(reload)
		defer t.Stop()
		present := true
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
	go func() {
		<-ctx.Done()
		n.org.Wait() // rule jobs have returned
		<-watched    // rules closed
		st.Close()
		if err := host.Close(context.Background()); err != nil {
			log.Warn("closing rule host", "error", err)
		}
	}()
	log.Info("quality rules in service", "dir", rc.Dir, "rules", len(dir.Rules()),
		"concurrency", rc.Concurrency, "interval", rc.Interval)
	return nil
}
