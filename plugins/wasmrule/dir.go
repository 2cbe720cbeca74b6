package wasmrule

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
)

// DefaultPollInterval is how often Dir.Run rescans the folder.
const DefaultPollInterval = 3 * time.Second

// TestsSuffix names the optional sibling test file of a rule:
// gps.range.wasm → gps.range.tests.jsonl (speed.limit.check.hcl →
// speed.limit.tests.jsonl).
const TestsSuffix = ".tests.jsonl"

// Dir keeps the rules of one folder live: every *.wasm file (and every
// *.check.hcl declarative check, compiled to a module first) is compiled,
// self-tested and, when that passes, put in service. Scan picks up added,
// replaced and removed files (by size, mtime and content hash); a broken
// file is refused with a log line and the previous version of the same file
// keeps running. Dir is safe for concurrent use.
type Dir struct {
	host     *Host
	path     string
	interval time.Duration

	mu    sync.Mutex
	files map[string]*dirEntry // by file name
}

type fileStamp struct {
	size, testsSize   int64
	mtime, testsMtime time.Time
}

type dirEntry struct {
	stamp    fileStamp // what was last looked at (live or refused)
	hash     [32]byte  // content hash of the live or refused module + tests
	rule     *Rule     // live version, nil when none
	loadedAt time.Time // when rule went live
	refused  string    // why the latest version was refused ("" when live)
	refusedH [32]byte  // hash of the refused version
	retry    bool      // refused for a name clash: try again on every scan
	fixed    bool      // added with AddModule: not a file, Scan leaves it
}

// RuleStatus describes one file of the folder for the API.
type RuleStatus struct {
	File     string    `json:"file"`
	Name     string    `json:"name,omitempty"`
	Version  string    `json:"version,omitempty"`
	Hash     string    `json:"hash,omitempty"`
	Status   string    `json:"status"` // live, disabled, refused
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	Refused  string    `json:"refused,omitempty"` // why the newest file was refused; an older version may still be live
	Meta     *Meta     `json:"meta,omitempty"`
	Stats    *Stats    `json:"stats,omitempty"`
}

// NewDir returns a watcher over path; interval ≤ 0 means
// DefaultPollInterval. Call Scan once to load, then Run.
func NewDir(h *Host, path string, interval time.Duration) *Dir {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	return &Dir{host: h, path: path, interval: interval, files: make(map[string]*dirEntry)}
}

// Run rescans the folder every interval until ctx ends, then closes every
// rule.
func (d *Dir) Run(ctx context.Context) error {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		if err := d.Scan(ctx); err != nil && ctx.Err() == nil {
			d.host.log.Error("scanning rule folder", "dir", d.path, "error", err)
		}
		select {
		case <-ctx.Done():
			return d.Close(context.WithoutCancel(ctx))
		case <-t.C:
		}
	}
}

func statStamp(wasmPath string) (fileStamp, error) {
	fi, err := os.Stat(wasmPath)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if ti, err := os.Stat(testsPath(wasmPath)); err == nil {
		st.testsSize, st.testsMtime = ti.Size(), ti.ModTime()
	}
	return st, nil
}

func testsPath(wasmPath string) string {
	return ruleBase(wasmPath) + TestsSuffix
}

