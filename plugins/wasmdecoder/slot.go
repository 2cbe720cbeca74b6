package wasmdecoder

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
)

// ErrNoVersion is the reason a Slot cannot open a session: no version of
// the decoder is in service (none loaded yet, its file removed, or its
// last version disabled with no previous one to restore). The gateway
// closes such connections with a logged reason and quarantines nothing
// (gateway.SessionOpener).
var ErrNoVersion = errors.New("no version of the decoder in service")

// servable is one loaded decoder version as a Slot serves it: a *Module
// (moduleVersion) or, in tests, a fake.
type servable interface {
	Info() plugins.Info
	NewSession(cfg plugins.SessionConfig) plugins.Session
	// Resume makes a session of this version that carries on from a
	// session of another version of the same state_version (its state
	// blob and device id handed over), or reports false.
	Resume(cfg plugins.SessionConfig, from plugins.Session) (plugins.Session, bool)
	Version() string
	StateVersion() int
	Close(ctx context.Context) error
	// OnDisabled sets fn, run once (from the failing call's goroutine)
	// when the version disables itself after repeated guest failures
	// (traps, timeouts, ABI breaches; never ordinary refused frames);
	// reason says how many and the last one. The version refuses every
	// call from then on.
	OnDisabled(fn func(reason string))
	// Failures are its guest failures so far, those in a row now, and the
	// last one's text.
	Failures() (total uint64, consecutive int64, last string)
}

// moduleVersion is a *Module as a slot serves it.
type moduleVersion struct{ *Module }

var _ servable = moduleVersion{}

// Resume switches a session of another version to this one
// (Session.Switch keeps its device id, state blob and configuration).
func (m moduleVersion) Resume(_ plugins.SessionConfig, from plugins.Session) (plugins.Session, bool) {
	s, ok := from.(*Session)
	if !ok || s.Switch(m.Module) != nil {
		return nil, false
	}
	return s, true
}

// OnDisabled hooks the module's failure callback: the failure that
// disables it calls fn.
func (m moduleVersion) OnDisabled(fn func(reason string)) {
	m.OnFailure(func(f Failure) {
		if f.Disabled {
			fn(fmt.Sprintf("%d consecutive guest failures; the last (%s): %v", f.Consecutive, f.Kind, f.Err))
		}
	})
}

// Failures reads the module's counters.
func (m moduleVersion) Failures() (uint64, int64, string) {
	st := m.Stats()
	return st.Failures, int64(st.Consecutive), st.LastError
}

// version is one loaded version in a slot: the module, where it came
// from, who uses it and how it fares.
type version struct {
	slot     *Slot
	v        servable
	info     plugins.Info
	id       string // servable.Version()
	state    int    // servable.StateVersion()
	file     string
	hash     [32]byte
	loadedAt time.Time

	// refs counts the slot's hold (one while the version is current or
	// previous) and the sessions using it; at zero the module is closed
	// and the version cannot be acquired again.
	refs     atomic.Int64
	sessions atomic.Int64
	disabled atomic.Bool
}

