package main

import (
	"context"
	"flag"
	iofs "io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/checks-wasm/builtinrules"
	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

func init() {
	commands["serve"] = command{"run the server (migrates the database first; SIGHUP reloads the config)", serveCmd}
}

func serveCmd(args []string) int {
	fs := newFlagSet("serve", "serve [-config FILE]")
	cfgPath := fs.String("config", "configs/fleetcore.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "config" })
	load := func() (*config.Config, bool, error) { return loadServeConfig(*cfgPath, given) }
	cfg, embedded, err := load()
	if err != nil {
		return errorf("%v", err)
	}
	log := newLogger(cfg)
	if embedded {
		log.Info("no config file: running on the default config built into the binary (fleetcore config default prints it)",
			"as", *cfgPath)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var builtin iofs.FS
	if len(builtinrules.Names()) > 0 {
		builtin = builtinrules.FS()
	}
	n := node.New(cfg, plugins.Decoders, log, node.WithBuildVersion(version), node.WithBuiltinRules(builtin))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHUP(ctx, n, cfg, *cfgPath, load, hup, log)
	go func() { // Type=notify: ready once every stage is running
		select {
		case <-n.Ready():
			if err := sdNotify("READY=1"); err != nil {
				log.Warn("service manager not told the server is ready", "error", err)
			}
		case <-ctx.Done():
		}
	}()
	err = n.Run(ctx)
	if nerr := sdNotify("STOPPING=1"); nerr != nil {
		log.Debug("service manager not told the server stops", "error", nerr)
	}
	if err != nil {
		log.Error("fleetcore stopped", "error", redact(cfg, err))
		return 1
	}
	return 0
}

// reloadOnHUP re-reads the config file on each SIGHUP (once the node is
// running) and hands it to the node; a file that does not load or validate
// is logged and changes nothing.
func reloadOnHUP(ctx context.Context, n *node.Node, running *config.Config, path string, load func() (*config.Config, bool, error), hup <-chan os.Signal, log hclog.Logger) {
	select {
	case <-n.Ready():
	case <-ctx.Done():
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if err := sdNotify("RELOADING=1"); err != nil {
			log.Debug("service manager not told of the reload", "error", err)
		}
		log.Info("SIGHUP: reloading the config", "file", path)
		next, _, err := load()
		if err == nil {
			_, _, err = n.Reload(next)
		}
		if err != nil {
			if next != nil {
				err = redact(next, err)
			}
			log.Error("config reload refused: the running config stays", "error", redact(running, err))
		}
		// Certificates are re-read on every SIGHUP, even when the config
		// did not change (renewed files under the same names); a source
		// that does not load keeps its certificate and is logged.
		_ = n.ReloadTLS()
		if err := sdNotify("READY=1"); err != nil {
			log.Debug("service manager not told the reload ended", "error", err)
		}
	}
}
