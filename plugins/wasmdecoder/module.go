package wasmdecoder

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/internal/wasmmeter"
	"github.com/fleetcore/fleetcore/plugins"
)

// Module is one loaded decoder version with its pool of instances. It is a
// plugins.Decoder: safe for concurrent use, one Session per connection.
// Sessions hold no instance: each Frame and Decode call takes one from the
// pool for the duration of the call.
type Module struct {
	host        *Host
	rt          wazero.Runtime
	compiled    wazero.CompiledModule
	source      string
	size        int
	hash        string
	version     string
	pages       uint32
	compileTime time.Duration
	meta        Meta
	options     []plugins.Option
	info        plugins.Info
	times       *plugins.ServerTimes

	idle  chan *instance // instances ready for a call
	slots chan struct{}  // one token per live instance (idle or busy)

	optMu    sync.Mutex
	optBytes map[string][]byte // interned options JSON

	mu       sync.Mutex // guards closed and inflight.Add
	closed   bool
	inflight sync.WaitGroup

	smu       sync.Mutex // guards stats and onFailure
	stats     moduleStats
	onFailure func(Failure)
}

var _ plugins.Decoder = (*Module)(nil)

type moduleStats struct {
	frames, decodes, failed uint64
	consecutive             int
	kinds                   map[Kind]uint64
	lastErr                 string
	lastErrAt               time.Time
	disabled                bool
}

// Stats is a snapshot of a module's counters.
type Stats struct {
	Frames      uint64            `json:"frames"`      // fc_frame calls that returned
	Decodes     uint64            `json:"decodes"`     // fc_decode calls that returned a valid output
	Failures    uint64            `json:"failures"`    // calls that failed through the guest's fault
	Consecutive int               `json:"consecutive"` // current run of failed calls
	Errors      map[string]uint64 `json:"errors"`      // failures by kind
	LastError   string            `json:"last_error,omitempty"`
	LastErrorAt time.Time         `json:"last_error_at,omitzero"`
	Disabled    bool              `json:"disabled"`
}

// Failure is one guest failure, reported to the OnFailure callback.
type Failure struct {
	Decoder, Version string
	Kind             Kind
	Err              error
	Consecutive      int
	// Disabled is set on the failure that disabled the module (once).
	Disabled bool
}

// Info implements plugins.Decoder.
func (m *Module) Info() plugins.Info { return m.info }

func (m *Module) buildInfo() plugins.Info {
	info := plugins.Info{Name: m.meta.Name, DefaultPort: m.meta.DefaultPort,
		Description: m.meta.Description, Options: m.options}
	for _, t := range m.meta.Transports {
		info.Transports = append(info.Transports, plugins.Transport(t))
	}
	if info.Description == "" {
		info.Description = m.meta.Name + " (WebAssembly decoder " + m.version + ")"
	}
	return info
}

// Name returns the decoder name.
func (m *Module) Name() string { return m.meta.Name }

// Version returns meta.version+"+sha256:"+the first 12 hex digits of the
// module bytes' SHA-256: what every signal it decodes records.
func (m *Module) Version() string { return m.version }

// Meta returns the parsed metadata.
func (m *Module) Meta() Meta { return m.meta }

// StateVersion returns meta.state_version.
func (m *Module) StateVersion() int { return m.meta.StateVersion }

// Source returns the name given to Load (the file).
func (m *Module) Source() string { return m.source }

// Hash returns the hex SHA-256 of the module bytes.
func (m *Module) Hash() string { return m.hash }

// Size returns the module size in bytes.
func (m *Module) Size() int { return m.size }

// CompileTime returns how long compilation took (short when cached).
func (m *Module) CompileTime() time.Duration { return m.compileTime }

// MemoryPages returns the pages of linear memory of an instance once
// initialised (what each pooled instance costs, at least).
func (m *Module) MemoryPages() uint32 { return m.pages }

