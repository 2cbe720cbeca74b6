package wasmdecoder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/fleetcore/fleetcore/internal/wasmmeter"
	"github.com/fleetcore/fleetcore/plugins"
)

// Defaults of Config and Caps.
const (
	DefaultMemoryLimitPages = 512 // 32 MiB per instance
	DefaultBudget           = 50 * time.Millisecond
	DefaultMaxFailures      = 5
	// InitBudget bounds instantiation (data segments, _initialize, fc_abi,
	// fc_meta): a Go guest's runtime start takes far longer than a frame.
	InitBudget = 10 * time.Second

	DefaultMaxRecords  = 1024
	DefaultMaxAttrs    = 1024 // signal.MaxAttrs: a real Teltonika record carries 65
	DefaultMaxDTCs     = 32
	DefaultMaxOBD      = 64
	DefaultMaxOutput   = 1 << 20
	DefaultMaxState    = 4 << 10
	DefaultMaxReply    = 64 << 10
	DefaultMaxDeviceID = 128
)

// Caps bound what one fc_decode output may hold; going over one is an ABI
// violation that costs the frame. A zero field takes its default.
type Caps struct {
	Records  int // records per frame
	Attrs    int // attrs per record
	DTCs     int // DTCs per record
	OBD      int // OBD items per record
	Output   int // output bytes
	State    int // the most a module's state_max may declare
	Reply    int // ack and reject bytes
	DeviceID int // device id bytes
}

func (c Caps) withDefaults() Caps {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Records, DefaultMaxRecords)
	def(&c.Attrs, DefaultMaxAttrs)
	def(&c.DTCs, DefaultMaxDTCs)
	def(&c.OBD, DefaultMaxOBD)
	def(&c.Output, DefaultMaxOutput)
	def(&c.State, DefaultMaxState)
	def(&c.Reply, DefaultMaxReply)
	def(&c.DeviceID, DefaultMaxDeviceID)
	c.Attrs = min(c.Attrs, 0xffff)
	c.DTCs = min(c.DTCs, 0xffff)
	c.OBD = min(c.OBD, 0xffff)
	return c
}

// Config tunes a Host. The zero value is usable: every field has a default.
type Config struct {
	// CacheDir keeps compiled machine code across restarts ("" = in memory).
	CacheDir string
	// MemoryLimitPages caps each instance's memory in 64 KiB pages.
	MemoryLimitPages uint32
	// Budget bounds one fc_frame or fc_decode call: wasmmeter.Units(Budget) metering
	// units (one per guest function call or loop iteration, one per
	// nanosecond of Budget), and wasmmeter.WallFactor × Budget of wall-clock time as
	// a backstop (protocols/wasm/ABI.md §8).
	Budget time.Duration
	// PoolSize is the most instances per module, i.e. concurrent calls
	// (default GOMAXPROCS); more callers wait for an instance.
	PoolSize int
	// MaxFailures consecutive guest failures disable a module.
	MaxFailures int
	// Caps bound the outputs.
	Caps Caps
	// Logger receives load, refusal and disable events.
	Logger hclog.Logger
	// Reserved reports the names a module may not take; default: the
	// decoders registered in plugins.Decoders (the built-in ones).
	Reserved func(name string) bool
}

