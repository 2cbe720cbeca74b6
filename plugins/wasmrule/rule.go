package wasmrule

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/fleetcore/fleetcore/internal/wasmmeter"
	"github.com/fleetcore/fleetcore/signal"
)

// Rule is a compiled rule module with its pool of instances. It is safe for
// concurrent use: each concurrent Check takes its own instance.
type Rule struct {
	host        *Host
	rt          wazero.Runtime
	compiled    wazero.CompiledModule
	meta        Meta
	size        int
	hash        [32]byte
	compileTime time.Duration

	idle  chan *instance // instances ready for a batch
	slots chan struct{}  // one token per live instance (idle or busy)

	mu       sync.Mutex // guards closed and inflight.Add
	closed   bool
	inflight sync.WaitGroup

	smu   sync.Mutex // guards stats
	stats ruleStats
}

type ruleStats struct {
	batches, signals, failed uint64
	consecutive              int
	kinds                    map[Kind]uint64
	lastErr                  string
	lastErrAt                time.Time
	disabled                 bool
}

// Stats is a snapshot of a rule's counters.
type Stats struct {
	Batches     uint64            `json:"batches"`     // batches evaluated
	Signals     uint64            `json:"signals"`     // signals evaluated
	Failed      uint64            `json:"failed"`      // batches not evaluated through the rule's fault
	Consecutive int               `json:"consecutive"` // current run of failed batches
	Errors      map[string]uint64 `json:"errors"`      // failed batches by kind
	LastError   string            `json:"last_error,omitempty"`
	LastErrorAt time.Time         `json:"last_error_at,omitzero"`
	Disabled    bool              `json:"disabled"`
}

// Meta returns the rule's metadata.
func (r *Rule) Meta() Meta { return r.meta }

// Name returns the rule's name.
func (r *Rule) Name() string { return r.meta.Name }

// Version returns the rule's version.
func (r *Rule) Version() string { return r.meta.Version }

// Hash returns the hex SHA-256 of the module bytes.
func (r *Rule) Hash() string { return hex.EncodeToString(r.hash[:]) }

// Size returns the module size in bytes.
func (r *Rule) Size() int { return r.size }

// CompileTime returns how long compilation took (short when cached).
func (r *Rule) CompileTime() time.Duration { return r.compileTime }

// Exports lists the module's exported functions with their signatures.
func (r *Rule) Exports() []string {
	var out []string
	for name, def := range r.compiled.ExportedFunctions() {
		out = append(out, fmt.Sprintf("%s(%s) -> (%s)", name,
			strings.Join(typeNames(def.ParamTypes()), ", "),
			strings.Join(typeNames(def.ResultTypes()), ", ")))
	}
	for name := range r.compiled.ExportedMemories() {
		out = append(out, name+" (memory)")
	}
	return out
}

// Imports lists the module's imported functions.
func (r *Rule) Imports() []string {
	var out []string
	for _, f := range r.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		out = append(out, mod+"."+name)
	}
	return out
}

// Stats returns a snapshot of the rule's counters.
func (r *Rule) Stats() Stats {
	r.smu.Lock()
	defer r.smu.Unlock()
	s := Stats{Batches: r.stats.batches, Signals: r.stats.signals, Failed: r.stats.failed,
		Consecutive: r.stats.consecutive, LastError: r.stats.lastErr, LastErrorAt: r.stats.lastErrAt,
		Disabled: r.stats.disabled, Errors: make(map[string]uint64, len(r.stats.kinds))}
	for k, n := range r.stats.kinds {
		s.Errors[k.String()] = n
	}
	return s
}

// Disabled reports whether the rule disabled itself.
func (r *Rule) Disabled() bool {
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.stats.disabled
}

// Enable re-enables a disabled rule and resets its failure run.
func (r *Rule) Enable() {
	r.smu.Lock()
	r.stats.disabled = false
	r.stats.consecutive = 0
	r.smu.Unlock()
}

// Close waits for in-flight batches and releases the rule's instances.
func (r *Rule) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.inflight.Wait()
	if err := r.rt.Close(ctx); err != nil {
		return fmt.Errorf("closing rule %s: %w", r.meta.Name, err)
	}
	return nil
}

func (r *Rule) enter() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return &Error{Rule: r.meta.Name, Kind: KindClosed}
	}
	r.inflight.Add(1)
	return nil
}