// Exports lists the module's exports with their signatures, sorted.
func (m *Module) Exports() []string {
	var out []string
	for name, def := range m.compiled.ExportedFunctions() {
		out = append(out, fmt.Sprintf("%s(%s) -> (%s)", name,
			strings.Join(typeNames(def.ParamTypes()), ", "),
			strings.Join(typeNames(def.ResultTypes()), ", ")))
	}
	for name := range m.compiled.ExportedMemories() {
		out = append(out, name+" (memory)")
	}
	sort.Strings(out)
	return out
}

// Imports lists the module's imported functions.
func (m *Module) Imports() []string {
	var out []string
	for _, f := range m.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		out = append(out, mod+"."+name)
	}
	return out
}

// Stats returns a snapshot of the module's counters.
func (m *Module) Stats() Stats {
	m.smu.Lock()
	defer m.smu.Unlock()
	s := Stats{Frames: m.stats.frames, Decodes: m.stats.decodes, Failures: m.stats.failed,
		Consecutive: m.stats.consecutive, LastError: m.stats.lastErr, LastErrorAt: m.stats.lastErrAt,
		Disabled: m.stats.disabled, Errors: make(map[string]uint64, len(m.stats.kinds))}
	for k, n := range m.stats.kinds {
		s.Errors[k.String()] = n
	}
	return s
}

// Disabled reports whether the module disabled itself after MaxFailures
// consecutive guest failures.
func (m *Module) Disabled() bool {
	m.smu.Lock()
	defer m.smu.Unlock()
	return m.stats.disabled
}

// OnFailure sets the callback run after every guest failure of this module
// (trap, timeout, memory, ABI violation; never for a frame the guest
// refuses with an error code). It runs synchronously on the failing call:
// keep it short. nil removes it.
func (m *Module) OnFailure(fn func(Failure)) {
	m.smu.Lock()
	m.onFailure = fn
	m.smu.Unlock()
}

// Close waits for in-flight calls and releases the module's instances.
// Calls after Close fail with KindClosed.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.inflight.Wait()
	if err := m.rt.Close(ctx); err != nil {
		return fmt.Errorf("closing decoder %s %s: %w", m.meta.Name, m.version, err)
	}
	return nil
}

func (m *Module) errorf(k Kind, format string, args ...any) *Error {
	return &Error{Decoder: m.meta.Name, Version: m.version, Kind: k, Err: fmt.Errorf(format, args...)}
}

// enter admits a call: not closed, not disabled.
func (m *Module) enter() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return &Error{Decoder: m.meta.Name, Version: m.version, Kind: KindClosed}
	}
	if m.Disabled() {
		return &Error{Decoder: m.meta.Name, Version: m.version, Kind: KindDisabled}
	}
	m.inflight.Add(1)
	return nil
}

func (m *Module) leave() { m.inflight.Done() }

// record counts one call: a success resets the failure run, a guest
// failure extends it and disables the module at MaxFailures.
func (m *Module) record(frame bool, err error) {
	var k Kind
	if err != nil {
		if k = KindOf(err); !k.guest() {
			return
		}
	}
	var f *Failure
	m.smu.Lock()
	if err == nil {
		// Only a good fc_decode ends a run of failures: a guest that frames
		// well and traps in every fc_decode must still be disabled.
		if frame {
			m.stats.frames++
		} else {
			m.stats.decodes++
			m.stats.consecutive = 0
		}
		m.smu.Unlock()
		return
	}
	m.stats.failed++
	m.stats.consecutive++
	m.stats.kinds[k]++
	m.stats.lastErr = err.Error()
	m.stats.lastErrAt = time.Now()
	f = &Failure{Decoder: m.meta.Name, Version: m.version, Kind: k, Err: err, Consecutive: m.stats.consecutive}
	if !m.stats.disabled && m.stats.consecutive >= m.host.cfg.MaxFailures {
		m.stats.disabled = true
		f.Disabled = true
	}
	fn := m.onFailure
	m.smu.Unlock()
	if f.Disabled {
		m.host.log.Error("decoder disabled", "decoder", f.Decoder, "version", f.Version,
			"failures", f.Consecutive, "kind", k.String(), "error", err)
	}
	if fn != nil {
		fn(*f)
	}
}

