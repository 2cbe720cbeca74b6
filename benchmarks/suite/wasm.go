package suite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// wasmDecoderName is the drop-in decoder the wasm scenario serves: the Go
// SDK port of Teltonika (protocols/wasm/examples/teltonika_go), which
// decodes exactly what the native teltonika decoder does (its equality
// test), so the load generator's Teltonika devices and ledger serve both.
const wasmDecoderName = "teltonika_go"

// wasmDecoderFile finds protocols/wasm/build/examples/teltonika_go.wasm
// (`make decoders`) from the working directory up; "" when absent.
func wasmDecoderFile() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "protocols", "wasm", "build", "examples", wasmDecoderName+".wasm")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// wasm runs steady Teltonika ingest twice on one node, first through the
// native teltonika decoder and then through the WASM port loaded from a
// decoder folder (decoders { dir }), with the same fleet, and reports both
// throughputs and their ratio (issue 13: end-to-end throughput with the
// WASM Teltonika decoder against the native one, in the same run).
func (r *runner) wasm(ctx context.Context) error {
	if len(r.mix) != 1 || r.mix[0].Protocol != "teltonika" {
		return fmt.Errorf("the wasm scenario compares Teltonika decoders: its mix is teltonika, not %q", r.o.Mix)
	}
	file := r.o.WasmDecoder
	if file == "" {
		if file = wasmDecoderFile(); file == "" {
			return errors.New("no " + wasmDecoderName + ".wasm: run `make decoders` (or pass its path)")
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the WASM decoder: %w", err)
	}
	dir := filepath.Join(r.tmp, "decoders")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making the decoder folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, wasmDecoderName+".wasm"), b, 0o644); err != nil {
		return fmt.Errorf("writing the decoder folder: %w", err)
	}
	// One listener per decoder: the native one and the folder's.
	cfg, err := r.serverConfig(r.db, false, []string{"teltonika", wasmDecoderName})
	if err != nil {
		return err
	}
	cfg.Decoders.Dir = dir
	// Compiled code outlives the run (compiling is not what is measured).
	cfg.Decoders.CacheDir = filepath.Join(os.TempDir(), "fleetcore-bench-wasm-cache", "decoders")
	if err := r.startNode(ctx, cfg); err != nil {
		return err
	}
	defer r.stopNode() //nolint:errcheck // stopped explicitly below
	listeners := r.targets
	half := r.o.Duration / 2
	hs := half.Seconds()
	type phase struct {
		name, listener string
		perS           float64
		acked, stored  int64
		p50, p99       float64
		series         []Point
	}
	phases := []*phase{{name: "native", listener: "teltonika"}, {name: "wasm", listener: wasmDecoderName}}
	var total Result
	for i, ph := range phases {
		// The generator's Teltonika devices dial this phase's listener.
		r.targets = map[string]string{"teltonika": listeners[ph.listener]}
		r.res.Series = nil
		gen, err := r.newGenerator(r.o.Devices, r.o.Rate, false)
		if err != nil {
			return err
		}
		r.drive(ctx, gen, half, nil)
		if _, err := r.settle(ctx, gen, 30*time.Second); err != nil {
			return err
		}
		ph.perS = r.throughput(min(warmup, hs/3), hs)
		ph.acked, ph.stored = r.res.SignalsAcked, r.res.SignalsStored
		ph.p50, ph.p99 = r.res.AckLatencyMS.P50, r.res.AckLatencyMS.P99
		ph.series = r.res.Series
		total.SignalsAcked += r.res.SignalsAcked
		total.SignalsStored += r.res.SignalsStored
		total.Lost += r.res.Lost
		total.Duplicates += r.res.Duplicates
		total.StoredNotAcked += r.res.StoredNotAcked
		total.LostSample = append(total.LostSample, r.res.LostSample...)
		if i < len(phases)-1 {
			// The next phase's devices send the same IMEIs and times.
			if err := truncate(ctx, r.db); err != nil {
				return err
			}
		}
	}
	nat, wsm := phases[0], phases[1]
	r.res.Series = nil
	for i, ph := range phases {
		for _, p := range ph.series {
			p.T += float64(i) * hs
			r.res.Series = append(r.res.Series, p)
		}
	}
	r.res.Events = append(r.res.Events, Event{T: hs, Label: "WASM decoder (" + wasmDecoderName + ") from here"})
	// Lost and duplicates cover both phases; throughput and latency are
	// the WASM phase's.
	r.res.SignalsAcked, r.res.SignalsStored = total.SignalsAcked, total.SignalsStored
	r.res.Lost, r.res.Duplicates, r.res.StoredNotAcked = total.Lost, total.Duplicates, total.StoredNotAcked
	r.res.LostSample = total.LostSample
	r.res.DurationS = r.o.Duration.Seconds()
	r.res.ThroughputPerS = wsm.perS
	x := r.res.Extras
	x["wasm_decoder"] = wasmDecoderName
	x["wasm_decoder_file"] = file
	x["native_per_s"], x["wasm_per_s"] = nat.perS, wsm.perS
	x["native_acked"], x["wasm_acked"] = nat.acked, wsm.acked
	x["native_stored"], x["wasm_stored"] = nat.stored, wsm.stored
	x["native_ack_p50_ms"], x["native_ack_p99_ms"] = nat.p50, nat.p99
	x["wasm_ack_p50_ms"], x["wasm_ack_p99_ms"] = wsm.p50, wsm.p99
	if nat.perS > 0 {
		x["wasm_to_native"] = wsm.perS / nat.perS
	}
	if st, ok := r.wasmStats(); ok {
		x["wasm_decoder_stats"] = st
	}
	r.res.RSSNote = "peak VmRSS of the bench process: fleetcore node (both decoders) and load generator together"
	return r.stopNode()
}

// wasmStats is the decoder folder's status of the WASM decoder (version,
// sessions, guest failures).
func (r *runner) wasmStats() (any, bool) {
	if r.node == nil || r.node.Decoders() == nil {
		return nil, false
	}
	var out []wasmdecoder.Status
	for _, st := range r.node.Decoders().Status() {
		if st.Name == wasmDecoderName {
			out = append(out, st)
		}
	}
	return out, len(out) > 0
}
