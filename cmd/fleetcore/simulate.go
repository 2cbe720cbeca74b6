package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
	"github.com/fleetcore/fleetcore/core/config"
)

func init() {
	commands["simulate"] = command{"simulate a fleet of devices against a running server", simulateCmd}
}

func simulateCmd(args []string) int {
	fs := newFlagSet("simulate", "simulate -target HOST:PORT|PROTO=HOST:PORT,… -protocol MIX [-devices N] [-rate R] [-duration D] [flags]")
	target := fs.String("target", "127.0.0.1:5027", "server address: host:port for a single protocol, or protocol=host:port,… for a mix")
	mix := fs.String("protocol", "teltonika", `protocol or weighted mix, e.g. "teltonika=6,gt06=2,jsonl=1,osmand=1" (have `+strings.Join(loadgen.CodecNames(), ", ")+")")
	devices := fs.Int("devices", 100, "simulated devices (each its own IMEI and connection)")
	rate := fs.Float64("rate", 1, "records per second per device (0: next frame as soon as the last is acked)")
	perFrame := fs.Int("per-frame", 0, "records per frame (0: teltonika 10, jsonl 5, others 1)")
	duration := fs.Duration("duration", 30*time.Second, "how long to send")
	bad := fs.Float64("bad", 0, "share of bad data 0..1: zero fixes, future timestamps, duplicate frames, corrupted frames")
	idle := fs.Bool("idle", false, "connect and log in, then stay silent (connection-count tests)")
	ramp := fs.Duration("ramp", 2*time.Second, "spread the first connections over this long")
	ackTimeout := fs.Duration("ack-timeout", 30*time.Second, "resend a frame not acked within this")
	imeiBase := fs.Int64("imei-base", 0, "first device IMEI (0: random)")
	seed := fs.Uint64("seed", 0, "random seed (0: random)")
	jsonOut := fs.String("json", "", "write a JSON summary here")
	verifyDB := fs.String("verify-db", "", "after the run, compare every acked record with this database's signals table")
	quiet := fs.Bool("quiet", false, "no progress line")
	faults := fs.String("faults", "", `labelled-fault fleet: "kind=share,…" (share < 1 a fraction of the devices, else a count; "all=1" one device per kind; "isolated=N" N clean devices with one isolated faulty record); kinds: `+strings.Join(loadgen.FaultKinds, ", "))
	labels := fs.String("labels", "", "with -faults: write one JSON label per record here (JSONL)")
	records := fs.Int("records", 280, "with -faults: records per device")
	interval := fs.Duration("interval", 5*time.Second, "with -faults: device time between records")
	pace := fs.Float64("pace", 0, "with -faults: 0 sends the fleet's history as fast as acks allow, 1 in real time (its device time starting now)")
	startAt := fs.String("start", "", "with -faults: device time of the first record, RFC 3339 (default: -pace 0 ends the history now, -pace > 0 starts now)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *faults != "" {
		return simulateFaults(faultRun{
			faults: *faults, labels: *labels, target: *target, mix: *mix, devices: *devices, records: *records,
			interval: *interval, pace: *pace, start: *startAt, perFrame: *perFrame, imeiBase: *imeiBase, seed: *seed,
			ackTimeout: *ackTimeout, jsonOut: *jsonOut, quiet: *quiet,
		})
	}
	shares, err := loadgen.ParseMix(*mix)
	if err != nil {
		return errorf("%v", err)
	}
	targets, err := parseTargets(*target, shares)
	if err != nil {
		return errorf("%v", err)
	}
	if lim, err := loadgen.RaiseFileLimit(uint64(*devices) + 1024); err != nil {
		fmt.Fprintf(os.Stderr, "fleetcore: %v; at most about %d connections\n", err, lim)
	}
	gen, err := loadgen.New(loadgen.Config{
		Targets: targets, Mix: shares, Devices: *devices, Rate: *rate, PerFrame: *perFrame, BadShare: *bad,
		AckTimeout: *ackTimeout, RampUp: *ramp, Idle: *idle, IMEIBase: *imeiBase, Seed: *seed,
	})
	if err != nil {
		return errorf("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() { gen.Run(lctx); close(done) }()
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tk.C:
			if *quiet {
				continue
			}
			s := gen.Sample()
			c := gen.Counters()
			fmt.Fprintf(os.Stderr, "\r%5.0fs  conns %6d  acked %9d  %8d rec/s  p50 %6.1f ms  p99 %6.1f ms  resent %d  refused %d ",
				time.Since(start).Seconds(), c.Connected, c.Acked, s.Acked, loadgen.Millis(s.Latency.Quantile(0.5)),
				loadgen.Millis(s.Latency.Quantile(0.99)), c.Resends, c.Refused)
		}
	}
	if !*quiet {
		fmt.Fprintln(os.Stderr)
	}
	el := time.Since(start)
	c := gen.Counters()
	lat := gen.TotalLatency()
	summary := map[string]any{
		"seconds": el.Seconds(), "generator": c, "records_per_s": float64(c.Acked) / el.Seconds(),
		"ack_latency_ms": map[string]float64{
			"p50": loadgen.Millis(lat.Quantile(0.5)), "p99": loadgen.Millis(lat.Quantile(0.99)), "max": loadgen.Millis(lat.Max()),
		},
	}
	if *verifyDB != "" {
		vctx, vcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer vcancel()
		conn, err := pgx.Connect(vctx, *verifyDB)
		if err != nil {
			return errorf("connecting to verify: %v", config.RedactError(err, *verifyDB))
		}
		v, err := loadgen.Verify(vctx, conn, gen.Ledger())
		conn.Close(context.Background())
		if err != nil {
			return errorf("%v", err)
		}
		summary["verify"] = v
		fmt.Fprintf(os.Stderr, "verify: acked %d, stored %d, lost %d, duplicates %d, stored but ack not seen %d\n",
			v.Acked, v.Stored, v.Lost, v.Duplicates, v.Unacked)
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "%d records acked in %.1fs (%.0f/s), ack p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			c.Acked, el.Seconds(), float64(c.Acked)/el.Seconds(), loadgen.Millis(lat.Quantile(0.5)),
			loadgen.Millis(lat.Quantile(0.99)), loadgen.Millis(lat.Max()))
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(summary, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return errorf("writing %s: %v", *jsonOut, err)
		}
	}
	if v, ok := summary["verify"].(loadgen.Verdict); ok && (v.Lost > 0 || v.Duplicates > 0) {
		return 1
	}
	return 0
}

