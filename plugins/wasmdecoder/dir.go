package wasmdecoder

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
)

// DefaultPoll is how often Dir.Run rescans the folder when DirConfig.Poll
// is 0.
const DefaultPoll = 2 * time.Second

// MaxFileSize caps a decoder file the folder reads (64 MiB); a bigger
// file is refused unread.
const MaxFileSize = 64 << 20

// DirConfig configures a decoder folder.
type DirConfig struct {
	// Path is the folder; every *.wasm file in it is a decoder.
	Path string
	// Poll is how often Run rescans it (default DefaultPoll).
	Poll time.Duration
	// Builtin reports whether a name is a built-in decoder's: a file
	// declaring one is refused. Nil: none is.
	Builtin func(name string) bool
	// OnDisable is called (from the failing session's goroutine; it must
	// not block) when a version is disabled. Nil: only the log line.
	OnDisable func(Disabled)
	Logger    hclog.Logger
}

// loadFunc compiles and self-tests one file's bytes (Host.Load).
type loadFunc func(ctx context.Context, file string, wasm []byte) (servable, error)

// Dir keeps the decoders of one folder live. Each *.wasm file is loaded
// (compiled and self-tested) when it appears or its bytes change, and only
// then put in service in the Slot of the name it declares; a file that
// fails is refused with a log line and shown in Status while the version
// before it keeps serving; a file removed takes its decoder out of
// service for new connections. Versions disabled by their slot are not
// retried until the file's bytes change. Dir is safe for concurrent use.
type Dir struct {
	cfg  DirConfig
	log  hclog.Logger
	load loadFunc

	mu      sync.Mutex
	files   map[string]*dirEntry // by file name
	slots   map[string]*Slot     // by decoder name, kept once made
	missing bool                 // the folder was missing at the last scan
}

// racyWindow: files modified this recently are hashed even when their
// size and mtime look unchanged.
const racyWindow = 3 * time.Second

type fileStamp struct {
	size  int64
	mtime time.Time
}

// dirEntry is what the folder knows of one file.
type dirEntry struct {
	stamp fileStamp
	hash  [32]byte // of the bytes last looked at (whatever became of them)
	state string   // stateLive, stateRefused or stateDisabled
	err   string   // why refused or disabled
	name  string   // the decoder name the file serves ("" when none)
	ver   *version // the version the file put in service (nil when none)
	retry bool     // refused for a reason that may pass (a name clash): retry every scan
}

// States of Status rows.
const (
	StateLive     = "live"     // in service: new sessions get it
	StatePrevious = "previous" // kept to be restored if the live one is disabled
	StateDraining = "draining" // replaced; sessions that started on it still use it
	StateDisabled = "disabled" // taken out after repeated guest failures (until its file changes)
	StateRefused  = "refused"  // the file's bytes did not load (compile, ABI, meta, self-test, name)
	StateMissing  = "missing"  // a listener names it; no version in service
)

const (
	stateLive     = StateLive
	stateRefused  = StateRefused
	stateDisabled = StateDisabled
)

// Status is one row of Dir.Status: a version, a refused file, or a name
// without a version.
type Status struct {
	Name     string    `json:"name,omitempty"`
	Version  string    `json:"version,omitempty"`
	State    string    `json:"state"`
	File     string    `json:"file,omitempty"`
	Error    string    `json:"error,omitempty"`
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// Sessions is how many sessions use the version now.
	Sessions int64 `json:"sessions"`
	// GuestFailures counts its traps, timeouts and ABI breaches, and
	// Consecutive those in a row (at DirConfig.MaxFailures it is
	// disabled).
	GuestFailures uint64 `json:"guest_failures"`
	Consecutive   int64  `json:"consecutive_failures"`
	LastFailure   string `json:"last_failure,omitempty"`
}

// NewDir returns the folder of cfg.Path, loading its files with h. Call
// Scan once to load what is there (before listeners are planned), then
// Run.
func NewDir(h *Host, cfg DirConfig) *Dir {
	return newDir(func(ctx context.Context, file string, wasm []byte) (servable, error) {
		m, err := h.Load(ctx, filepath.Join(cfg.Path, file), wasm)
		if err != nil {
			return nil, err
		}
		return moduleVersion{m}, nil
	}, cfg)
}

func newDir(load loadFunc, cfg DirConfig) *Dir {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Dir{cfg: cfg, log: cfg.Logger, load: load, files: map[string]*dirEntry{}, slots: map[string]*Slot{}}
}

// Path is the folder.
func (d *Dir) Path() string { return d.cfg.Path }

// Slot returns the slot of a decoder name, making an empty one (every
// session refused with ErrNoVersion) when the folder has no such decoder
// yet: a listener may name a decoder before its file is dropped in.
func (d *Dir) Slot(name string) *Slot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.slotLocked(name)
}

func (d *Dir) slotLocked(name string) *Slot {
	s := d.slots[name]
	if s == nil {
		s = newSlot(name, d.log, d.disabled)
		s.why = fmt.Sprintf("no file in %s declares decoder %s", d.cfg.Path, name)
		d.slots[name] = s
	}
	return s
}