// Scan looks at the folder once and applies every change. It returns an
// error only when the folder cannot be read; refused files are logged and
// reported by Status.
func (d *Dir) Scan(ctx context.Context) error {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("reading rule folder %s: %w", d.path, err)
	}
	// Removals first, so that a file waiting for a removed rule's name can
	// take it in the same scan.
	seen := make(map[string]bool)
	var names []string
	for _, e := range ents {
		if e.IsDir() || !IsRuleFile(e.Name()) {
			continue
		}
		seen[e.Name()] = true
		names = append(names, e.Name())
	}
	d.mu.Lock()
	var gone []*dirEntry
	for name, ent := range d.files {
		if !seen[name] && !ent.fixed {
			delete(d.files, name)
			gone = append(gone, ent)
			if ent.rule != nil {
				d.host.log.Info("rule removed", "file", name, "rule", ent.rule.Name(), "version", ent.rule.Version())
			}
		}
	}
	d.mu.Unlock()
	for _, ent := range gone {
		if ent.rule != nil {
			if err := ent.rule.Close(ctx); err != nil {
				d.host.log.Warn("closing removed rule", "error", err)
			}
		}
	}
	for _, name := range names {
		if err := d.scanFile(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// scanFile (re)loads one file when its stamp changed.
func (d *Dir) scanFile(ctx context.Context, name string) error {
	p := filepath.Join(d.path, name)
	st, err := statStamp(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed between ReadDir and Stat: the next scan drops it
		}
		return fmt.Errorf("reading %s: %w", p, err)
	}
	d.mu.Lock()
	ent := d.files[name]
	if ent == nil {
		ent = &dirEntry{}
		d.files[name] = ent
	}
	unchanged := ent.stamp == st && (ent.rule != nil || ent.refused != "") && !ent.retry
	d.mu.Unlock()
	if unchanged {
		return nil
	}
	wasm, err := os.ReadFile(p)
	if err != nil {
		d.refuse(name, ent, st, [32]byte{}, fmt.Sprintf("reading file: %v", err), false)
		return nil
	}
	testsBytes, err := os.ReadFile(testsPath(p))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.refuse(name, ent, st, [32]byte{}, fmt.Sprintf("reading tests: %v", err), false)
		return nil
	}
	h := sha256.New()
	h.Write(wasm)
	h.Write([]byte{0})
	h.Write(testsBytes)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	d.mu.Lock()
	same := (ent.rule != nil && ent.hash == sum) || (ent.refused != "" && ent.refusedH == sum && !ent.retry)
	if same {
		ent.stamp = st // touched but identical
		if ent.rule != nil && ent.hash == sum {
			ent.refused = "" // back to the live version
		}
	}
	d.mu.Unlock()
	if same {
		return nil
	}
	rule, why := d.load(ctx, p, wasm, testsBytes)
	if ctx.Err() != nil {
		if rule != nil {
			_ = rule.Close(context.WithoutCancel(ctx))
		}
		return ctx.Err()
	}
	if rule == nil {
		d.refuse(name, ent, st, sum, why, false)
		return nil
	}
	d.mu.Lock()
	for other, oe := range d.files {
		if other != name && oe.rule != nil && oe.rule.Name() == rule.Name() {
			d.mu.Unlock()
			_ = rule.Close(ctx)
			d.refuse(name, ent, st, sum, fmt.Sprintf("rule name %s is already served by %s", rule.Name(), other), true)
			return nil
		}
	}
	old := ent.rule
	ent.rule, ent.stamp, ent.hash, ent.refused, ent.loadedAt, ent.retry = rule, st, sum, "", time.Now(), false
	d.mu.Unlock()
	if old != nil {
		d.host.log.Info("rule replaced", "file", name, "rule", rule.Name(),
			"old_version", old.Version(), "version", rule.Version(), "hash", rule.Hash()[:12])
		if err := old.Close(ctx); err != nil {
			d.host.log.Warn("closing replaced rule", "error", err)
		}
	} else {
		d.host.log.Info("rule loaded", "file", name, "rule", rule.Name(), "version", rule.Version(),
			"hash", rule.Hash()[:12], "compile", rule.CompileTime())
	}
	return nil
}

func (d *Dir) load(ctx context.Context, path string, src, testsBytes []byte) (*Rule, string) {
	name := filepath.Base(path)
	wasm, err := ModuleBytes(path, src)
	if err != nil {
		return nil, err.Error()
	}
	rule, err := d.host.Compile(ctx, wasm)
	if err != nil {
		return nil, err.Error()
	}
	var extra []TestCase
	if len(testsBytes) > 0 {
		extra, err = ReadTests(strings.NewReader(string(testsBytes)))
		if err != nil {
			_ = rule.Close(ctx)
			return nil, fmt.Sprintf("%s: %v", ruleBase(name)+TestsSuffix, err)
		}
	}
	if err := rule.SelfTest(ctx, extra); err != nil {
		_ = rule.Close(ctx)
		return nil, err.Error()
	}
	return rule, ""
}