// Check evaluates the batch and returns one verdict per input. Inputs are
// sent in calls of at most Config.BatchSize signals sharing one clock. On
// error the verdicts of the calls that succeeded are returned (a prefix of
// the batch) together with an *Error: the rest is not evaluated.
func (r *Rule) Check(ctx context.Context, batch []Input) ([]Verdict, error) {
	out := make([]Verdict, len(batch))
	if err := r.enter(); err != nil {
		return out[:0], err
	}
	defer r.inflight.Done()
	hostNow := int64(signal.NoTime)
	nowOf := func(in *Input) int64 {
		if in.Now.IsZero() {
			if hostNow == signal.NoTime {
				hostNow = r.host.cfg.Now().UnixMilli()
			}
			return hostNow
		}
		return in.Now.UnixMilli()
	}
	limit := r.host.cfg.BatchSize
	for i := 0; i < len(batch); {
		if r.Disabled() {
			return out[:i], &Error{Rule: r.meta.Name, Kind: KindDisabled}
		}
		now := nowOf(&batch[i])
		j := i + 1
		for j < len(batch) && j-i < limit && nowOf(&batch[j]) == now {
			j++
		}
		err := r.eval(ctx, batch[i:j], now, out[i:j])
		r.record(j-i, err)
		if err != nil {
			return out[:i], err
		}
		i = j
	}
	return out, nil
}

// record updates the counters after one call and disables the rule after
// too many consecutive failures.
func (r *Rule) record(n int, err error) {
	k := KindOf(err)
	if k == KindCanceled {
		return
	}
	var alert *Alert
	r.smu.Lock()
	if err == nil {
		r.stats.batches++
		r.stats.signals += uint64(n)
		r.stats.consecutive = 0
	} else {
		r.stats.failed++
		r.stats.consecutive++
		r.stats.kinds[k]++
		r.stats.lastErr = err.Error()
		r.stats.lastErrAt = time.Now()
		if !r.stats.disabled && r.stats.consecutive >= r.host.cfg.MaxFailures {
			r.stats.disabled = true
			alert = &Alert{Rule: r.meta.Name, Version: r.meta.Version, Time: r.stats.lastErrAt,
				Failures: r.stats.consecutive, Kind: k,
				Message: fmt.Sprintf("rule %s %s disabled after %d consecutive failed batches; last error: %v",
					r.meta.Name, r.meta.Version, r.stats.consecutive, err)}
		}
	}
	r.smu.Unlock()
	if alert != nil {
		r.host.log.Error("rule disabled", "rule", alert.Rule, "version", alert.Version,
			"failures", alert.Failures, "kind", alert.Kind.String(), "error", err)
		if r.host.cfg.OnAlert != nil {
			r.host.cfg.OnAlert(*alert)
		}
	}
}

// eval runs one fc_check call over in (at most BatchSize signals).
func (r *Rule) eval(ctx context.Context, in []Input, nowMs int64, out []Verdict) error {
	if len(in) == 0 {
		return nil
	}
	inst, err := r.acquire(ctx)
	if err != nil {
		return err
	}
	size := BatchSize(&r.meta, len(in))
	if err := inst.ensureBuffer(ctx, r, uint32(size)); err != nil {
		r.discard(ctx, inst)
		return err
	}
	view, ok := inst.mem.Read(inst.bufPtr, uint32(size))
	if !ok {
		r.discard(ctx, inst)
		return newErr(r.meta.Name, KindBadReturn, "buffer at %d+%d outside memory", inst.bufPtr, size)
	}
	encodeBatch(view, &r.meta, in, nowMs)
	inst.stack[0] = api.EncodeU32(inst.bufPtr)
	inst.stack[1] = api.EncodeU32(uint32(len(in)))
	inst.stderr.reset()
	err = inst.call(ctx, inst.check, r.host.cfg.Budget)
	if err != nil {
		e := r.classify(ctx, inst, err)
		r.discard(ctx, inst)
		return e
	}
	ret := api.DecodeI32(inst.stack[0])
	if ret < 0 || int(ret) > len(in) {
		r.release(inst)
		return newErr(r.meta.Name, KindBadReturn, "fc_check returned %d for %d signals", ret, len(in))
	}
	vbytes := uint32(4 * len(in))
	view, ok = inst.mem.Read(inst.bufPtr+uint32(size)-vbytes, vbytes)
	if !ok {
		r.discard(ctx, inst)
		return newErr(r.meta.Name, KindBadReturn, "verdicts outside memory after the call")
	}
	bad, kind, msg := decodeVerdicts(view, &r.meta, out)
	r.release(inst)
	if kind != 0 {
		return &Error{Rule: r.meta.Name, Kind: kind, Err: errors.New(msg)}
	}
	if bad != int(ret) {
		return newErr(r.meta.Name, KindBadReturn, "fc_check returned %d but wrote %d warn/fail verdicts", ret, bad)
	}
	return nil
}

