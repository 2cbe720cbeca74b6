// Command fleetcore is the one fleetcore binary: serve, migrate, validate,
// decode, rules, simulate, bench, version.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	_ "github.com/fleetcore/fleetcore/protocols/all"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand; run returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

// commands is filled by each command's file in init.
var commands = map[string]command{}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "fleetcore: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	return c.run(args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "fleetcore: an IoT core for vehicle fleets.")
	fmt.Fprintln(w, "\nUsage: fleetcore COMMAND [flags]   (fleetcore COMMAND -h for a command's flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

func init() {
	commands["version"] = command{"print the version", func(args []string) int {
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		if err := fs.Parse(args); err != nil {
			return flagExit(err)
		}
		fmt.Println("fleetcore", version)
		return 0
	}}
}

// flagExit maps a flag parse error to an exit code (-h is success).
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// newFlagSet makes a flag set with a usage line.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	return newFlagSetNote(name, synopsis, "")
}

// newFlagSetNote makes a flag set whose usage is the usage line, the
// flags (when it has any) and note (such as the exit codes).
func newFlagSetNote(name, synopsis, note string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fleetcore %s\n", synopsis)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
		if note != "" {
			fmt.Fprintf(fs.Output(), "\n%s\n", note)
		}
	}
	return fs
}

// usageErrorf prints a usage error and points to -h.
func usageErrorf(format string, a ...any) {
	msg := strings.TrimSuffix(fmt.Sprintf(format, a...), "\n")
	cmd, _, _ := strings.Cut(msg, ":")
	fmt.Fprintf(os.Stderr, "fleetcore: %s\nRun 'fleetcore %s -h' for its flags.\n", msg, cmd)
}

// loadConfig loads the config file, or the built-in defaults for "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// newLogger builds the process logger from config.
func newLogger(cfg *config.Config) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "fleetcore",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogFormat == "json",
		Output:     os.Stderr,
	})
}

// redact masks the configured database and AMQP passwords in err's text
// (the stores already do; this guards what cmd prints).
func redact(cfg *config.Config, err error) error {
	return config.RedactError(err, append([]string{cfg.Database.URL}, cfg.AMQP.Endpoints()...)...)
}

func errorf(format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprint(os.Stderr, "fleetcore: "+msg)
	return 1
}
