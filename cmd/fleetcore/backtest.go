package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

const rulesBacktestExitCodes = `Exit status: 0 when the rule was evaluated over the range (whatever its
verdicts); 1 when the rule did not load or fail its self-test, the database
is unreachable or a batch could not be evaluated; 2 on a usage error.`

// rulesBacktest is `fleetcore rules backtest RULE -from … -to …`.
func rulesBacktest(ctx context.Context, args []string) int {
	fs := newFlagSetNote("rules backtest", "rules backtest RULE -from TIME -to TIME [-config FILE]", rulesBacktestExitCodes)
	cfgPath := fs.String("config", "", "config file (database.url, rules.dir, integrity settings)")
	fromFlag := fs.String("from", "", "start of the device-time range, RFC 3339 (inclusive)")
	toFlag := fs.String("to", "", "end of the device-time range, RFC 3339 (exclusive; default now)")
	cacheDir := fs.String("cache-dir", defaultRuleCache(), "compilation cache directory ('' = none)")
	path, rest := splitPositional(args)
	if err := fs.Parse(rest); err != nil {
		return flagExit(err)
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" || *fromFlag == "" {
		fs.Usage()
		return 2
	}
	from, err := time.Parse(time.RFC3339Nano, *fromFlag)
	if err != nil {
		return errorf("parsing -from: %v", err)
	}
	to := time.Now()
	if *toFlag != "" {
		if to, err = time.Parse(time.RFC3339Nano, *toFlag); err != nil {
			return errorf("parsing -to: %v", err)
		}
	}
	if !to.After(from) {
		return errorf("rules backtest: -to must be after -from")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return errorf("%v", err)
	}
	log := newLogger(cfg)
	host, err := wasmrule.NewHost(wasmrule.Config{CacheDir: *cacheDir})
	if err != nil {
		return errorf("rules backtest: %v", err)
	}
	defer host.Close(context.WithoutCancel(ctx))
	rule, err := loadBacktestRule(ctx, host, path, cfg.Rules.Dir)
	if err != nil {
		return errorf("rules backtest: %v", err)
	}
	defer rule.Close(context.WithoutCancel(ctx))
	if err := rule.SelfTest(ctx, nil); err != nil {
		return errorf("rules backtest: %s: self-test: %v", rule.Name(), err)
	}
	st, err := node.OpenStore(ctx, cfg, log.Named("store"))
	if err != nil {
		return errorf("rules backtest: %v", redact(cfg, err))
	}
	defer st.Close()
	res, err := rules.Backtest(ctx, st.Pool(), rule, from, to)
	if err != nil {
		return errorf("rules backtest: %v", redact(cfg, err))
	}
	scorer := integrity.NewScorer(st.Pool(), integrity.ParamsFrom(cfg.Integrity), log.Named("integrity"))
	impact, err := scorer.WhatIf(ctx, res.Rule, res.Counts)
	if err != nil {
		return errorf("rules backtest: %v", redact(cfg, err))
	}
	printBacktest(os.Stdout, res, impact, from, to)
	return 0
}

// loadBacktestRule compiles RULE: a .wasm file, or the name of a rule in
// the rules folder (its file <name>.wasm, else the file whose metadata
// carries that name).
func loadBacktestRule(ctx context.Context, h *wasmrule.Host, arg, dir string) (*wasmrule.Rule, error) {
	compile := func(p string) (*wasmrule.Rule, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		r, err := h.Compile(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return r, nil
	}
	if strings.HasSuffix(arg, ".wasm") || strings.ContainsRune(arg, os.PathSeparator) {
		return compile(arg)
	}
	if r, err := compile(filepath.Join(dir, arg+".wasm")); err == nil {
		if r.Name() == arg {
			return r, nil
		}
		r.Close(ctx)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
	for _, f := range files {
		r, err := compile(f)
		if err != nil {
			continue
		}
		if r.Name() == arg {
			return r, nil
		}
		r.Close(ctx)
	}
	return nil, fmt.Errorf("no rule named %q in %s (give a .wasm file or a rule name of rules.dir)", arg, dir)
}

func printBacktest(w io.Writer, res rules.BacktestResult, impact []integrity.Impact, from, to time.Time) {
	fmt.Fprintf(w, "rule %s %s over device time %s .. %s: %d signals, %d devices (nothing written)\n",
		res.Rule, res.Version, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), res.Signals, len(res.Devices))
	byDev := map[string]integrity.Impact{}
	for _, im := range impact {
		byDev[im.DeviceID] = im
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "device\tpass\twarn\tfail\tn/a\tscore now\twith rule\tchange\t")
	var pass, warn, fail, na int64
	for _, d := range res.Devices {
		pass, warn, fail, na = pass+d.Pass, warn+d.Warn, fail+d.Fail, na+d.NotApplic
		now, with, change := "-", "-", "-" // not scored yet
		if im, ok := byDev[d.DeviceID]; ok {
			now, with = integrity.FormatCenti(im.BeforeCenti), integrity.FormatCenti(im.AfterCenti)
			change = formatDelta(im.DeltaCenti)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", d.DeviceID, d.Pass, d.Warn, d.Fail, d.NotApplic, now, with, change)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t\t\t\t\n", pass, warn, fail, na)
	tw.Flush()
}

func formatDelta(c int64) string {
	if c < 0 {
		return "-" + integrity.FormatCenti(-c)
	}
	return "+" + integrity.FormatCenti(c)
}