// AddModule serves a rule that is not a file of the folder (a check of the
// config's rules block): source names it in Status and logs (e.g.
// "fleetcore.hcl: check speed.limit"). The module is compiled and
// self-tested like a file; on success it stays live until Close, Scan
// leaves it alone, and a file of the folder with the same rule name is
// refused. The error says why it was refused (also in Status).
func (d *Dir) AddModule(ctx context.Context, source string, wasm []byte) error {
	d.mu.Lock()
	if _, dup := d.files[source]; dup {
		d.mu.Unlock()
		return fmt.Errorf("rule source %s added twice", source)
	}
	ent := &dirEntry{fixed: true}
	d.files[source] = ent
	d.mu.Unlock()
	sum := sha256.Sum256(wasm)
	rule, why := d.load(ctx, source, wasm, nil)
	if rule == nil {
		d.refuse(source, ent, fileStamp{}, sum, why, false)
		return errors.New(why)
	}
	d.mu.Lock()
	for other, oe := range d.files {
		if other != source && oe.rule != nil && oe.rule.Name() == rule.Name() {
			d.mu.Unlock()
			_ = rule.Close(ctx)
			why := fmt.Sprintf("rule name %s is already served by %s", rule.Name(), other)
			d.refuse(source, ent, fileStamp{}, sum, why, false)
			return errors.New(why)
		}
	}
	ent.rule, ent.hash, ent.loadedAt = rule, sum, time.Now()
	d.mu.Unlock()
	d.host.log.Info("rule loaded", "source", source, "rule", rule.Name(), "version", rule.Version(),
		"hash", rule.Hash()[:12], "compile", rule.CompileTime())
	return nil
}

func (d *Dir) refuse(name string, ent *dirEntry, st fileStamp, sum [32]byte, why string, retry bool) {
	d.mu.Lock()
	repeat := ent.refused == why && ent.refusedH == sum
	ent.stamp, ent.refused, ent.refusedH, ent.retry = st, why, sum, retry
	live := ent.rule
	d.mu.Unlock()
	switch {
	case repeat: // already logged
	case live != nil:
		d.host.log.Error("rule file refused; previous version keeps running", "file", name,
			"rule", live.Name(), "version", live.Version(), "reason", why)
	default:
		d.host.log.Error("rule file refused", "file", name, "reason", why)
	}
}

// Rules returns the live (not disabled) rules sorted by name.
func (d *Dir) Rules() []*Rule {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*Rule
	for _, e := range d.files {
		if e.rule != nil && !e.rule.Disabled() {
			out = append(out, e.rule)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// Rule returns the loaded rule with the name (live or disabled), or nil.
func (d *Dir) Rule(name string) *Rule {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.files {
		if e.rule != nil && e.rule.Name() == name {
			return e.rule
		}
	}
	return nil
}

// Status describes every rule file (.wasm, .check.hcl) of the folder, sorted by file name.
func (d *Dir) Status() []RuleStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]RuleStatus, 0, len(d.files))
	for name, e := range d.files {
		s := RuleStatus{File: name, Refused: e.refused, Status: "refused"}
		if e.rule != nil {
			m, st := e.rule.Meta(), e.rule.Stats()
			s.Name, s.Version, s.Hash, s.LoadedAt = m.Name, m.Version, e.rule.Hash(), e.loadedAt
			s.Meta, s.Stats = &m, &st
			s.Status = "live"
			if st.Disabled {
				s.Status = "disabled"
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// Close closes every loaded rule.
func (d *Dir) Close(ctx context.Context) error {
	d.mu.Lock()
	files := d.files
	d.files = make(map[string]*dirEntry)
	d.mu.Unlock()
	var errs []error
	for _, e := range files {
		if e.rule != nil {
			errs = append(errs, e.rule.Close(ctx))
		}
	}
	return errors.Join(errs...)
}