func (r *Rule) classify(ctx context.Context, inst *instance, err error) error {
	name := r.meta.Name
	if ctx.Err() != nil {
		return &Error{Rule: name, Kind: KindCanceled, Err: ctx.Err()}
	}
	if inst.usage.Out() {
		return newErr(name, KindTimeout, "batch ran longer than %v", r.host.cfg.Budget)
	}
	detail := err.Error()
	if tail := inst.stderr.String(); tail != "" {
		detail += "; guest stderr: " + tail
	}
	// A guest whose memory.grow is refused at the limit sees -1 and then
	// usually traps (Go: "out of memory"). Its memory stops short of the
	// limit by up to its growth step, so a trap with at least 3/4 of the
	// limit in use counts as memory exhaustion.
	limit := uint64(r.host.cfg.MemoryLimitPages) * 65536
	if uint64(inst.mem.Size()) >= limit/4*3 || strings.Contains(detail, "out of memory") {
		return newErr(name, KindMemory, "memory at %d of %d bytes: %s", inst.mem.Size(), limit, detail)
	}
	return &Error{Rule: name, Kind: KindTrap, Err: errors.New(detail)}
}

func (r *Rule) acquire(ctx context.Context) (*instance, error) {
	select {
	case inst := <-r.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-r.idle:
		return inst, nil
	case r.slots <- struct{}{}:
		inst, err := r.newInstance(ctx)
		if err != nil {
			<-r.slots
			return nil, err
		}
		return inst, nil
	case <-ctx.Done():
		return nil, &Error{Rule: r.meta.Name, Kind: KindCanceled, Err: ctx.Err()}
	}
}

func (r *Rule) release(inst *instance) { r.idle <- inst }

func (r *Rule) discard(ctx context.Context, inst *instance) {
	inst.close(ctx)
	<-r.slots
}

// instance is one instantiated module with its batch buffer.
type instance struct {
	mod    api.Module
	mem    api.Memory
	check  api.Function
	alloc  api.Function
	meta   api.Function
	bufPtr uint32
	bufCap uint32
	stderr *tailBuffer
	stack  [2]uint64
	meter  *wasmmeter.Meter
	usage  wasmmeter.Usage // of the last call
}

// unitsPerNs is the units of a rule call per nanosecond of its budget.
// A rule's budget is wall-clock time, enforced by the meter's watchdog;
// the units only bound a call the watchdog cannot stop. That happens: a
// guest looping in wazero's machine code has no safe point, so a garbage
// collection waiting to stop the world waits for it, and the watchdog
// with it (a CI run hung 15 minutes in TestHostileGuests with the units
// unlimited). One unit (a call or a loop iteration) costs well over a
// quarter of a nanosecond, so four per nanosecond never run out before
// the budget does.
const unitsPerNs = 4

// callUnits is the units of a call with this budget.
func callUnits(budget time.Duration) int64 {
	if budget <= 0 || int64(budget) > math.MaxInt64/unitsPerNs {
		return math.MaxInt64
	}
	return int64(budget) * unitsPerNs
}

// call runs fn with the instance's stack for at most budget, stopped
// early when ctx is done.
func (inst *instance) call(ctx context.Context, fn api.Function, budget time.Duration) error {
	inst.meter.Start(ctx, callUnits(budget), budget)
	err := fn.CallWithStack(context.Background(), inst.stack[:])
	inst.usage = inst.meter.Stop()
	return err
}

// callResults is call for a function with results (the init calls).
func (inst *instance) callResults(ctx context.Context, fn api.Function, budget time.Duration) ([]uint64, error) {
	inst.meter.Start(ctx, callUnits(budget), budget)
	res, err := fn.Call(context.Background())
	inst.usage = inst.meter.Stop()
	return res, err
}

func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("instantiating WASI: %w", err)
	}
	return nil
}

