package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"

	"github.com/fleetcore/fleetcore/configs"
	"github.com/fleetcore/fleetcore/core/config"
)

func init() {
	commands["config"] = command{"print the default config built into the binary (config default)", configCmd}
}

func configCmd(args []string) int {
	flags := newFlagSetNote("config", "config default",
		"config default prints configs/fleetcore.hcl as built into this binary (the config\n"+
			"`serve` runs on when -config is not given and configs/fleetcore.hcl is not in the\n"+
			"working directory). Its relative paths are relative to the file's folder.")
	if err := flags.Parse(args); err != nil {
		return flagExit(err)
	}
	if flags.NArg() != 1 || flags.Arg(0) != "default" {
		usageErrorf("config: want the subcommand default")
		return 2
	}
	if _, err := os.Stdout.Write(configs.Default); err != nil {
		return errorf("config default: %v", err)
	}
	return 0
}

// loadServeConfig loads the -config file; when the flag was not given and
// the default file is not there, the embedded default config (embedded
// says so), loaded as if it were configs/fleetcore.hcl of the working
// directory.
func loadServeConfig(path string, given bool) (cfg *config.Config, embedded bool, err error) {
	if !given && path == configs.DefaultPath {
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			cfg, err = config.Parse(path, bytes.Clone(configs.Default))
			return cfg, true, err
		}
	}
	cfg, err = loadConfig(path)
	return cfg, false, err
}
