package suite

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	_ "github.com/fleetcore/fleetcore/protocols/all"
)

// TestIntegrationBenchSteady runs a short steady scenario end to end
// against the local Postgres: references, an in-process node, devices of
// every protocol over real sockets with bad data, and the ledger check.
func TestIntegrationBenchSteady(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL not available: %v", err)
	}
	c.Close(ctx)
	res, err := Run(ctx, Options{
		Scenario: "steady", Duration: 3 * time.Second, Devices: 40, Rate: -1, BadShare: 0.05,
		RefRows: 20000, NaiveFor: time.Second, PostgresURL: testenv.PostgresURL(),
		Rules: "off", // ingest only; compiling the rules under -race takes minutes
	})
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	if res.SignalsAcked == 0 {
		t.Fatalf("no signal acked: %+v", res.Generator)
	}
	if res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("lost %d, duplicates %d (sample %v)", res.Lost, res.Duplicates, res.LostSample)
	}
	if res.SignalsStored < res.SignalsAcked {
		t.Errorf("stored %d < acked %d", res.SignalsStored, res.SignalsAcked)
	}
	if res.CeilingPerS <= 0 || res.NaivePerS <= 0 || res.ThroughputPerS <= 0 {
		t.Errorf("ceiling %v, naive %v, throughput %v: every rate must be measured", res.CeilingPerS, res.NaivePerS, res.ThroughputPerS)
	}
	if res.Generator.Corrupted > 0 && res.Generator.CorruptAcked != 0 {
		t.Errorf("%d corrupted frames were acked", res.Generator.CorruptAcked)
	}
	if len(res.Series) < 2 {
		t.Errorf("series has %d points, want one per second", len(res.Series))
	}
	// The database is dropped.
	c, err = pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", res.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("benchmark database left behind")
	}
	dir := t.TempDir()
	md, svg, err := WriteFiles(res, filepath.Join(dir, "steady.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	b, _ := os.ReadFile(filepath.Join(dir, "steady.json"))
	if err := json.Unmarshal(b, &back); err != nil || back.SignalsAcked != res.SignalsAcked {
		t.Errorf("JSON round trip: %v, acked %d", err, back.SignalsAcked)
	}
	for _, p := range []string{md, svg} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestIntegrationBenchWasm runs a short wasm scenario: the same Teltonika
// fleet through the native decoder, then through the Go SDK port loaded
// from a decoder folder, on one node; both throughputs must be measured
// and every acked record stored once.
func TestIntegrationBenchWasm(t *testing.T) {
	testenv.Integration(t)
	wasm := filepath.Join(t.TempDir(), "teltonika_go.wasm")
	if err := os.WriteFile(wasm, wasmfixture.Go(t, "protocols/wasm/examples/teltonika_go", nil), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{
		Scenario: "wasm", Duration: 6 * time.Second, Devices: 20, Rate: -1, BadShare: 0.05,
		SkipRefs: true, PostgresURL: testenv.PostgresURL(), Rules: "off", WasmDecoder: wasm,
	})
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	if res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("lost %d, duplicates %d (sample %v)", res.Lost, res.Duplicates, res.LostSample)
	}
	for _, k := range []string{"native_per_s", "wasm_per_s", "wasm_to_native"} {
		if v, _ := res.Extras[k].(float64); v <= 0 {
			t.Errorf("%s = %v: both phases must carry load", k, res.Extras[k])
		}
	}
	for _, k := range []string{"native_acked", "wasm_acked"} {
		if v, _ := res.Extras[k].(int64); v == 0 {
			t.Errorf("%s = 0", k)
		}
	}
	if res.Generator.Corrupted > 0 && res.Generator.CorruptAcked != 0 {
		t.Errorf("%d corrupted frames were acked", res.Generator.CorruptAcked)
	}
	t.Logf("native %.0f/s, wasm %.0f/s: x%.2f", res.Extras["native_per_s"], res.Extras["wasm_per_s"], res.Extras["wasm_to_native"])
	st, ok := res.Extras["wasm_decoder_stats"].([]wasmdecoder.Status)
	if !ok || len(st) == 0 || st[0].Version == "" {
		t.Errorf("decoder status %v: the WASM decoder was not in service", res.Extras["wasm_decoder_stats"])
	}
}