// acquire takes a reference unless the version is already closed.
func (v *version) acquire() bool {
	for {
		n := v.refs.Load()
		if n <= 0 {
			return false
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the module.
func (v *version) release() {
	if v.refs.Add(-1) != 0 {
		return
	}
	s := v.slot
	s.mu.Lock()
	delete(s.all, v)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.v.Close(ctx); err != nil {
		s.log.Warn("closing decoder version", "decoder", s.name, "version", v.id, "error", err)
	} else {
		s.log.Debug("decoder version closed: no session uses it any more", "decoder", s.name, "version", v.id)
	}
}

func (v *version) supports(t plugins.Transport) bool { return slices.Contains(v.info.Transports, t) }

// Disabled describes a version a slot took out of service after repeated
// guest failures (DirConfig.OnDisable).
type Disabled struct {
	Decoder string // the decoder name
	Version string // the disabled version
	File    string // the file it was loaded from
	Reason  string // how many failures, and the last one
	// Restored is the version serving again in its place, "" when the
	// slot is left empty (no previous version).
	Restored string
}

// Slot is one decoder name of the folder, the stable decoder a listener
// names: the version in service (current), the one before it (kept for
// restoring) and the versions that sessions still use. A new version goes
// in service only once loaded (compiled and self-tested); a session keeps
// the version it started with and, at each frame boundary, moves to the
// current version when that version has the same state_version (its
// state blob and device id handed over), else keeps its old version until
// it closes. A version no session uses and the slot no longer holds is
// closed. A version that disables itself (the host's count of
// consecutive guest failures, Config.MaxFailures) is taken out: an alert
// (Disabled), a log line, and the previous version restored (or the slot
// left empty).
//
// Slot implements plugins.Decoder for a listener without options; Bind
// gives the decoder of a listener with options. It is safe for
// concurrent use.
type Slot struct {
	name      string
	log       hclog.Logger
	onDisable func(Disabled)

	cur atomic.Pointer[version] // read at every frame boundary

	mu   sync.Mutex
	prev *version
	why  string // why cur is nil
	all  map[*version]struct{}
	// unbound is the Binding of Slot's own plugins.Decoder methods.
	unbound *Binding
}

var (
	_ plugins.Decoder = (*Slot)(nil)
	_ plugins.Decoder = (*Binding)(nil)
)

func newSlot(name string, log hclog.Logger, onDisable func(Disabled)) *Slot {
	s := &Slot{name: name, log: log, onDisable: onDisable,
		why: "no version loaded", all: map[*version]struct{}{}}
	s.unbound = s.Bind(nil)
	return s
}

// Name is the decoder name.
func (s *Slot) Name() string { return s.name }

// Info implements plugins.Decoder: the current version's, named after the
// slot (every transport while no version is loaded).
func (s *Slot) Info() plugins.Info { return s.unbound.Info() }

// NewSession implements plugins.Decoder with every option at its default;
// see Binding.NewSession.
func (s *Slot) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return s.unbound.NewSession(cfg)
}

// OpenSession implements gateway.SessionOpener with every option at its
// default; see Binding.OpenSession.
func (s *Slot) OpenSession(cfg plugins.SessionConfig) (plugins.Session, error) {
	return s.unbound.OpenSession(cfg)
}

// Current is the version in service ("" and why there is none).
func (s *Slot) Current() (id, why string) {
	if v := s.cur.Load(); v != nil {
		return v.id, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return "", s.why
}

// Previous is the version kept for restoring ("" when none).
func (s *Slot) Previous() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev == nil {
		return ""
	}
	return s.prev.id
}

// Open is the number of versions not yet closed (current, previous, and
// older ones that sessions still use).
func (s *Slot) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// newVersion wraps a loaded module; the slot's hold is its first
// reference.
func (s *Slot) newVersion(sv servable, file string, hash [32]byte) *version {
	v := &version{slot: s, v: sv, info: sv.Info(), id: sv.Version(), state: sv.StateVersion(),
		file: file, hash: hash, loadedAt: time.Now()}
	v.refs.Store(1)
	sv.OnDisabled(func(reason string) { s.disable(v, reason) })
	s.mu.Lock()
	s.all[v] = struct{}{}
	s.mu.Unlock()
	return v
}

// install puts v in service; the current version becomes the previous
// one, and the previous one is let go.
func (s *Slot) install(v *version) {
	s.mu.Lock()
	old := s.cur.Load()
	var drop *version
	if old != nil {
		drop, s.prev = s.prev, old
	}
	s.cur.Store(v)
	s.why = ""
	s.mu.Unlock()
	if drop != nil {
		drop.release()
	}
}

// clear takes every version out of service (its file removed): new
// sessions are refused with why, existing ones finish on their version.
func (s *Slot) clear(why string) {
	s.mu.Lock()
	cur, prev := s.cur.Load(), s.prev
	s.cur.Store(nil)
	s.prev, s.why = nil, why
	s.mu.Unlock()
	if cur != nil {
		cur.release()
	}
	if prev != nil {
		prev.release()
	}
}

// disable takes v out of service (it disabled itself: why) and restores
// the previous version when v was current.
func (s *Slot) disable(v *version, why string) {
	if !v.disabled.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	held := false
	var restored, drop *version
	switch {
	case s.cur.Load() == v:
		held = true
		if s.prev != nil && !s.prev.disabled.Load() {
			restored = s.prev // the slot's hold moves with it
		} else {
			drop = s.prev
		}
		s.prev = nil
		s.cur.Store(restored)
		if restored == nil {
			s.why = fmt.Sprintf("version %s disabled (%s) and no previous version to restore", v.id, why)
		}
	case s.prev == v:
		held = true
		s.prev = nil
	}
	s.mu.Unlock()
	if held {
		v.release()
	}
	if drop != nil {
		drop.release()
	}
	d := Disabled{Decoder: s.name, Version: v.id, File: v.file, Reason: why}
	if restored != nil {
		d.Restored = restored.id
		s.log.Error("decoder version disabled; previous version restored", "decoder", s.name, "version", v.id,
			"file", v.file, "restored", restored.id, "reason", why)
	} else {
		s.log.Error("decoder version disabled; no previous version: new connections are refused until a new version loads",
			"decoder", s.name, "version", v.id, "file", v.file, "reason", why)
	}
	if s.onDisable != nil {
		s.onDisable(d)
	}
}

// Bind returns the decoder of a listener that names the slot with raw
// options: they are decoded against each version's declared options
// (plugins.DecodeOptions) the first time a session of the listener uses
// that version.
func (s *Slot) Bind(raw map[string]string) *Binding {
	return &Binding{slot: s, raw: raw, opts: map[*version]boundOptions{}}
}

// Binding is a listener's view of a slot: the slot's versions with the
// listener's options. It implements plugins.Decoder and
// gateway.SessionOpener.
type Binding struct {
	slot *Slot
	raw  map[string]string

	mu   sync.Mutex
	opts map[*version]boundOptions
}

type boundOptions struct {
	o   plugins.Options
	err error
}

// Slot is the slot the binding serves.
func (b *Binding) Slot() *Slot { return b.slot }

// options decodes the listener's options for version v (once).
func (b *Binding) options(v *version) (plugins.Options, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.opts[v]; ok {
		return o.o, o.err
	}
	for old := range b.opts {
		if old.refs.Load() <= 0 {
			delete(b.opts, old) // closed: never used again
		}
	}
	o, err := plugins.DecodeOptions(v.v, b.raw)
	if err != nil {
		err = fmt.Errorf("listener options refused by %s %s: %w", b.slot.name, v.id, err)
	}
	b.opts[v] = boundOptions{o, err}
	return o, err
}

// Options checks the listener's options against the current version
// (what `fleetcore validate` reports); nil when no version is loaded.
func (b *Binding) Options() error {
	v := b.slot.cur.Load()
	if v == nil {
		return nil
	}
	_, err := plugins.DecodeOptions(v.v, b.raw)
	return err
}

// Info implements plugins.Decoder: the current version's, named after the
// slot; while no version is in service, every transport (a listener of
// either may start and wait for one).
func (b *Binding) Info() plugins.Info {
	if v := b.slot.cur.Load(); v != nil {
		info := v.info
		info.Name = b.slot.name
		return info
	}
	return plugins.Info{Name: b.slot.name, Transports: []plugins.Transport{plugins.TCP, plugins.UDP},
		Description: "drop-in WASM decoder (no version in service)"}
}

// OpenSession implements gateway.SessionOpener: a session of the current
// version with the listener's options, or why there is none (ErrNoVersion,
// a transport the version does not take, options it refuses). The
// session's SessionConfig.Options are replaced by the listener's options
// as the version decodes them.
func (b *Binding) OpenSession(cfg plugins.SessionConfig) (plugins.Session, error) {
	s := b.slot
	for {
		v := s.cur.Load()
		if v == nil {
			id, why := s.Current()
			if id != "" {
				continue // a version went in service meanwhile
			}
			return nil, fmt.Errorf("decoder %s: %w: %s", s.name, ErrNoVersion, why)
		}
		if !v.supports(cfg.Transport) {
			return nil, fmt.Errorf("decoder %s %s does not take transport %s", s.name, v.id, cfg.Transport)
		}
		opts, err := b.options(v)
		if err != nil {
			return nil, err
		}
		if !v.acquire() {
			continue // replaced and closed since Load: take the new one
		}
		cfg.Options = opts
		ss := &slotSession{b: b, cfg: cfg, ref: &sessionRef{v: v}}
		v.sessions.Add(1)
		ss.sess = v.v.NewSession(cfg)
		// A session dropped without Close (replay, tests) still lets
		// its version go once it is garbage.
		ss.cleanup = runtime.AddCleanup(ss, func(r *sessionRef) { r.release() }, ss.ref)
		return ss, nil
	}
}

// NewSession implements plugins.Decoder for callers that do not know
// gateway.SessionOpener: when no session can be opened, the session it
// returns refuses every frame with the reason (wrapping
// plugins.ErrUnsupported and ErrNoVersion or the transport/option error).
func (b *Binding) NewSession(cfg plugins.SessionConfig) plugins.Session {
	sess, err := b.OpenSession(cfg)
	if err != nil {
		return refusingSession{err: fmt.Errorf("%w: %w", plugins.ErrUnsupported, err)}
	}
	return sess
}

// refusingSession is a session that could not be opened.
type refusingSession struct{ err error }

func (r refusingSession) Frame([]byte) (int, error) { return 0, r.err }
func (r refusingSession) Decode([]byte, time.Time) (plugins.Result, error) {
	return plugins.Result{}, r.err
}

// sessionRef is what a session pins: the version it uses. It is apart
// from the session so that a cleanup can release it.
type sessionRef struct {
	mu   sync.Mutex
	v    *version
	done bool
}

// move swaps the pinned version for next (already acquired).
func (r *sessionRef) move(next *version) {
	r.mu.Lock()
	old := r.v
	r.v = next
	r.mu.Unlock()
	next.sessions.Add(1)
	old.sessions.Add(-1)
	old.release()
}

func (r *sessionRef) release() {
	r.mu.Lock()
	v, done := r.v, r.done
	r.done = true
	r.mu.Unlock()
	if !done {
		v.sessions.Add(-1)
		v.release()
	}
}

// slotSession is a session of a slot: the session of the version it
// uses, moved to the current version at frame boundaries when the
// state_version allows.
type slotSession struct {
	b       *Binding
	cfg     plugins.SessionConfig
	ref     *sessionRef
	sess    plugins.Session
	cleanup runtime.Cleanup
	// declined is the current version this session last could not move
	// to (another state_version, options or transport it refuses), so
	// that it is not retried at every frame.
	declined *version
}

// boundary moves the session to the slot's current version when it is
// another one with the same state_version.
func (s *slotSession) boundary() {
	next := s.b.slot.cur.Load()
	v := s.ref.v
	if next == nil || next == v || next == s.declined || next.disabled.Load() {
		return
	}
	log := s.b.slot.log
	decline := func(why string, args ...any) {
		s.declined = next
		log.Debug("session keeps its decoder version: "+why, append([]any{"decoder", s.b.slot.name,
			"version", v.id, "current", next.id}, args...)...)
	}
	if next.state != v.state {
		decline("the current version has another state_version", "state_version", v.state, "current_state_version", next.state)
		return
	}
	if !next.supports(s.cfg.Transport) {
		decline("the current version does not take its transport", "transport", s.cfg.Transport)
		return
	}
	opts, err := s.b.options(next)
	if err != nil {
		decline("the current version refuses the listener's options", "error", err)
		return
	}
	if !next.acquire() {
		return // replaced meanwhile; the next boundary sees its successor
	}
	cfg := s.cfg
	cfg.Options = opts
	ns, ok := next.v.Resume(cfg, s.sess)
	if !ok {
		next.release()
		decline("the current version could not take over its state")
		return
	}
	if c, ok := s.sess.(interface{ Close() }); ok && ns != s.sess {
		c.Close()
	}
	s.sess, s.cfg = ns, cfg
	s.ref.move(next)
}

// Frame implements plugins.Session.
func (s *slotSession) Frame(buf []byte) (int, error) {
	s.boundary()
	return s.sess.Frame(buf)
}

// Decode implements plugins.Session.
func (s *slotSession) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	s.boundary()
	return s.sess.Decode(frame, recv)
}

// Reject implements plugins.Rejecter through the version's session.
func (s *slotSession) Reject(err error) []byte {
	if r, ok := s.sess.(plugins.Rejecter); ok {
		return r.Reject(err)
	}
	return nil
}

// DeviceID implements plugins.DeviceIdentifier through the version's
// session.
func (s *slotSession) DeviceID() string {
	if d, ok := s.sess.(plugins.DeviceIdentifier); ok {
		return d.DeviceID()
	}
	return ""
}

// Version is the decoder version the session uses now.
func (s *slotSession) Version() string { return s.ref.v.id }

// Close implements gateway.SessionCloser: the session lets its version go.
func (s *slotSession) Close() {
	s.cleanup.Stop()
	if c, ok := s.sess.(interface{ Close() }); ok {
		c.Close()
	}
	s.ref.release()
}