// Bind is Slot(name).Bind(raw): the decoder of a listener.
func (d *Dir) Bind(name string, raw map[string]string) *Binding { return d.Slot(name).Bind(raw) }

// Loaded reports whether a version of the decoder is in service.
func (d *Dir) Loaded(name string) bool {
	d.mu.Lock()
	s := d.slots[name]
	d.mu.Unlock()
	return s != nil && s.cur.Load() != nil
}

// Names returns the decoder names with a version in service, sorted.
func (d *Dir) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, s := range d.slots {
		if s.cur.Load() != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Run rescans the folder every Poll until ctx ends, then takes every
// version out of service (Close). A folder that is missing or unreadable
// is logged once and watched for.
func (d *Dir) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		if err := d.Scan(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("scanning decoder folder", "dir", d.cfg.Path, "error", err)
		}
		select {
		case <-ctx.Done():
			d.Close()
			return nil
		case <-t.C:
		}
	}
}

// Scan looks at the folder once and applies every change. A missing
// folder is not an error (it is logged once; the versions loaded keep
// serving); an unreadable one is. Files that do not load are logged and
// reported by Status.
func (d *Dir) Scan(ctx context.Context) error {
	ents, err := os.ReadDir(d.cfg.Path)
	if errors.Is(err, fs.ErrNotExist) {
		d.mu.Lock()
		first := !d.missing
		d.missing = true
		d.mu.Unlock()
		if first {
			d.log.Warn("decoder folder not found; decoders go live when it appears", "dir", d.cfg.Path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading decoder folder %s: %w", d.cfg.Path, err)
	}
	d.mu.Lock()
	d.missing = false
	d.mu.Unlock()
	seen := map[string]bool{}
	var names []string
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".wasm") {
			continue
		}
		seen[e.Name()] = true
		names = append(names, e.Name())
	}
	// Removals first, so a file waiting for a removed file's name takes it
	// in the same scan.
	d.mu.Lock()
	var gone []*Slot
	for file, ent := range d.files {
		if seen[file] {
			continue
		}
		delete(d.files, file)
		if ent.name != "" {
			d.log.Info("decoder file removed: new connections are refused, open ones finish", "file", file, "decoder", ent.name)
			gone = append(gone, d.slots[ent.name])
		}
	}
	d.mu.Unlock()
	for _, s := range gone {
		s.clear(fmt.Sprintf("decoder file of %s removed from %s", s.name, d.cfg.Path))
	}
	for _, file := range names {
		if err := d.scanFile(ctx, file); err != nil {
			return err
		}
	}
	return nil
}

// scanFile (re)loads one file when its bytes changed.
func (d *Dir) scanFile(ctx context.Context, file string) error {
	p := filepath.Join(d.cfg.Path, file)
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since ReadDir: the next scan drops it
		}
		return fmt.Errorf("reading %s: %w", p, err)
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	d.mu.Lock()
	ent := d.files[file]
	if ent == nil {
		ent = &dirEntry{}
		d.files[file] = ent
	}
	// A file modified within racyWindow may have been rewritten with the
	// same size within the file system's timestamp granularity: its bytes
	// are compared.
	unchanged := ent.state != "" && ent.stamp == st && !ent.retry && time.Since(st.mtime) > racyWindow
	d.mu.Unlock()
	if unchanged {
		return nil
	}
	if fi.Size() > MaxFileSize {
		d.refuse(file, ent, st, [32]byte{}, fmt.Sprintf("file of %d bytes is over the %d-byte cap", fi.Size(), MaxFileSize), false)
		return nil
	}
	wasm, err := os.ReadFile(p)
	if err != nil {
		d.refuse(file, ent, st, [32]byte{}, fmt.Sprintf("reading file: %v", err), false)
		return nil
	}
	sum := sha256.Sum256(wasm)
	d.mu.Lock()
	same := ent.state != "" && ent.hash == sum && !ent.retry
	if same {
		ent.stamp = st // touched, or rewritten with the same bytes
	}
	d.mu.Unlock()
	if same {
		return nil
	}
	sv, err := d.load(ctx, file, wasm)
	if ctx.Err() != nil {
		if sv != nil {
			_ = sv.Close(context.WithoutCancel(ctx))
		}
		return ctx.Err()
	}
	if err != nil {
		d.refuse(file, ent, st, sum, err.Error(), false)
		return nil
	}
	name := sv.Info().Name
	d.mu.Lock()
	why, retry := d.nameProblem(file, name)
	d.mu.Unlock()
	if why != "" {
		_ = sv.Close(ctx)
		d.refuse(file, ent, st, sum, why, retry)
		return nil
	}
	d.mu.Lock()
	oldName := ent.name
	var renamed *Slot
	if oldName != "" && oldName != name {
		renamed = d.slots[oldName]
	}
	s := d.slotLocked(name)
	v := s.newVersion(sv, file, sum)
	ent.stamp, ent.hash, ent.state, ent.err, ent.name, ent.ver, ent.retry = st, sum, stateLive, "", name, v, false
	d.mu.Unlock()
	if renamed != nil {
		renamed.clear(fmt.Sprintf("file %s now declares decoder %s", file, name))
	}
	old, _ := s.Current()
	s.install(v)
	if old != "" {
		d.log.Info("decoder version replaced: new connections and sessions of the same state_version take it at their next frame",
			"file", file, "decoder", name, "old_version", old, "version", v.id, "state_version", v.state)
	} else {
		d.log.Info("decoder loaded", "file", file, "decoder", name, "version", v.id, "transports", transportList(v.info))
	}
	return nil
}

