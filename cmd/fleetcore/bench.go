package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetcore/fleetcore/benchmarks/suite"
)

func init() {
	commands["bench"] = command{"run a benchmark scenario against an in-process server", benchCmd}
}

func benchCmd(args []string) int {
	fs := newFlagSet("bench", "bench -scenario NAME [-duration D] [-devices N] [-json FILE] [flags]\n       fleetcore bench -summary|-render FILE.json…")
	scenario := fs.String("scenario", "steady", "scenario: "+strings.Join(suite.Scenarios, ", "))
	duration := fs.Duration("duration", 0, "load duration (0: the scenario's default)")
	devices := fs.Int("devices", 0, "simulated devices sending data (0: the scenario's default)")
	rate := fs.Float64("rate", -1, "records per second per device (0: closed loop; -1: the scenario's default)")
	perFrame := fs.Int("per-frame", 0, "records per frame (0: each protocol's default)")
	mix := fs.String("protocol", "", `protocol mix, e.g. "teltonika=6,gt06=2,jsonl=1,osmand=1" (default: the scenario's)`)
	bad := fs.Float64("bad", -1, "share of bad data, 0..1 (-1: the scenario's default)")
	idle := fs.Int("idle", 20000, "idle connections (many-connections)")
	jsonOut := fs.String("json", "", "write the result here (and a .md report and .svg chart next to it); default bench-SCENARIO.json")
	pg := fs.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "Postgres server (a fresh database is created on it)")
	amqpURL := fs.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ for the failover tier (outage)")
	keep := fs.Bool("keep", false, "keep the benchmark database")
	base := fs.String("config", "", "start from this config file instead of the built-in defaults (database, listeners, API, spool and queue names are still the benchmark's)")
	refRows := fs.Int("ref-rows", 100000, "rows per ceiling trial")
	noRefs := fs.Bool("no-refs", false, "skip the ceiling and naive references")
	rules := fs.String("rules", "", "run the WASM quality rules during the load: on or off (default: on only in the rules scenario)")
	wasmDecoder := fs.String("wasm-decoder", "", "the teltonika_go.wasm of the wasm scenario (default: protocols/wasm/build/examples/teltonika_go.wasm, from `make decoders`)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load phase to this file")
	logFile := fs.String("log", "", "write the server's log here (default: next to the JSON, .log)")
	inProcessIdle := fs.Bool("idle-in-process", false, "hold the idle connections in this process instead of a child")
	faults := fs.String("faults", "", "quality: the labelled fleet's faults, kind=share,… (default all=1,isolated=6; see `fleetcore simulate -faults`)")
	records := fs.Int("records", 0, "quality: records per device (default 280)")
	seed := fs.Uint64("seed", 0, "quality: the fleet's seed (default 1)")
	labels := fs.String("labels", "", "quality: write the fleet's labels here (JSONL)")
	summary := fs.Bool("summary", false, "print a Markdown table of the result files given as arguments and exit")
	render := fs.Bool("render", false, "rewrite the .md report and .svg chart of the result files given as arguments and exit")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *render {
		for _, p := range fs.Args() {
			r, err := suite.ReadResult(p)
			if err != nil {
				return errorf("%v", err)
			}
			if _, _, err := suite.WriteFiles(r, p); err != nil {
				return errorf("%v", err)
			}
		}
		return 0
	}
	if *summary {
		var rs []*suite.Result
		for _, p := range fs.Args() {
			r, err := suite.ReadResult(p)
			if err != nil {
				return errorf("%v", err)
			}
			rs = append(rs, r)
		}
		if err := suite.WriteSummary(os.Stdout, rs); err != nil {
			return errorf("%v", err)
		}
		return 0
	}
	if *jsonOut == "" {
		*jsonOut = "bench-" + *scenario + ".json"
	}
	if *logFile == "" {
		*logFile = strings.TrimSuffix(*jsonOut, filepath.Ext(*jsonOut)) + ".log"
	}
	lf, err := os.Create(*logFile)
	if err != nil {
		return errorf("creating the log file: %v", err)
	}
	defer lf.Close()
	o := suite.Options{
		Scenario: *scenario, Duration: *duration, Devices: *devices, Rate: *rate, PerFrame: *perFrame, Mix: *mix,
		BadShare: *bad, IdleConns: *idle, RefRows: *refRows, SkipRefs: *noRefs, PostgresURL: *pg, AMQPURL: *amqpURL,
		Keep: *keep, BaseConfig: *base, Rules: *rules, Progress: os.Stderr, ServerLog: lf,
		WasmDecoder: *wasmDecoder, Faults: *faults, Records: *records, Seed: *seed, LabelsOut: *labels,
	}
	if *cpuProfile != "" {
		o.Profile = func() func() {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintf(os.Stderr, "fleetcore: cpu profile: %v\n", err)
				return func() {}
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintf(os.Stderr, "fleetcore: cpu profile: %v\n", err)
				f.Close()
				return func() {}
			}
			return func() { pprof.StopCPUProfile(); f.Close() }
		}
	}
	if !*inProcessIdle {
		o.SpawnIdle = spawnIdle
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := suite.Run(ctx, o)
	if res != nil {
		md, _, werr := suite.WriteFiles(res, *jsonOut)
		if werr != nil {
			return errorf("%v", werr)
		}
		fmt.Fprintf(os.Stderr, "%s: throughput %.0f/s (ceiling %.0f, naive %.0f), ack p50/p99/max %.1f/%.1f/%.1f ms, acked %d, stored %d, lost %d, duplicates %d\nwrote %s and %s\n",
			res.Scenario, res.ThroughputPerS, res.CeilingPerS, res.NaivePerS, res.AckLatencyMS.P50, res.AckLatencyMS.P99, res.AckLatencyMS.Max,
			res.SignalsAcked, res.SignalsStored, res.Lost, res.Duplicates, *jsonOut, md)
		if c := res.CPU; c != nil {
			fmt.Fprintf(os.Stderr, "%s: CPU during the load %.2f of %d cores busy (fleetcore and generator %.2f, Postgres %.2f, other %.2f); per signal: fleetcore and generator %.1f µs, Postgres %.1f µs\n",
				res.Scenario, c.Busy, c.Cores, c.BenchProcess, c.Postgres, c.Other, c.BenchUSPerSignal, c.PostgresUSPerSignal)
		}
	}
	if err != nil {
		return errorf("bench %s: %v", *scenario, err)
	}
	return 0
}

// spawnIdle runs `fleetcore simulate -idle` as a child process holding n
// idle Teltonika connections to target, so that their client-side memory
// is not counted in the server's RSS.
func spawnIdle(ctx context.Context, target string, n int) (func() error, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the fleetcore binary: %w", err)
	}
	cmd := exec.Command(exe, "simulate", "-idle", "-protocol", "teltonika", "-target", target,
		"-devices", strconv.Itoa(n), "-duration", "24h", "-ramp", "5s", "-quiet")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting fleetcore simulate: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() error {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck // exits on its own below
		select {
		case <-done:
			return nil
		case <-time.After(20 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			return fmt.Errorf("fleetcore simulate did not stop in 20s; killed")
		}
	}, nil
}
