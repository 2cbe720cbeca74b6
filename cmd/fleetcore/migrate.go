package main

import (
	"context"
	"fmt"

	"github.com/fleetcore/fleetcore/core/node"
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
	if _, err := loadConfig(*cfgPath); err != nil {
		return errorf("%v", err)
	}
	fmt.Printf("%s: valid\n", *cfgPath)
	return 0
}
