package wasmmeter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// UnitsPerSecond converts a time budget into metering units: one unit per
// nanosecond. A unit is one function call or one loop iteration, which
// no guest runs in less than about a nanosecond, so a call that spends its
// units has run at least about its budget on a fast, idle core; on a busy
// machine it is stopped after the same work, not earlier.
const UnitsPerSecond = 1_000_000_000

// WallFactor is how many times its budget a call may take in wall-clock
// time before the backstop ends it: the backstop is for guests whose cost
// between two checks is large (long straight-line function bodies), and
// must not fire for an honest call on a loaded machine.
const WallFactor = 10

// Units returns the metering units of a time budget (at least 1).
func Units(budget time.Duration) int64 {
	return max(1, budget.Nanoseconds()*(UnitsPerSecond/int64(time.Second)))
}

// Meter is the host's side of one instance of an instrumented module: it
// gives each call its units and a wall-clock deadline. One goroutine uses
// a Meter at a time (the instance's caller); the watchdog (one goroutine
// for all meters, every Tick) and a canceled context are the only others.
type Meter struct {
	count, limit api.MutableGlobal

	units    int64        // of the current call
	deadline atomic.Int64 // of the current call, since base; 0 = none

	mu    sync.Mutex // guards the fields below and the limit's writes
	armed bool
	fired bool
	stop  func() bool // context.AfterFunc's stop, or nil
}

// Tick is how often the watchdog looks for calls past their deadline: the
// backstop stops a call up to Tick after its deadline. One goroutine
// serves every meter (a timer per call cost about 1 µs per call).
const Tick = 10 * time.Millisecond

var (
	base     = time.Now()
	watchdog struct {
		mu      sync.Mutex
		meters  map[*Meter]struct{}
		running bool
	}
)

func now() int64 { return int64(time.Since(base)) + 1 }

// watch runs while meters exist.
func watch() {
	t := time.NewTicker(Tick)
	defer t.Stop()
	for range t.C {
		n := now()
		watchdog.mu.Lock()
		if len(watchdog.meters) == 0 {
			watchdog.running = false
			watchdog.mu.Unlock()
			return
		}
		for m := range watchdog.meters {
			if d := m.deadline.Load(); d != 0 && n >= d {
				m.expire(d)
			}
		}
		watchdog.mu.Unlock()
	}
}

// New returns the meter of an instance of a module from Instrument. Close
// it with the instance.
func New(mod api.Module) (*Meter, error) {
	count, ok1 := mod.ExportedGlobal(CountExport).(api.MutableGlobal)
	limit, ok2 := mod.ExportedGlobal(LimitExport).(api.MutableGlobal)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("metering: the instance does not export the mutable globals %s and %s (not instrumented)", CountExport, LimitExport)
	}
	m := &Meter{count: count, limit: limit}
	watchdog.mu.Lock()
	if watchdog.meters == nil {
		watchdog.meters = map[*Meter]struct{}{}
	}
	watchdog.meters[m] = struct{}{}
	if !watchdog.running {
		watchdog.running = true
		go watch()
	}
	watchdog.mu.Unlock()
	return m, nil
}

// Start gives the next call units, a wall-clock backstop of wall (0: none)
// and, when ctx can be canceled, stops it as soon as ctx is done.
func (m *Meter) Start(ctx context.Context, units int64, wall time.Duration) {
	m.units = max(units, 1)
	m.mu.Lock()
	m.count.Set(0)
	m.limit.Set(uint64(m.units))
	m.armed, m.fired = true, false
	if wall > 0 {
		m.deadline.Store(now() + int64(wall))
	}
	m.mu.Unlock()
	if ctx.Done() != nil {
		m.stop = context.AfterFunc(ctx, m.cancel)
	}
}

// expire stops the call whose deadline was d (not a later one).
func (m *Meter) expire(d int64) {
	m.mu.Lock()
	if m.armed && m.deadline.Load() == d {
		m.fired = true
		m.limit.Set(0)
	}
	m.mu.Unlock()
}

func (m *Meter) cancel() {
	m.mu.Lock()
	if m.armed {
		m.fired = true
		m.limit.Set(0)
	}
	m.mu.Unlock()
}

// Usage is what a call spent.
type Usage struct {
	Units     int64 // units spent
	Exhausted bool  // the call spent all its units
	Stopped   bool  // the backstop or the context stopped the call
}

// Out reports whether the call was ended by the meter (a trap of the
// call then is the meter's, not the guest's).
func (u Usage) Out() bool { return u.Exhausted || u.Stopped }

// Stop ends the metering of the current call.
func (m *Meter) Stop() Usage {
	if m.stop != nil {
		m.stop()
		m.stop = nil
	}
	var u Usage
	m.mu.Lock()
	m.deadline.Store(0)
	m.armed = false
	u.Stopped = m.fired
	m.mu.Unlock()
	u.Units = int64(m.count.Get())
	u.Exhausted = u.Units >= m.units
	return u
}

// Close unregisters the meter from the watchdog.
func (m *Meter) Close() {
	watchdog.mu.Lock()
	delete(watchdog.meters, m)
	watchdog.mu.Unlock()
}
