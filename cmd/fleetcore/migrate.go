package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/plugins"
)

func init() {
	commands["migrate"] = command{"create the database if needed and apply schema migrations", migrateCmd}
	commands["validate"] = command{"check a config file and print the reasons it is invalid", validateCmd}
}

func migrateCmd(args []string) int {
	if len(args) > 0 && args[0] == "status" {
		return migrateStatusCmd(args[1:], os.Stdout)
	}
	fs := newFlagSet("migrate", "migrate [-config FILE] | migrate status [-config FILE]")
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
			fmt.Fprintln(stderr, config.RedactText(p, append([]string{cfg.Database.URL}, cfg.AMQP.Endpoints()...)...))
		}
		fmt.Fprintf(stderr, "fleetcore: %s: %d problem(s)\n", path, len(ce.Problems))
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid\n", path)
	return 0
}

// migrateStatusCmd lists every migration as applied (with its time) or
// pending, and any applied migration this binary does not know; it
// changes nothing. Exit 0 when the schema is current, 1 when migrations
// are pending or the database is newer than this binary (or unreachable).
func migrateStatusCmd(args []string, stdout io.Writer) int {
	fs := newFlagSet("migrate status", "migrate status [-config FILE]")
	cfgPath := fs.String("config", "configs/fleetcore.hcl", "config file")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return errorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*config.Duration(cfg.Database.ConnectTimeout)+10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.Database.URL)
	if err != nil {
		return errorf("migrate status: %v", redact(cfg, err))
	}
	defer conn.Close(context.Background())
	states, err := store.MigrationStatus(ctx, conn)
	if err != nil {
		return errorf("migrate status: %v", redact(cfg, err))
	}
	pending, unknown := 0, 0
	for _, m := range states {
		switch {
		case m.Unknown:
			unknown++
			fmt.Fprintf(stdout, "%04d %-28s applied %s  UNKNOWN to this binary\n", m.Version, m.Name, m.Applied.UTC().Format(time.RFC3339))
		case m.Applied.IsZero():
			pending++
			fmt.Fprintf(stdout, "%04d %-28s pending\n", m.Version, m.Name)
		default:
			fmt.Fprintf(stdout, "%04d %-28s applied %s\n", m.Version, m.Name, m.Applied.UTC().Format(time.RFC3339))
		}
	}
	switch {
	case unknown > 0:
		fmt.Fprintf(stdout, "the database schema is newer than this binary (%d unknown migration(s)): serve refuses to start on it\n", unknown)
		return 1
	case pending > 0:
		fmt.Fprintf(stdout, "%d pending migration(s): fleetcore migrate (or serve) applies them\n", pending)
		return 1
	}
	fmt.Fprintln(stdout, "up to date")
	return 0
}
