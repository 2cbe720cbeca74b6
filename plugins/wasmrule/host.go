package wasmrule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/internal/wasmmeter"
)

// Defaults of Config.
const (
	DefaultBatchSize        = 1024
	DefaultMemoryLimitPages = 1024 // 64 MiB
	DefaultBudget           = time.Second
	DefaultMaxFailures      = 5
	// InitBudget bounds instantiation (data segments, _initialize, fc_abi)
	// when it is longer than Config.Budget.
	InitBudget = 10 * time.Second
)

// Config tunes a Host. The zero value is usable: every field has a default.
type Config struct {
	// CacheDir keeps compiled machine code across restarts ("" = in memory).
	CacheDir string
	// MemoryLimitPages caps each instance's memory in 64 KiB pages.
	MemoryLimitPages uint32
	// Budget is the time one fc_check call (one batch) may take.
	Budget time.Duration
	// BatchSize is the most signals per fc_check call; Check splits larger
	// batches.
	BatchSize int
	// PoolSize is the most instances per rule, i.e. concurrent batches
	// (default GOMAXPROCS).
	PoolSize int
	// MaxFailures consecutive failed batches disable a rule.
	MaxFailures int
	// Logger receives load, refusal and disable events.
	Logger hclog.Logger
	// OnAlert is called (synchronously, keep it short) when a rule is
	// disabled.
	OnAlert func(Alert)
	// Now is the host's clock for inputs without one (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if c.Budget <= 0 {
		c.Budget = DefaultBudget
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PoolSize <= 0 {
		c.PoolSize = runtime.GOMAXPROCS(0)
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Alert reports a rule that was disabled after repeated failures.
type Alert struct {
	Rule     string
	Version  string
	Time     time.Time
	Failures int    // consecutive failed batches
	Kind     Kind   // kind of the last failure
	Message  string // human-readable, includes the last error
}

// Host compiles and runs rule modules. It is safe for concurrent use.
type Host struct {
	cfg   Config
	cache wazero.CompilationCache
	log   hclog.Logger
}

// NewHost returns a host with the configuration (defaults filled in).
func NewHost(cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	h := &Host{cfg: cfg, log: cfg.Logger}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("opening compilation cache %s: %w", cfg.CacheDir, err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	return h, nil
}

// Config returns the host's configuration with defaults filled in.
func (h *Host) Config() Config { return h.cfg }

// Close releases the compilation cache. Close rules first.
func (h *Host) Close(ctx context.Context) error {
	if err := h.cache.Close(ctx); err != nil {
		return fmt.Errorf("closing compilation cache: %w", err)
	}
	return nil
}

// wasiModule is the only import module a rule may use.
const wasiModule = "wasi_snapshot_preview1"

var exportSigs = map[string]struct{ params, results []api.ValueType }{
	"fc_abi":   {nil, []api.ValueType{api.ValueTypeI32}},
	"fc_meta":  {nil, []api.ValueType{api.ValueTypeI64}},
	"fc_alloc": {[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	"fc_check": {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// validateModule checks imports and exports against ABI v1.
func validateModule(c wazero.CompiledModule) error {
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasiModule {
			return fmt.Errorf("imports %s.%s: only %s is provided", mod, name, wasiModule)
		}
	}
	if len(c.ImportedMemories()) > 0 {
		return errors.New("imports its memory: a rule must export \"memory\" instead")
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return errors.New("does not export \"memory\"")
	}
	exp := c.ExportedFunctions()
	for _, name := range []string{"fc_abi", "fc_meta", "fc_alloc", "fc_check"} {
		def, ok := exp[name]
		if !ok {
			return fmt.Errorf("does not export %s", name)
		}
		want := exportSigs[name]
		if !sameTypes(def.ParamTypes(), want.params) || !sameTypes(def.ResultTypes(), want.results) {
			return fmt.Errorf("export %s has signature %v -> %v, want %v -> %v", name,
				typeNames(def.ParamTypes()), typeNames(def.ResultTypes()),
				typeNames(want.params), typeNames(want.results))
		}
	}
	if def, ok := exp["_initialize"]; ok && (len(def.ParamTypes()) > 0 || len(def.ResultTypes()) > 0) {
		return errors.New("export _initialize must take and return nothing")
	}
	return nil
}

// Compile compiles, validates and instantiates a rule module once, reads
// and validates its metadata, and returns the rule ready for Check. It does
// not run the self-tests (see Rule.SelfTest). The error is an *Error of
// KindInvalid when the module breaks the ABI.
func (h *Host) Compile(ctx context.Context, wasm []byte) (*Rule, error) {
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(h.cfg.MemoryLimitPages)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	r := &Rule{host: h, rt: rt, size: len(wasm), hash: sha256.Sum256(wasm)}
	fail := func(k Kind, err error) (*Rule, error) {
		_ = rt.Close(ctx)
		if k == KindInvalid {
			return nil, &Error{Kind: k, Err: err}
		}
		return nil, err
	}
	start := time.Now()
	// The budget is enforced by metering, not by wazero's
	// WithCloseOnContextDone (see internal/wasmmeter); the rule keeps its
	// wall-clock budget (the meter's watchdog); the units bound a call the
	// watchdog cannot stop (see unitsPerNs), before the host sets a limit
	// too: instantiation has InitBudget.
	metered, err := wasmmeter.Instrument(wasm, callUnits(InitBudget))
	if err != nil {
		return fail(KindInvalid, fmt.Errorf("compiling module: %w", err))
	}
	compiled, err := rt.CompileModule(ctx, metered)
	if err != nil {
		return fail(KindInvalid, fmt.Errorf("compiling module: %w", err))
	}
	r.compileTime = time.Since(start)
	r.compiled = compiled
	if err := validateModule(compiled); err != nil {
		return fail(KindInvalid, err)
	}
	if err := instantiateWASI(ctx, rt); err != nil {
		return fail(KindInvalid, err)
	}
	r.idle = make(chan *instance, h.cfg.PoolSize)
	r.slots = make(chan struct{}, h.cfg.PoolSize)
	r.slots <- struct{}{}
	inst, err := r.newInstance(ctx)
	if err != nil {
		<-r.slots
		var e *Error
		if errors.As(err, &e) && e.Kind != KindCanceled {
			e.Kind = KindInvalid
			return fail(0, e)
		}
		return fail(0, err)
	}
	meta, err := inst.readMeta()
	if err != nil {
		inst.close(ctx)
		<-r.slots
		return fail(KindInvalid, err)
	}
	r.meta = meta
	r.release(inst)
	r.stats.kinds = make(map[Kind]uint64)
	return r, nil
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}
