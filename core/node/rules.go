package node

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

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
	})
	if err != nil {
		return err
	}
	reload := config.Duration(rc.ReloadInterval)
	dir := wasmrule.NewDir(host, rc.Dir, reload)
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
	runner := organizer.NewRuleRunner(st.Pool(), dir, organizer.RuleConfig{
		Interval:     config.Duration(rc.Interval),
		Intervals:    intervals,
		BatchSize:    rc.BatchSize,
		MaxBatchSize: rc.MaxBatchSize,
		Concurrency:  rc.Concurrency,
		SampleEvery:  rc.Sample,
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
	runner.Register(n.Organizer)
	n.Rules, n.RuleRunner = dir, runner
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
		n.Organizer.Wait() // rule jobs have returned
		<-watched          // rules closed
		st.Close()
		if err := host.Close(context.Background()); err != nil {
			log.Warn("closing rule host", "error", err)
		}
	}()
	log.Info("quality rules in service", "dir", rc.Dir, "rules", len(dir.Rules()),
		"concurrency", rc.Concurrency, "interval", rc.Interval)
	return nil
}
