package wasmrule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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

	// fallback serves while the folder is missing or has no rule file
	// (WithFallback); onFallback says the last Scan did.
	fallback      fs.FS
	fallbackLabel string

	// scanMu makes Scans take turns (the poll and a reload's rescan).
	scanMu sync.Mutex

	mu         sync.Mutex
	files      map[string]*dirEntry // by file name
	onFallback bool
	scanned    bool
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

func statStamp(fsys fs.FS, name string) (fileStamp, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if ti, err := fs.Stat(fsys, testsPath(name)); err == nil {
		st.testsSize, st.testsMtime = ti.Size(), ti.ModTime()
	}
	return st, nil
}

func testsPath(wasmPath string) string {
	return ruleBase(wasmPath) + TestsSuffix
}

// WithFallback makes the folder fall back to the rule files of fsys (for
// fleetcore, the built-in rules embedded in the binary) while it is
// missing or holds no rule file: Scan then serves those files as if they
// were the folder's, under the names label/FILE, and logs the switch. Once
// the folder holds a rule file it is the rule set again (the fallback's
// rules are closed). Call it before the first Scan.
func (d *Dir) WithFallback(fsys fs.FS, label string) *Dir {
	d.fallback, d.fallbackLabel = fsys, label
	return d
}

// UsingFallback reports whether the last Scan served the fallback files.
func (d *Dir) UsingFallback() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.onFallback
}

// ruleFiles lists the rule files of fsys's root.
func ruleFiles(fsys fs.FS) ([]string, error) {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && IsRuleFile(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// source picks what Scan reads: the folder, or the fallback while the
// folder is missing or holds no rule file. prefix is put before file names
// ("" for the folder).
func (d *Dir) source() (fsys fs.FS, prefix string, names []string, err error) {
	names, err = ruleFiles(os.DirFS(d.path))
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return nil, "", nil, fmt.Errorf("reading rule folder %s: %w", d.path, err)
	}
	if d.fallback == nil || len(names) > 0 {
		if missing {
			return nil, "", nil, fmt.Errorf("reading rule folder %s: %w", d.path, err)
		}
		d.switchSource(false)
		return os.DirFS(d.path), "", names, nil
	}
	names, err = ruleFiles(d.fallback)
	if err != nil {
		return nil, "", nil, fmt.Errorf("reading the %s rules: %w", d.fallbackLabel, err)
	}
	d.switchSource(true)
	return d.fallback, d.fallbackLabel + "/", names, nil
}

// switchSource records which source Scan reads and logs a change.
func (d *Dir) switchSource(fallback bool) {
	d.mu.Lock()
	changed := d.onFallback != fallback || !d.scanned
	d.onFallback, d.scanned = fallback, true
	d.mu.Unlock()
	switch {
	case !changed:
	case fallback:
		d.host.log.Info("rule folder missing or without rule files: serving the "+d.fallbackLabel+" rules (embedded in the binary) until it has some", "dir", d.path)
	case d.fallback != nil:
		d.host.log.Info("rule folder has rule files: serving them (the "+d.fallbackLabel+" rules are not in service)", "dir", d.path)
	}
}

// scanJob is one changed file of a Scan: read in turn, compiled and
// self-tested in parallel, put in service in name order.
type scanJob struct {
	name, path  string // entry name; path for messages
	ent         *dirEntry
	st          fileStamp
	sum         [32]byte
	wasm, tests []byte
	rule        *Rule
	why         string
}

// Scan looks at the folder once and applies every change. It returns an
// error only when the folder cannot be read; refused files are logged and
// reported by Status. Changed files are compiled and self-tested in
// parallel (at most GOMAXPROCS at once: compiling is CPU-bound) and go
// into service in file name order, so that which of two files with the
// same rule name wins does not depend on which compiled first.
func (d *Dir) Scan(ctx context.Context) error {
	d.scanMu.Lock()
	defer d.scanMu.Unlock()
	fsys, prefix, files, err := d.source()
	if err != nil {
		return err
	}
	// Removals first, so that a file waiting for a removed rule's name can
	// take it in the same scan.
	seen := make(map[string]bool)
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = prefix + f
		seen[names[i]] = true
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
	var jobs []*scanJob
	for i, f := range files {
		j, err := d.prepare(fsys, f, names[i])
		if err != nil {
			return err
		}
		if j != nil {
			jobs = append(jobs, j)
		}
	}
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j.rule, j.why = d.load(ctx, j.path, j.wasm, j.tests)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		for _, j := range jobs {
			if j.rule != nil {
				_ = j.rule.Close(context.WithoutCancel(ctx))
			}
		}
		return ctx.Err()
	}
	for _, j := range jobs {
		d.commit(ctx, j)
	}
	return nil
}

// prepare reads one file of fsys (entry name name) when its stamp
// changed; it returns the job to compile, or nil when nothing changed or
// the file was refused already.
func (d *Dir) prepare(fsys fs.FS, file, name string) (*scanJob, error) {
	p := filepath.Join(d.path, file)
	if fsys != nil && name != file {
		p = name // a fallback file
	}
	st, err := statStamp(fsys, file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // removed between ReadDir and Stat: the next scan drops it
		}
		return nil, fmt.Errorf("reading %s: %w", p, err)
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
		return nil, nil
	}
	wasm, err := fs.ReadFile(fsys, file)
	if err != nil {
		d.refuse(name, ent, st, [32]byte{}, fmt.Sprintf("reading file: %v", err), false)
		return nil, nil
	}
	testsBytes, err := fs.ReadFile(fsys, testsPath(file))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.refuse(name, ent, st, [32]byte{}, fmt.Sprintf("reading tests: %v", err), false)
		return nil, nil
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
		return nil, nil
	}
	return &scanJob{name: name, path: p, ent: ent, st: st, sum: sum, wasm: wasm, tests: testsBytes}, nil
}

// commit puts a compiled job in service (or refuses it).
func (d *Dir) commit(ctx context.Context, j *scanJob) {
	name, ent, st, sum, rule := j.name, j.ent, j.st, j.sum, j.rule
	if rule == nil {
		d.refuse(name, ent, st, sum, j.why, false)
		return
	}
	d.mu.Lock()
	for other, oe := range d.files {
		if other != name && oe.rule != nil && oe.rule.Name() == rule.Name() {
			d.mu.Unlock()
			_ = rule.Close(ctx)
			d.refuse(name, ent, st, sum, fmt.Sprintf("rule name %s is already served by %s", rule.Name(), other), true)
			return
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