// options returns the interned options JSON of a session: equal options
// share one slice.
func (m *Module) optionsJSON(b []byte) []byte {
	m.optMu.Lock()
	defer m.optMu.Unlock()
	if v, ok := m.optBytes[string(b)]; ok {
		return v
	}
	if m.optBytes == nil {
		m.optBytes = map[string][]byte{}
	}
	if len(m.optBytes) < 1024 {
		m.optBytes[string(b)] = b
	}
	return b
}

func (m *Module) acquire() (*instance, error) {
	select {
	case inst := <-m.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-m.idle:
		return inst, nil
	case m.slots <- struct{}{}:
		inst, err := m.newInstance(context.Background())
		if err != nil {
			<-m.slots
			return nil, err
		}
		return inst, nil
	}
}

func (m *Module) release(inst *instance) { m.idle <- inst }

func (m *Module) discard(inst *instance) {
	inst.close()
	<-m.slots
}

// instance is one instantiated module with its input buffer.
type instance struct {
	mod    api.Module
	mem    api.Memory
	frame  api.Function
	decode api.Function
	alloc  api.Function
	errFn  api.Function
	meta   api.Function
	bufPtr uint32
	bufCap uint32
	stderr *tailBuffer
	stack  [2]uint64
	rec    recordDecoder

	// meter bounds each call (fc_* exports run under the units and the
	// wall-clock backstop of their budget, see internal/wasmmeter); usage
	// is what the last call spent.
	meter *wasmmeter.Meter
	usage wasmmeter.Usage
}

// newInstance instantiates the module in a sandbox: no filesystem, no
// arguments or environment, clocks frozen at the epoch, sleeps that return
// at once, a deterministic random source and stdout discarded; stderr is
// kept (its start) for error messages. It calls _initialize (Go wasip1
// reactors) and checks fc_abi.
func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	inst := &instance{stderr: &tailBuffer{}}
	initBudget := max(m.host.cfg.Budget, InitBudget)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithRandSource(&detRand{state: 0x9e3779b97f4a7c15}).
		WithWalltime(zeroWalltime, 1).
		WithNanotime(zeroNanotime, 1).
		WithStderr(inst.stderr)
	// A start section runs under the units Instrument gave the module
	// (InitBudget's); there is no meter to stop it before it returns.
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, m.initErr(ctx, inst, fmt.Errorf("instantiating: %w", err))
	}
	inst.mod = mod
	if inst.meter, err = wasmmeter.New(mod); err != nil {
		inst.close()
		return nil, m.errorf(KindInvalid, "%w", err)
	}
	inst.mem = mod.ExportedMemory("memory")
	inst.frame = mod.ExportedFunction("fc_frame")
	inst.decode = mod.ExportedFunction("fc_decode")
	inst.alloc = mod.ExportedFunction("fc_alloc")
	inst.errFn = mod.ExportedFunction("fc_error")
	inst.meta = mod.ExportedFunction("fc_meta")
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, err := inst.initCall(ctx, init, initBudget); err != nil {
			inst.close()
			return nil, m.initErr(ctx, inst, fmt.Errorf("calling _initialize: %w", err))
		}
	}
	res, err := inst.initCall(ctx, mod.ExportedFunction("fc_abi"), initBudget)
	if err != nil {
		inst.close()
		return nil, m.initErr(ctx, inst, fmt.Errorf("calling fc_abi: %w", err))
	}
	if v := api.DecodeI32(res[0]); v != ABIVersion {
		inst.close()
		return nil, m.errorf(KindInvalid, "fc_abi returned %d, want %d", v, ABIVersion)
	}
	return inst, nil
}

