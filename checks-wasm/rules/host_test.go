package rules_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// The tests build every built-in rule for wasip1 (as `make rules` does,
// through internal/wasmfixture) and run it through the real host.
var (
	host      *wasmrule.Host
	compiled  = map[string]*wasmrule.Rule{}
	compileMu sync.Mutex
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The host tests build and compile every rule (minutes on two
		// cores); -short runs only the native tests.
		os.Exit(m.Run())
	}
	prebuild()
	// A persistent compilation cache keeps repeated test runs fast.
	var err error
	host, err = wasmrule.NewHost(wasmrule.Config{CacheDir: filepath.Join(os.TempDir(), "fleetcore-wazero-test-cache")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	for _, r := range compiled {
		r.Close(context.Background())
	}
	host.Close(context.Background())
	os.Exit(code)
}

// prebuild builds every rule, two at a time, before the tests ask for
// them one by one; a failed build is reported by the test that loads it.
func prebuild() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, r := range rules.All() {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, _ = wasmfixture.GoBuild("checks-wasm/rules/"+name, nil) // an error is reported by load
		}(r.Meta.Name)
	}
	wg.Wait()
}

// load compiles a built-in rule once per test binary.
func load(t testing.TB, name string) *wasmrule.Rule {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and compiles the rule for the WASM host: skipped under -short")
	}
	compileMu.Lock()
	defer compileMu.Unlock()
	if r := compiled[name]; r != nil {
		return r
	}
	b := wasmfixture.Rule(t, name)
	r, err := host.Compile(context.Background(), b)
	if err != nil {
		t.Fatalf("compiling %s: %v", name, err)
	}
	compiled[name] = r
	return r
}

// TestBuiltinMetaAndSelfTests: every rule has a main package, loads through
// the host with the metadata it declares, and passes its own self-tests
// both in WebAssembly and natively.
func TestBuiltinMetaAndSelfTests(t *testing.T) {
	for _, br := range rules.All() {
		t.Run(br.Meta.Name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(br.Meta.Name, "main.go")); err != nil {
				t.Fatalf("no main package: %v", err)
			}
			if len(br.Meta.Tests) < 4 {
				t.Errorf("only %d self-tests", len(br.Meta.Tests))
			}
			r := load(t, br.Meta.Name)
			m := r.Meta()
			if m.Name != br.Meta.Name || m.Version != br.Meta.Version || m.Dimension != br.Meta.Dimension ||
				m.Severity != br.Meta.Severity || len(m.Reasons) != len(br.Meta.Reasons) || len(m.Tests) != len(br.Meta.Tests) {
				t.Fatalf("host read %+v", m)
			}
			if err := r.SelfTest(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			for _, tc := range m.Tests {
				got := br.Check(toSDK(tc.Input()))
				if got.Status.String() != tc.Want || (got.Status != sdk.StatusPass && got.Status != sdk.StatusNotApplicable && got.Reason != tc.Reason) {
					t.Errorf("native %q: got %v %d, want %s %d", tc.Name, got.Status, got.Reason, tc.Want, tc.Reason)
				}
			}
		})
	}
}

// toSDK converts a host input to the SDK signal a native call sees, filling
// only the fields and attributes the rule would receive... all of them.
func toSDK(in wasmrule.Input) sdk.Signal {
	s := sdk.Absent()
	s.NowMs = signal.UnixMilli(in.Now)
	s.TS, s.Recv = signal.UnixMilli(in.Signal.TS), signal.UnixMilli(in.Signal.Recv)
	s.Lat, s.Lon, s.Alt, s.Speed, s.Heading = in.Signal.Lat, in.Signal.Lon, in.Signal.Alt, in.Signal.Speed, in.Signal.Heading
	s.Sats, s.HDOP, s.RPM, s.Coolant, s.Fuel = in.Signal.Sats, in.Signal.HDOP, in.Signal.RPM, in.Signal.Coolant, in.Signal.Fuel
	s.Voltage, s.Odometer, s.EngineLoad, s.Throttle = in.Signal.Voltage, in.Signal.Odometer, in.Signal.EngineLoad, in.Signal.Throttle
	if in.Prev != nil {
		s.PrevTS, s.PrevLat, s.PrevLon, s.PrevOdometer = signal.UnixMilli(in.Prev.TS), in.Prev.Lat, in.Prev.Lon, in.Prev.Odometer
	}
	if v, ok := in.Signal.Attrs["ignition"]; ok {
		s.SetAttr(0, wasmrule.AttrValue(v))
	}
	return s
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sig builds a signal at now+sec with numeric fields set by name.
func sig(sec float64, kv ...any) signal.Signal {
	s := signal.New("dev", now.Add(time.Duration(sec*float64(time.Second))))
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		if name == "ignition" {
			s.SetAttr("ignition", kv[i+1])
			continue
		}
		if name == "ts" {
			s.TS = kv[i+1].(time.Time)
			continue
		}
		f, ok := signal.FieldByName(name)
		if !ok {
			panic("unknown field " + name)
		}
		s.SetNumber(f, kv[i+1].(float64))
	}
	return s
}

type ruleCase struct {
	name string
	sig  signal.Signal
	prev *signal.Signal
	want wasmrule.Verdict
}

var (
	pass = wasmrule.Verdict{}
	na   = wasmrule.Verdict{Status: wasmrule.StatusNotApplicable}
)

func fail(r uint16) wasmrule.Verdict   { return wasmrule.Verdict{Status: wasmrule.StatusFail, Reason: r} }
func warn(r uint16) wasmrule.Verdict   { return wasmrule.Verdict{Status: wasmrule.StatusWarn, Reason: r} }
func p(s signal.Signal) *signal.Signal { return &s }
