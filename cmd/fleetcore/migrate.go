package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

func init() {
	commands["migrate"] = command{"create the database if needed and apply schema migrations", migrateCmd}
	commands["validate"] = command{"check a config file and print the reasons it is invalid", validateCmd}
}

func migrateCmd(args []string) int {
	fs := newFlagSet("migrate", "migrate [-config FILE]")
	cfgPath := fs.String("config", "configs/fleetcore.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return errorf("%v", err)
	}
	st, err := node.OpenStore(context.Background(), cfg, newLogger(cfg).Named("store"))
	if err != nil {
		return errorf("migrating: %v", redact(cfg, err))
	}
	st.Close()
	fmt.Println("database is up to date")
	return 0
}

func validateCmd(args []string) int {
	fs := newFlagSet("validate", "validate -config FILE")
	cfgPath := fs.String("config", "configs/fleetcore.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	return validateFile(*cfgPath, os.Stdout, os.Stderr)
}

// validateFile runs on path exactly the checks serve runs before it opens
// a port (node.Check) and prints every problem on its own line to stderr
// (file:line: listener "x": …); it returns the exit code.
func validateFile(path string, stdout, stderr io.Writer) int {
	cfg, err := config.LoadUnvalidated(path)
	if err == nil {
		err = node.Check(cfg, plugins.Decoders)
	}
	if err != nil {
		var ce *config.Error
		if cfg == nil || !errors.As(err, &ce) {
			fmt.Fprintf(stderr, "fleetcore: %v\n", err)
			return 1
		}
		for _, p := range ce.Problems {
			fmt.Fprintln(stderr, config.RedactText(p, cfg.Database.URL, cfg.AMQP.URL))
		}
		fmt.Fprintf(stderr, "fleetcore: %s: %d problem(s)\n", path, len(ce.Problems))
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid\n", path)
	return 0
}
