package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

func init() {
	commands["serve"] = command{"run the server (migrates the database first)", serveCmd}
}

func serveCmd(args []string) int {
	fs := newFlagSet("serve", "serve [-config FILE]")
	cfgPath := fs.String("config", "configs/fleetcore.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return errorf("%v", err)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.New(cfg, plugins.Decoders, log, node.WithBuildVersion(version)).Run(ctx); err != nil {
		log.Error("fleetcore stopped", "error", redact(cfg, err))
		return 1
	}
	return 0
}