// initCall calls fn once under budget's units, with budget as its
// wall-clock backstop (instantiation is not per frame), stopped early when
// ctx is done.
func (inst *instance) initCall(ctx context.Context, fn api.Function, budget time.Duration) ([]uint64, error) {
	inst.meter.Start(ctx, wasmmeter.Units(budget), budget)
	res, err := fn.Call(context.Background())
	inst.usage = inst.meter.Stop()
	return res, err
}

// initErr classifies an instantiation failure (a module that loaded once
// can still fail to instantiate later, e.g. out of memory).
func (m *Module) initErr(ctx context.Context, inst *instance, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("instantiating decoder %s: %w", m.meta.Name, ctx.Err())
	case inst.usage.Out():
		return &Error{Decoder: m.meta.Name, Version: m.version, Kind: KindTimeout, Err: err}
	case strings.Contains(err.Error(), "memory") || strings.Contains(inst.stderr.String(), "out of memory"):
		return &Error{Decoder: m.meta.Name, Version: m.version, Kind: KindMemory, Err: err}
	}
	if tail := inst.stderr.String(); tail != "" {
		err = fmt.Errorf("%w; guest stderr: %s", err, tail)
	}
	return &Error{Decoder: m.meta.Name, Version: m.version, Kind: KindTrap, Err: err}
}

func (inst *instance) close() {
	if inst.meter != nil {
		inst.meter.Close()
	}
	if inst.mod != nil {
		_ = inst.mod.Close(context.Background())
	}
}

// call runs fn with the instance's stack under the budget: Units(budget)
// metering units and a wall-clock backstop of WallFactor × budget. It
// returns whether the meter ended the call (the call then failed; an
// instance is discarded after any failed call).
func (inst *instance) call(fn api.Function, budget time.Duration) (expired bool, err error) {
	inst.stderr.reset()
	inst.meter.Start(context.Background(), wasmmeter.Units(budget), budget*wasmmeter.WallFactor)
	err = fn.CallWithStack(context.Background(), inst.stack[:])
	inst.usage = inst.meter.Stop()
	return err != nil && inst.usage.Out(), err
}

// classify turns a failed call into an *Error.
func (m *Module) classify(inst *instance, budget time.Duration, expired bool, what string, err error) *Error {
	if expired {
		if inst.usage.Stopped && !inst.usage.Exhausted {
			return m.errorf(KindTimeout, "%s ran longer than %v: stopped by the wall-clock backstop after %v (%d of its %d metering units spent)",
				what, budget, budget*wasmmeter.WallFactor, inst.usage.Units, wasmmeter.Units(budget))
		}
		return m.errorf(KindTimeout, "%s ran longer than %v: it spent all its %d metering units (one per function call or loop iteration)",
			what, budget, wasmmeter.Units(budget))
	}
	detail := err.Error()
	if tail := inst.stderr.String(); tail != "" {
		detail += "; guest stderr: " + tail
	}
	// A guest whose memory.grow is refused at the limit sees -1 and then
	// usually traps (Go: "out of memory"). Its memory stops short of the
	// limit by up to its growth step, so a trap with at least 3/4 of the
	// limit in use counts as memory exhaustion.
	limit := uint64(m.host.cfg.MemoryLimitPages) * 65536
	if uint64(inst.mem.Size()) >= limit/4*3 || strings.Contains(detail, "out of memory") {
		return m.errorf(KindMemory, "%s: memory at %d of %d bytes: %s", what, inst.mem.Size(), limit, detail)
	}
	return m.errorf(KindTrap, "%s: %s", what, detail)
}