// nameProblem says why file may not serve name ("" when it may), and
// whether the reason may pass by itself (another file holds the name).
func (d *Dir) nameProblem(file, name string) (string, bool) {
	if d.cfg.Builtin != nil && d.cfg.Builtin(name) {
		return fmt.Sprintf("decoder name %s is a built-in decoder's", name), false
	}
	for other, oe := range d.files {
		if other != file && oe.name == name {
			return fmt.Sprintf("decoder name %s is already served by %s", name, other), true
		}
	}
	return "", false
}

func (d *Dir) refuse(file string, ent *dirEntry, st fileStamp, sum [32]byte, why string, retry bool) {
	d.mu.Lock()
	repeat := ent.state == stateRefused && ent.err == why && ent.hash == sum
	ent.stamp, ent.hash, ent.state, ent.err, ent.retry = st, sum, stateRefused, why, retry
	name := ent.name
	d.mu.Unlock()
	var live string
	if name != "" {
		live, _ = d.Slot(name).Current()
	}
	switch {
	case repeat: // already logged
	case live != "":
		d.log.Error("decoder file refused; the version in service keeps serving", "file", file,
			"decoder", name, "version", live, "reason", why)
	default:
		d.log.Error("decoder file refused", "file", file, "reason", why)
	}
}

// disabled is every slot's OnDisable: the file keeps its bytes marked
// disabled (not retried until they change), then the config's hook.
func (d *Dir) disabled(e Disabled) {
	d.mu.Lock()
	if ent := d.files[e.File]; ent != nil && ent.ver != nil && ent.ver.id == e.Version && ent.name == e.Decoder {
		ent.state, ent.err = stateDisabled, e.Reason
	}
	d.mu.Unlock()
	if d.cfg.OnDisable != nil {
		d.cfg.OnDisable(e)
	}
}

// Status lists every version not yet closed (live, previous, draining),
// every refused or disabled file and every name a listener waits for,
// sorted by name, then state, then file.
func (d *Dir) Status() []Status {
	d.mu.Lock()
	slots := make([]*Slot, 0, len(d.slots))
	for _, s := range d.slots {
		slots = append(slots, s)
	}
	var out []Status
	for file, ent := range d.files {
		switch ent.state {
		case stateRefused:
			out = append(out, Status{Name: ent.name, State: StateRefused, File: file, Error: ent.err})
		case stateDisabled:
			st := ent.ver.status(StateDisabled)
			st.Error = ent.err
			out = append(out, st)
		}
	}
	d.mu.Unlock()
	for _, s := range slots {
		out = append(out, s.status()...)
	}
	rank := map[string]int{StateLive: 0, StatePrevious: 1, StateDraining: 2, StateDisabled: 3, StateRefused: 4, StateMissing: 5}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.State != b.State {
			return rank[a.State] < rank[b.State]
		}
		return a.File < b.File
	})
	return out
}

// status lists the slot's open versions that are not disabled (a
// disabled one is its file's row), or a missing row when none is live.
func (s *Slot) status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	var out []Status
	for v := range s.all {
		if v.disabled.Load() {
			continue
		}
		state := StateDraining
		switch v {
		case cur:
			state = StateLive
		case s.prev:
			state = StatePrevious
		}
		out = append(out, v.status(state))
	}
	if cur == nil {
		out = append(out, Status{Name: s.name, State: StateMissing, Error: s.why})
	}
	return out
}

func (v *version) status(state string) Status {
	total, consecutive, last := v.v.Failures()
	return Status{Name: v.slot.name, Version: v.id, State: state, File: v.file, LoadedAt: v.loadedAt,
		Sessions: v.sessions.Load(), GuestFailures: total, Consecutive: consecutive, LastFailure: last}
}

// Close takes every version out of service; each is closed once its last
// session ends (at once when none is open).
func (d *Dir) Close() {
	d.mu.Lock()
	slots := make([]*Slot, 0, len(d.slots))
	for _, s := range d.slots {
		slots = append(slots, s)
	}
	d.files = map[string]*dirEntry{}
	d.mu.Unlock()
	for _, s := range slots {
		s.clear("the decoder folder is closed")
	}
}

func transportList(info plugins.Info) string {
	ts := make([]string, len(info.Transports))
	for i, t := range info.Transports {
		ts[i] = string(t)
	}
	return strings.Join(ts, ",")
}
