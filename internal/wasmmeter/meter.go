package wasmmeter

import (
	"context"
	"fmt"
	"sync"
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
// gives each call its units and arms the wall-clock backstop. One
// goroutine uses a Meter at a time (the instance's caller); the backstop's
// timer is the only other one.
type Meter struct {
	count, limit api.MutableGlobal
	timer        *time.Timer

	units int64 // of the current call

	mu       sync.Mutex // guards the fields below and limit writes from the timer
	armed    bool
	fired    bool
	deadline time.Time
	stop     func() bool // context.AfterFunc's stop, or nil
}

// New returns the meter of an instance of a module from Instrument.
func New(mod api.Module) (*Meter, error) {
	count, ok1 := mod.ExportedGlobal(CountExport).(api.MutableGlobal)
	limit, ok2 := mod.ExportedGlobal(LimitExport).(api.MutableGlobal)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("metering: the instance does not export the mutable globals %s and %s (not instrumented)", CountExport, LimitExport)
	}
	m := &Meter{count: count, limit: limit}
	m.timer = time.AfterFunc(time.Hour, m.expire)
	m.timer.Stop()
	return m, nil
}

// Start gives the next call units, a wall-clock backstop of wall (0: none)
// and, when ctx can be canceled, stops it as soon as ctx is done.
func (m *Meter) Start(ctx context.Context, units int64, wall time.Duration) {
	m.units = max(units, 1)
	m.count.Set(0)
	m.limit.Set(uint64(m.units))
	if wall <= 0 && ctx.Done() == nil {
		return
	}
	m.mu.Lock()
	m.armed, m.fired = true, false
	m.deadline = time.Now().Add(wall)
	m.mu.Unlock()
	if ctx.Done() != nil {
		m.stop = context.AfterFunc(ctx, m.cancel)
	}
	if wall > 0 {
		m.timer.Reset(wall)
	}
}

// expire is the backstop's timer. A late run of the previous call's timer
// finds the deadline of the current call ahead and does nothing.
func (m *Meter) expire() {
	m.mu.Lock()
	if m.armed && !time.Now().Before(m.deadline) {
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
	m.timer.Stop()
	var u Usage
	m.mu.Lock()
	if m.armed {
		m.armed = false
		u.Stopped = m.fired
		if m.stop != nil {
			m.stop()
			m.stop = nil
		}
	}
	m.mu.Unlock()
	u.Units = int64(m.count.Get())
	u.Exhausted = u.Units >= m.units
	return u
}

// Close stops the backstop's timer for good.
func (m *Meter) Close() { m.timer.Stop() }
