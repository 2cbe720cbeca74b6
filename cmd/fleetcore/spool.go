package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/core/recovery"
	"github.com/fleetcore/fleetcore/core/spool"
)

func init() {
	commands["spool"] = command{"replay a spool folder into Postgres (spool replay [-config FILE] DIR)", spoolCmd}
}

// spoolCmd is `fleetcore spool replay DIR`: it drains a node's spool
// folder (a disk moved from a dead machine, a copy of one) into the
// database of the config, as the node's own replay job would, and exits
// when the folder holds no segment. No node may be using DIR meanwhile.
func spoolCmd(args []string) int {
	if len(args) == 0 || args[0] != "replay" {
		usageErrorf("spool: usage: fleetcore spool replay [-config FILE] DIR")
		return 2
	}
	fs := newFlagSet("spool replay", "spool replay [-config FILE] DIR")
	cfgPath := fs.String("config", "configs/fleetcore.hcl", "config file (its database block is used)")
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 {
		usageErrorf("spool replay: need exactly one spool folder")
		return 2
	}
	dir := fs.Arg(0)
	if _, err := os.Stat(dir); err != nil {
		return errorf("spool replay: %v", err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return errorf("%v", err)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := node.OpenStore(ctx, cfg, log.Named("store"))
	if err != nil {
		return errorf("spool replay: %v", redact(cfg, err))
	}
	defer st.Close()
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: cfg.Spool.MaxBytes, SegmentBytes: cfg.Spool.SegmentBytes})
	if err != nil {
		return errorf("spool replay: %v", err)
	}
	defer sp.Close()
	r := recovery.New(st, nil, sp, cfg.Ingest.BatchMaxSignals, config.Duration(cfg.Database.WriteTimeout), log.Named("replay"))
	before := sp.Stats()
	for left := sp.Stats().Segments; left > 0; {
		if err := r.ReplaySpool(ctx); err != nil {
			return errorf("spool replay: %v", redact(cfg, err))
		}
		if ctx.Err() != nil {
			return errorf("spool replay: interrupted")
		}
		now := sp.Stats().Segments
		if now >= left {
			return errorf("spool replay: %d segments left in %s and replay makes no progress (see the log)", now, dir)
		}
		left = now
	}
	rs := r.Stats()
	fmt.Printf("replayed %d signals from %d segments of %s (%d new rows, %d already stored)\n",
		rs.SpoolSignals, before.Segments, dir, rs.Inserted, rs.Duplicates)
	return 0
}
