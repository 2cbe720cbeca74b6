package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

func init() {
	commands["rules"] = command{"test, inspect and backtest WASM quality rules (rules test|inspect|backtest)", rulesCmd}
}

const rulesUsage = `Usage: fleetcore rules SUBCOMMAND [flags]

Subcommands:
  test RULE.wasm [-input SIGNALS.jsonl]   evaluate a rule over decoded signals
                                          (the lines 'fleetcore decode' prints)
  inspect RULE.wasm [-wat]                print metadata, exports, size, compile
                                          time and the self-test outcome
  backtest RULE -from T -to T [-config F] evaluate a rule (a .wasm file or the name
                                          of a rule in rules.dir) over stored
                                          history without writing findings: counts
                                          per device and the score change

RULE is a WASM module or a declarative check (NAME.check.hcl), which is
compiled to a rule module first.

Run 'fleetcore rules SUBCOMMAND -h' for a subcommand's flags.
`

// rulesCmd is `fleetcore rules`.
func rulesCmd(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		out := io.Writer(os.Stdout)
		if len(args) == 0 {
			out = os.Stderr
		}
		fmt.Fprint(out, rulesUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "test":
		return rulesTest(ctx, args[1:])
	case "inspect":
		return rulesInspect(ctx, args[1:])
	case "backtest":
		return rulesBacktest(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "fleetcore rules: unknown subcommand %q\n\n%s", args[0], rulesUsage)
	return 2
}

// splitPositional lets the rule file come before or after the flags.
func splitPositional(args []string) (string, []string) {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "", args
}

func rulesTest(ctx context.Context, args []string) int {
	fs := newFlagSetNote("rules test", "rules test RULE.wasm [-input SIGNALS.jsonl] [-now RFC3339] [-batch N]", rulesTestExitCodes)
	input := fs.String("input", "-", "decoded signals, one JSON object per line ('-' = stdin)")
	nowFlag := fs.String("now", "", "host clock for every line, RFC 3339 (default: the current time)")
	batch := fs.Int("batch", wasmrule.DefaultBatchSize, "signals per fc_check call")
	cacheDir := fs.String("cache-dir", defaultRuleCache(), "compilation cache directory ('' = none)")
	quiet := fs.Bool("q", false, "do not print the summary line on stderr")
	path, rest := splitPositional(args)
	if err := fs.Parse(rest); err != nil {
		return flagExit(err)
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" {
		fs.Usage()
		return 2
	}
	opts := wasmrule.TestOptions{BatchSize: *batch, CacheDir: *cacheDir}
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339Nano, *nowFlag)
		if err != nil {
			return errorf("parsing -now: %v", err)
		}
		opts.Now = t
	}
	if !*quiet {
		opts.Summary = os.Stderr
	}
	in := io.Reader(os.Stdin)
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return errorf("opening input: %v", err)
		}
		defer f.Close()
		in = f
	}
	sum, err := wasmrule.Test(ctx, path, in, os.Stdout, opts)
	switch {
	case err != nil:
		return errorf("rules test: %v", err)
	case sum.Lines() == 0:
		return errorf("rules test: no signal in the input")
	case sum[wasmrule.StatusSkipped] > 0:
		return errorf("rules test: %d of %d input lines skipped (not a decoded signal)", sum[wasmrule.StatusSkipped], sum.Lines())
	}
	return 0
}

// rulesTestExitCodes is the exit code rule of `fleetcore rules test`, for
// -h and the README. A fail or warn verdict is the rule's answer, not a
// failure of the run.
const rulesTestExitCodes = `Exit status: 0 when the rule judged every input line (whatever its
verdicts); 1 when any line was skipped (a rejected frame or not a signal),
not evaluated, the input held no signal, the rule did not load or its
self-test failed; 2 on a usage error.`

func rulesInspect(ctx context.Context, args []string) int {
	fs := newFlagSet("rules inspect", "rules inspect RULE.wasm [-wat]")
	wat := fs.Bool("wat", false, "for a check file: also print the generated module as WebAssembly text")
	path, rest := splitPositional(args)
	if err := fs.Parse(rest); err != nil {
		return flagExit(err)
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" {
		fs.Usage()
		return 2
	}
	if err := wasmrule.InspectWith(ctx, path, os.Stdout, wasmrule.InspectOptions{WAT: *wat}); err != nil {
		return errorf("rules inspect: %v", err)
	}
	return 0
}

// defaultRuleCache is the per-user compilation cache of the rules tools.
func defaultRuleCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "fleetcore", "wasm")
}