func (c Config) withDefaults() Config {
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if c.Budget <= 0 {
		c.Budget = DefaultBudget
	}
	if c.PoolSize <= 0 {
		c.PoolSize = runtime.GOMAXPROCS(0)
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	c.Caps = c.Caps.withDefaults()
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Reserved == nil {
		c.Reserved = func(name string) bool { _, ok := plugins.Decoders.Lookup(name); return ok }
	}
	return c
}

// Host compiles and runs decoder modules. It is safe for concurrent use.
type Host struct {
	cfg   Config
	cache wazero.CompilationCache
	log   hclog.Logger

	mu    sync.Mutex
	times map[string]*plugins.ServerTimes
}

// NewHost returns a host with the configuration (defaults filled in).
func NewHost(cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	h := &Host{cfg: cfg, log: cfg.Logger, times: map[string]*plugins.ServerTimes{}}
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

// Close releases the compilation cache. Close modules first.
func (h *Host) Close(ctx context.Context) error {
	if err := h.cache.Close(ctx); err != nil {
		return fmt.Errorf("closing compilation cache: %w", err)
	}
	return nil
}

// serverTimes returns the ServerTimes of a decoder name, shared by all its
// versions so a resend after a hot swap keeps its timestamp.
func (h *Host) serverTimes(name string) *plugins.ServerTimes {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.times[name]
	if t == nil {
		t = plugins.NewServerTimes(0, 0)
		h.times[name] = t
	}
	return t
}

// wasiModule is the only import module a decoder may use.
const wasiModule = "wasi_snapshot_preview1"

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type sig struct{ params, results []api.ValueType }

var exportSigs = map[string]sig{
	"fc_abi":    {nil, []api.ValueType{i32}},
	"fc_meta":   {nil, []api.ValueType{i64}},
	"fc_alloc":  {[]api.ValueType{i32}, []api.ValueType{i32}},
	"fc_frame":  {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	"fc_decode": {[]api.ValueType{i32, i32}, []api.ValueType{i64}},
	"fc_error":  {nil, []api.ValueType{i64}},
}

var requiredExports = []string{"fc_abi", "fc_meta", "fc_alloc", "fc_frame", "fc_decode"}

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

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}

// validateModule checks imports and exports against the decoder ABI.
func validateModule(c wazero.CompiledModule) error {
	exp := c.ExportedFunctions()
	if _, rule := exp["fc_check"]; rule {
		if _, dec := exp["fc_decode"]; !dec {
			return errors.New("exports fc_check and not fc_decode: this is a quality rule (checks-wasm/ABI.md), not a decoder; put it in the rules folder")
		}
	}
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasiModule {
			return fmt.Errorf("imports %s.%s: only %s is provided", mod, name, wasiModule)
		}
	}
	if len(c.ImportedMemories()) > 0 {
		return errors.New("imports its memory: a decoder must export \"memory\" instead")
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return errors.New("does not export \"memory\"")
	}
	for _, name := range requiredExports {
		if _, ok := exp[name]; !ok {
			return fmt.Errorf("does not export %s", name)
		}
	}
	for name, want := range exportSigs {
		def, ok := exp[name]
		if !ok {
			continue
		}
		if !sameTypes(def.ParamTypes(), want.params) || !sameTypes(def.ResultTypes(), want.results) {
			return fmt.Errorf("export %s has signature (%v) -> (%v), want (%v) -> (%v)", name,
				typeNames(def.ParamTypes()), typeNames(def.ResultTypes()),
				typeNames(want.params), typeNames(want.results))
		}
	}
	if def, ok := exp["_initialize"]; ok && (len(def.ParamTypes()) > 0 || len(def.ResultTypes()) > 0) {
		return errors.New("export _initialize must take and return nothing")
	}
	return nil
}

// Load compiles wasm, validates it against the decoder ABI (imports,
// exports and their signatures, fc_abi, the metadata and its options),
// instantiates it once and runs the metadata's self-tests through the real
// session path. source names the module in errors (its file). Every
// refusal is an *Error of KindInvalid naming source, what is wrong and
// where (the export, the meta key, the test and frame).
func (h *Host) Load(ctx context.Context, source string, wasm []byte) (*Module, error) {
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(h.cfg.MemoryLimitPages)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	sum := sha256.Sum256(wasm)
	m := &Module{host: h, rt: rt, source: source, size: len(wasm), hash: hex.EncodeToString(sum[:])}
	fail := func(err error) (*Module, error) {
		_ = rt.Close(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("loading %s: %w", source, ctx.Err())
		}
		var e *Error
		if errors.As(err, &e) {
			e.Kind, e.Source = KindInvalid, source
			return nil, e
		}
		return nil, &Error{Source: source, Decoder: m.meta.Name, Kind: KindInvalid, Err: err}
	}
	start := time.Now()
	// The budget is enforced by metering, not by wazero's
	// WithCloseOnContextDone (see internal/wasmmeter): the compiled code,
	// and the compilation cache's key, is that of the instrumented bytes.
	metered, err := wasmmeter.Instrument(wasm, wasmmeter.Units(InitBudget))
	if err != nil {
		return fail(fmt.Errorf("compiling: %w", err))
	}
	compiled, err := rt.CompileModule(ctx, metered)
	if err != nil {
		return fail(fmt.Errorf("compiling: %w", err))
	}
	m.compileTime = time.Since(start)
	m.compiled = compiled
	if err := validateModule(compiled); err != nil {
		return fail(err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(fmt.Errorf("instantiating WASI: %w", err))
	}
	m.idle = make(chan *instance, h.cfg.PoolSize)
	m.slots = make(chan struct{}, h.cfg.PoolSize)
	m.slots <- struct{}{}
	inst, err := m.newInstance(ctx)
	if err != nil {
		<-m.slots
		return fail(err)
	}
	m.pages = inst.mem.Size() / 65536
	meta, opts, err := inst.readMeta(ctx, h.cfg.Caps, h.cfg.Reserved)
	if err != nil {
		m.discard(inst)
		return fail(err)
	}
	m.meta, m.options = meta, opts
	m.version = meta.Version + "+sha256:" + m.hash[:12]
	m.times = h.serverTimes(meta.Name)
	m.info = m.buildInfo()
	m.release(inst)
	m.stats.kinds = map[Kind]uint64{}
	if err := m.SelfTest(ctx); err != nil {
		return fail(err)
	}
	h.log.Info("decoder loaded", "source", source, "decoder", meta.Name, "version", m.version,
		"compile", m.compileTime, "tests", len(meta.Tests))
	return m, nil
}