// newInstance instantiates the module in a sandbox: no filesystem, no
// arguments or environment, clocks fixed at zero, sleeps that return at
// once, a deterministic random source
// and stdout discarded; stderr is kept (tail) for error messages. It calls
// _initialize (Go wasip1 reactors) and checks fc_abi.
func (r *Rule) newInstance(ctx context.Context) (*instance, error) {
	name := r.meta.Name
	inst := &instance{stderr: &tailBuffer{}}
	// Starting a Go runtime takes far longer than a batch on a loaded machine;
	// a guest that never finishes _initialize still gets stopped.
	budget := max(r.host.cfg.Budget, InitBudget)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithRandSource(&detRand{state: 0x9e3779b97f4a7c15}).
		WithWalltime(zeroWalltime, 1).
		WithNanotime(zeroNanotime, 1).
		WithStderr(inst.stderr)
	mod, err := r.rt.InstantiateModule(ctx, r.compiled, cfg)
	if err != nil {
		return nil, r.instErr(ctx, inst, fmt.Errorf("instantiating: %w", err))
	}
	inst.mod = mod
	if inst.meter, err = wasmmeter.New(mod); err != nil {
		inst.close(ctx)
		return nil, newErr(name, KindInvalid, "%v", err)
	}
	inst.mem = mod.ExportedMemory("memory")
	inst.check = mod.ExportedFunction("fc_check")
	inst.alloc = mod.ExportedFunction("fc_alloc")
	inst.meta = mod.ExportedFunction("fc_meta")
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, err := inst.callResults(ctx, init, budget); err != nil {
			inst.close(ctx)
			return nil, r.instErr(ctx, inst, fmt.Errorf("calling _initialize: %w", err))
		}
	}
	res, err := inst.callResults(ctx, mod.ExportedFunction("fc_abi"), budget)
	if err != nil {
		inst.close(ctx)
		return nil, r.instErr(ctx, inst, fmt.Errorf("calling fc_abi: %w", err))
	}
	if v := api.DecodeI32(res[0]); v != ABIVersion {
		inst.close(ctx)
		return nil, newErr(name, KindInvalid, "fc_abi returned %d, want %d", v, ABIVersion)
	}
	return inst, nil
}

func (r *Rule) instErr(ctx context.Context, inst *instance, err error) error {
	name := r.meta.Name
	switch {
	case ctx.Err() != nil:
		return &Error{Rule: name, Kind: KindCanceled, Err: ctx.Err()}
	case inst.usage.Out():
		return &Error{Rule: name, Kind: KindTimeout, Err: err}
	case strings.Contains(err.Error(), "memory") || strings.Contains(inst.stderr.String(), "out of memory"):
		return &Error{Rule: name, Kind: KindMemory, Err: err}
	}
	if tail := inst.stderr.String(); tail != "" {
		err = fmt.Errorf("%w; guest stderr: %s", err, tail)
	}
	return &Error{Rule: name, Kind: KindTrap, Err: err}
}

func (inst *instance) close(ctx context.Context) {
	if inst.meter != nil {
		inst.meter.Close()
	}
	if inst.mod != nil {
		_ = inst.mod.Close(ctx)
	}
}

// ensureBuffer asks fc_alloc for a buffer of at least size bytes unless
// the one it already has is large enough.
func (inst *instance) ensureBuffer(ctx context.Context, r *Rule, size uint32) error {
	if inst.bufPtr != 0 && size <= inst.bufCap {
		return nil
	}
	inst.stack[0] = api.EncodeI32(int32(size))
	if err := inst.call(ctx, inst.alloc, r.host.cfg.Budget); err != nil {
		return r.classify(ctx, inst, fmt.Errorf("calling fc_alloc(%d): %w", size, err))
	}
	ptr := api.DecodeU32(inst.stack[0])
	switch {
	case ptr == 0:
		return newErr(r.meta.Name, KindMemory, "fc_alloc(%d) refused", size)
	case ptr%8 != 0:
		return newErr(r.meta.Name, KindBadReturn, "fc_alloc(%d) returned %d, not 8-aligned", size, ptr)
	case uint64(ptr)+uint64(size) > uint64(inst.mem.Size()):
		return newErr(r.meta.Name, KindBadReturn, "fc_alloc(%d) returned %d, beyond memory of %d bytes", size, ptr, inst.mem.Size())
	}
	inst.bufPtr, inst.bufCap = ptr, size
	return nil
}

// readMeta calls fc_meta and parses the metadata.
func (inst *instance) readMeta() (Meta, error) {
	res, err := inst.callResults(context.Background(), inst.meta, InitBudget)
	if err != nil {
		return Meta{}, fmt.Errorf("calling fc_meta: %w", err)
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	if n == 0 || n > MaxMetaBytes {
		return Meta{}, fmt.Errorf("fc_meta returned %d bytes", n)
	}
	b, ok := inst.mem.Read(ptr, n)
	if !ok {
		return Meta{}, fmt.Errorf("fc_meta returned %d+%d, outside memory", ptr, n)
	}
	m, err := ParseMeta(append([]byte(nil), b...))
	if err != nil {
		return Meta{}, fmt.Errorf("reading metadata: %w", err)
	}
	return m, nil
}

// tailBuffer keeps the first 512 bytes written to it since the last reset
// (guest stderr): the start of a crash report ("panic: …", "fatal error:
// out of memory") says the most.
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
// time at 1 ns: the Go runtime refuses a zero one): a rule cannot observe
// time, so verdicts depend only on the batch (now_ms is the host's clock).
func zeroWalltime() (int64, int32) { return 0, 0 }
func zeroNanotime() int64          { return 1 }

// detRand is a deterministic xorshift byte stream: guests get the same
// "random" bytes on every run, so verdicts stay replayable.
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