// input asks fc_alloc for a buffer of at least size bytes unless the one
// the instance has is large enough, and returns a view of size bytes of it.
func (m *Module) input(inst *instance, size int, budget time.Duration) ([]byte, *Error, bool) {
	if uint64(size) > uint64(inst.mem.Size()) || size > 1<<31-1 {
		return nil, m.errorf(KindMemory, "input of %d bytes exceeds the guest memory", size), false
	}
	if inst.bufPtr == 0 || uint32(size) > inst.bufCap {
		inst.stack[0] = api.EncodeI32(int32(size))
		expired, err := inst.call(inst.alloc, budget)
		if err != nil || expired {
			return nil, m.classify(inst, budget, expired, fmt.Sprintf("fc_alloc(%d)", size), err), true
		}
		ptr := api.DecodeU32(inst.stack[0])
		switch {
		case ptr == 0:
			return nil, m.errorf(KindMemory, "fc_alloc(%d) refused", size), false
		case uint64(ptr)+uint64(size) > uint64(inst.mem.Size()):
			return nil, m.errorf(KindABI, "fc_alloc(%d) returned %d, beyond memory of %d bytes", size, ptr, inst.mem.Size()), false
		}
		inst.bufPtr, inst.bufCap = ptr, uint32(size)
	}
	view, ok := inst.mem.Read(inst.bufPtr, uint32(size))
	if !ok {
		return nil, m.errorf(KindABI, "input buffer at %d+%d outside memory", inst.bufPtr, size), false
	}
	return view, nil, false
}

// guestMessage reads fc_error's message after a negative fc_frame ("" when
// the guest has no fc_error). A failing fc_error is an *Error.
func (m *Module) guestMessage(inst *instance, budget time.Duration) (string, *Error) {
	if inst.errFn == nil {
		return "", nil
	}
	expired, err := inst.call(inst.errFn, budget)
	if err != nil || expired {
		return "", m.classify(inst, budget, expired, "fc_error", err)
	}
	ptr, n := uint32(inst.stack[0]>>32), uint32(inst.stack[0])
	n = min(n, maxMessageBytes)
	b, ok := inst.mem.Read(ptr, n)
	if !ok || n == 0 {
		return "", nil
	}
	return sanitize(b), nil
}

// sanitize makes a guest message safe to log and store: valid UTF-8, no
// control characters.
func sanitize(b []byte) string {
	s := strings.ToValidUTF8(string(bytes.TrimSpace(b)), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// readMeta calls fc_meta and parses the metadata.
func (inst *instance) readMeta(ctx context.Context, caps Caps, reserved func(string) bool) (Meta, []plugins.Option, error) {
	res, err := inst.initCall(ctx, inst.meta, InitBudget)
	if err != nil {
		if inst.usage.Out() {
			return Meta{}, nil, fmt.Errorf("calling fc_meta: ran longer than %v: %w", InitBudget, err)
		}
		return Meta{}, nil, fmt.Errorf("calling fc_meta: %w", err)
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	if n == 0 || n > MaxMetaBytes {
		return Meta{}, nil, fmt.Errorf("fc_meta returned %d bytes: want 1..%d", n, MaxMetaBytes)
	}
	b, ok := inst.mem.Read(ptr, n)
	if !ok {
		return Meta{}, nil, fmt.Errorf("fc_meta returned %d+%d, outside memory", ptr, n)
	}
	return parseMeta(append([]byte(nil), b...), caps, reserved)
}

// tailBuffer keeps the first 512 bytes written to it since the last reset
// (guest stderr): the start of a crash report says the most.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

const tailMax = 512

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := tailMax - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

func (t *tailBuffer) reset() {
	t.mu.Lock()
	t.b = t.b[:0]
	t.mu.Unlock()
}

// The guest's clocks stand still (wall time at the Unix epoch, monotonic
// time at 1 ns: the Go runtime refuses a zero one): a decoder cannot
// observe time, so its output depends only on its input.
func zeroWalltime() (int64, int32) { return 0, 0 }
func zeroNanotime() int64          { return 1 }

// detRand is a deterministic xorshift byte stream.
type detRand struct{ state uint64 }

func (d *detRand) Read(p []byte) (int, error) {
	for i := range p {
		d.state ^= d.state << 13
		d.state ^= d.state >> 7
		d.state ^= d.state << 17
		p[i] = byte(d.state)
	}
	return len(p), nil
}
