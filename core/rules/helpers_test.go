package rules_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

var (
	// scratch holds the compilation cache when there is no user cache dir.
	scratch string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "fc-rules")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var registerRe = regexp.MustCompile(`sdk\.Register\((rules\.\w+)\)`)

// ruleWasm builds the built-in rule checks-wasm/rules/<name> for wasip1,
// as `make rules` does. A non-empty version builds the same rule with its
// metadata version replaced (through a go build -overlay of its main.go),
// which is how the tests get "a new version" of a rule.
func ruleWasm(t testing.TB, name, version string) []byte {
	t.Helper()
	if version == "" {
		return wasmfixture.Rule(t, name)
	}
	root, err := wasmfixture.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	mainPath := filepath.Join(root, "checks-wasm", "rules", name, "main.go")
	src, err := os.ReadFile(mainPath)
	if err != nil {
		t.Fatal(err)
	}
	if !registerRe.Match(src) {
		t.Fatalf("%s does not register a rule as sdk.Register(rules.X)", mainPath)
	}
	src = registerRe.ReplaceAll(src, []byte(`sdk.Register(func() sdk.Rule { r := $1; r.Meta.Version = "`+version+`"; return r }())`))
	return wasmfixture.Go(t, "checks-wasm/rules/"+name, map[string][]byte{mainPath: src})
}

// trapWasm assembles testdata/trap.wat (wabt's wat2wasm, as the host's own
// tests need).
func trapWasm(t testing.TB) []byte {
	t.Helper()
	return wasmfixture.WATFile(t, "testdata/trap.wat")
}

func newHost(t testing.TB, cfg wasmrule.Config) *wasmrule.Host {
	t.Helper()
	if cfg.CacheDir == "" {
		// Compiling a 2 MB Go guest takes seconds (tens under -race), so
		// the machine code is cached across test runs, keyed by module
		// hash and wazero version like any compilation cache.
		cfg.CacheDir = filepath.Join(scratch, "wasm-cache")
		if d, err := os.UserCacheDir(); err == nil {
			cfg.CacheDir = filepath.Join(d, "fleetcore", "test-wasm-cache")
		}
	}
	h, err := wasmrule.NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

func compileRule(t testing.TB, h *wasmrule.Host, wasm []byte) *wasmrule.Rule {
	t.Helper()
	r, err := h.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// staticRules serves a fixed set of rules.
type staticRules []*wasmrule.Rule

func (s staticRules) Rules() []*wasmrule.Rule {
	var out []*wasmrule.Rule
	for _, r := range s {
		if !r.Disabled() {
			out = append(out, r)
		}
	}
	return out
}

// database creates a migrated test database and returns its URL and a
// store (the ingest side).
func database(t testing.TB) (string, *store.Store) {
	t.Helper()
	url := testenv.Database(t)
	st, err := store.Open(context.Background(), url, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	return url, st
}

// rulesPool is a pool of the rules' own, as the node makes it.
func rulesPool(t testing.TB, url string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

var (
	baseTS   = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	baseRecv = time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
)

// fix is a signal of dev at baseTS + i seconds at (lat, lon).
func fix(dev string, i int, lat, lon float64) signal.Signal {
	s := signal.New(dev, baseTS.Add(time.Duration(i)*time.Second))
	s.Lat, s.Lon = lat, lon
	s.Recv = baseRecv
	s.Protocol = "test"
	s.Path = signal.PathDirect
	return s
}

func write(t testing.TB, st *store.Store, sigs ...signal.Signal) {
	t.Helper()
	res, err := st.WriteSignals(context.Background(), sigs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != len(sigs) {
		t.Fatalf("wrote %d signals, %d inserted", len(sigs), res.Inserted)
	}
}

func queryInt(t testing.TB, p *pgxpool.Pool, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := p.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