type faultRun struct {
	faults, labels, target, mix, start, jsonOut string
	devices, records, perFrame                  int
	interval, ackTimeout                        time.Duration
	pace                                        float64
	imeiBase                                    int64
	seed                                        uint64
	quiet                                       bool
}

// simulateFaults builds a labelled-fault fleet, writes its labels and
// sends it.
func simulateFaults(o faultRun) int {
	if o.mix != "teltonika" {
		return errorf("-faults: the labelled fleet speaks teltonika only (its OBD readings need codec 8 IO elements), not -protocol %s", o.mix)
	}
	if o.seed == 0 {
		o.seed = 1
	}
	specs, err := loadgen.ParseFaults(o.faults, o.devices)
	if err != nil {
		return errorf("%v", err)
	}
	var start, end time.Time
	switch now := time.Now().UTC().Truncate(time.Second); {
	case o.start != "":
		if start, err = time.Parse(time.RFC3339, o.start); err != nil {
			return errorf("-start: %v", err)
		}
	case o.pace == 0:
		end = now // a history that ends now
	default:
		start = now
	}
	fleet, err := loadgen.NewFleet(loadgen.FleetConfig{
		Devices: o.devices, Records: o.records, Interval: o.interval, Start: start, End: end, Faults: specs,
		IMEIBase: o.imeiBase, Seed: o.seed,
	})
	if err != nil {
		return errorf("%v", err)
	}
	if o.labels != "" {
		f, err := os.Create(o.labels)
		if err != nil {
			return errorf("creating the labels: %v", err)
		}
		err = fleet.WriteLabels(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return errorf("%v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t0 := time.Now()
	st, err := fleet.Send(ctx, loadgen.SendOptions{
		Target: o.target, PerFrame: o.perFrame, Pace: o.pace, AckTimeout: o.ackTimeout,
	})
	summary := map[string]any{
		"seconds": time.Since(t0).Seconds(), "devices": o.devices, "records": fleet.Records(), "sent": st,
		"faulty_devices": fleet.FaultyDevices(), "faulty_records_per_kind": fleet.KindCounts(), "seed": o.seed,
	}
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "%d of %d records acked in %.1fs (%d frames resent); %d faulty devices, faulty records per kind %v\n",
			st.Records, fleet.Records(), time.Since(t0).Seconds(), st.Resends, len(fleet.FaultyDevices()), fleet.KindCounts())
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(summary, "", "  ")
		if werr := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); werr != nil {
			return errorf("writing %s: %v", o.jsonOut, werr)
		}
	}
	if err != nil {
		return errorf("sending the fleet: %v", err)
	}
	return 0
}

// parseTargets accepts "host:port" (every protocol of the mix there) or
// "proto=host:port,…".
func parseTargets(s string, shares []loadgen.Share) (map[string]string, error) {
	out := map[string]string{}
	if !strings.Contains(s, "=") {
		for _, sh := range shares {
			out[sh.Protocol] = s
		}
		if len(shares) > 1 {
			return nil, fmt.Errorf("-target %s: a mix of protocols needs one address per protocol (proto=host:port,…)", s)
		}
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		p, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || addr == "" {
			return nil, fmt.Errorf("-target: %q is not proto=host:port", part)
		}
		out[p] = addr
	}
	for _, sh := range shares {
		if out[sh.Protocol] == "" {
			return nil, fmt.Errorf("-target: no address for protocol %s", sh.Protocol)
		}
	}
	return out, nil
}
