package wasmdecoder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// fakeModule is a servable that stands for a loaded WASM module, built
// from a one-line spec instead of wasm bytes, so the folder and slot logic
// are tested without compiling anything:
//
//	name=x version=1.0.0 state=1 mode=ok|trap transports=tcp,udp option=k
//
// Its sessions frame lines "DEV,SEQ\n" and ack "<version> SEQ\n"; the
// line "bad" is malformed (an ordinary refusal); in mode trap every
// Decode is a guest failure.
type fakeModule struct {
	name, version, mode string
	state               int
	transports          []plugins.Transport
	option              string
	closed              atomic.Bool
	// used is set when a closed module is used: the test fails on it.
	used atomic.Bool

	// The host's failure accounting, as Module does it.
	max         int
	failures    atomic.Uint64
	consecutive atomic.Int64
	disabled    atomic.Bool
	mu          sync.Mutex
	last        string
	onDisabled  func(string)
}

var errFakeDisabled = errors.New("module disabled")

func (m *fakeModule) OnDisabled(fn func(string)) {
	m.mu.Lock()
	m.onDisabled = fn
	m.mu.Unlock()
}

func (m *fakeModule) Failures() (uint64, int64, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures.Load(), m.consecutive.Load(), m.last
}

// outcome counts a decode's result like the host: guest failures in a
// row disable the module at max.
func (m *fakeModule) outcome(err error) error {
	if !errors.Is(err, ErrGuest) {
		m.consecutive.Store(0)
		return err
	}
	m.failures.Add(1)
	m.mu.Lock()
	m.last = err.Error()
	fn := m.onDisabled
	m.mu.Unlock()
	if n := m.consecutive.Add(1); n >= int64(m.max) && m.disabled.CompareAndSwap(false, true) && fn != nil {
		fn(fmt.Sprintf("%d consecutive guest failures; the last: %v", n, err))
	}
	return err
}

var optDoc = "a test option"

func parseFake(spec string) (*fakeModule, error) {
	m := &fakeModule{mode: "ok", state: 1, transports: []plugins.Transport{plugins.TCP, plugins.UDP}}
	for _, kv := range strings.Fields(spec) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "name":
			m.name = v
		case "version":
			m.version = v
		case "state":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, err
			}
			m.state = n
		case "mode":
			m.mode = v
		case "transports":
			m.transports = nil
			for _, t := range strings.Split(v, ",") {
				m.transports = append(m.transports, plugins.Transport(t))
			}
		case "option":
			m.option = v
		case "fail":
			return nil, fmt.Errorf("self-test %q: want ack %q, got %q", v, "ok", "nok")
		default:
			return nil, fmt.Errorf("fake spec: unknown key %q", k)
		}
	}
	if m.name == "" || m.version == "" {
		return nil, errors.New("fake spec: name and version required")
	}
	return m, nil
}

func (m *fakeModule) Info() plugins.Info {
	info := plugins.Info{Name: m.name, Transports: m.transports, Description: "fake"}
	if m.option != "" {
		info.Options = []plugins.Option{plugins.StringOption{Name: m.option, Doc: optDoc}}
	}
	return info
}

func (m *fakeModule) NewSession(cfg plugins.SessionConfig) plugins.Session {
	s := &fakeSession{m: m}
	if m.option != "" {
		s.opt = plugins.StringOption{Name: m.option, Doc: optDoc}.Get(cfg.Options)
	}
	return s
}

func (m *fakeModule) Resume(cfg plugins.SessionConfig, from plugins.Session) (plugins.Session, bool) {
	f, ok := from.(*fakeSession)
	if !ok {
		return nil, false
	}
	s := m.NewSession(cfg).(*fakeSession)
	s.dev = f.dev
	return s, true
}

func (m *fakeModule) Version() string   { return m.version }
func (m *fakeModule) StateVersion() int { return m.state }
func (m *fakeModule) Close(context.Context) error {
	if m.closed.Swap(true) {
		return errors.New("closed twice")
	}
	return nil
}

type fakeSession struct {
	m   *fakeModule
	dev string
	opt string
}

func (s *fakeSession) Frame(b []byte) (int, error) {
	if s.m.closed.Load() {
		s.m.used.Store(true)
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i + 1, nil
	}
	return 0, nil
}

func (s *fakeSession) Decode(f []byte, recv time.Time) (plugins.Result, error) {
	if s.m.closed.Load() {
		s.m.used.Store(true)
	}
	if s.m.disabled.Load() {
		return plugins.Result{}, errFakeDisabled
	}
	res, err := s.decode(f, recv)
	return res, s.m.outcome(err)
}

func (s *fakeSession) decode(f []byte, recv time.Time) (plugins.Result, error) {
	if s.m.mode == "trap" {
		return plugins.Result{}, fmt.Errorf("%w: wasm trap: unreachable in fc_decode", ErrGuest)
	}
	line := strings.TrimSpace(string(f))
	dev, seq, ok := strings.Cut(line, ",")
	if !ok {
		return plugins.Result{}, fmt.Errorf("%w: %q", plugins.ErrMalformed, line)
	}
	if dev != "" {
		s.dev = dev
	}
	sig := signal.New(s.dev, recv)
	sig.SetAttr("version", s.m.version)
	return plugins.Result{Signals: []signal.Signal{sig}, Ack: []byte(s.m.version + " " + seq + s.opt), DeviceID: s.dev}, nil
}

func (s *fakeSession) DeviceID() string { return s.dev }

// fakeLoader loads fake specs and counts the loads.
type fakeLoader struct {
	max     int // the host's MaxFailures
	mu      sync.Mutex
	loads   int
	modules []*fakeModule
}

func (l *fakeLoader) load(_ context.Context, file string, wasm []byte) (servable, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loads++
	m, err := parseFake(string(wasm))
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", file, err)
	}
	m.max = l.max
	l.modules = append(l.modules, m)
	return m, nil
}

func (l *fakeLoader) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loads
}

// module returns the loaded module of a version (the latest loaded).
func (l *fakeLoader) module(t *testing.T, version string) *fakeModule {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.modules) - 1; i >= 0; i-- {
		if l.modules[i].version == version {
			return l.modules[i]
		}
	}
	t.Fatalf("no module of version %s loaded", version)
	return nil
}

// testDir is a folder of fake decoders.
type testDir struct {
	t        *testing.T
	path     string
	loader   *fakeLoader
	dir      *Dir
	mu       sync.Mutex
	disabled []Disabled
}

func newTestDir(t *testing.T, maxFailures int) *testDir {
	t.Helper()
	td := &testDir{t: t, path: t.TempDir(), loader: &fakeLoader{max: maxFailures}}
	td.dir = newDir(td.loader.load, DirConfig{
		Path:    td.path,
		Builtin: func(name string) bool { return name == "teltonika" },
		OnDisable: func(d Disabled) {
			td.mu.Lock()
			td.disabled = append(td.disabled, d)
			td.mu.Unlock()
		},
	})
	t.Cleanup(func() {
		td.dir.Close()
		td.loader.mu.Lock()
		defer td.loader.mu.Unlock()
		for _, m := range td.loader.modules {
			if m.used.Load() {
				t.Errorf("module %s %s was used after it was closed", m.name, m.version)
			}
		}
	})
	return td
}

// write replaces a file's bytes (with a new mtime, as a copy would) and
// scans.
func (td *testDir) write(file, spec string) {
	td.t.Helper()
	p := filepath.Join(td.path, file)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(spec), 0o644); err != nil {
		td.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		td.t.Fatal(err)
	}
	td.scan()
}

func (td *testDir) remove(file string) {
	td.t.Helper()
	if err := os.Remove(filepath.Join(td.path, file)); err != nil {
		td.t.Fatal(err)
	}
	td.scan()
}

func (td *testDir) scan() {
	td.t.Helper()
	if err := td.dir.Scan(context.Background()); err != nil {
		td.t.Fatal(err)
	}
}

// row returns the Status row of a name and state ("" state: the first).
func (td *testDir) row(name, state string) (Status, bool) {
	for _, s := range td.dir.Status() {
		if s.Name == name && (state == "" || s.State == state) {
			return s, true
		}
	}
	return Status{}, false
}

func open(t *testing.T, b *Binding, tr plugins.Transport) *slotSession {
	t.Helper()
	s, err := b.OpenSession(plugins.SessionConfig{Transport: tr, MaxFrame: 1024})
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	return s.(*slotSession)
}

// decode frames and decodes one line, returning the ack.
func decode(t *testing.T, s plugins.Session, line string) (string, error) {
	t.Helper()
	buf := []byte(line + "\n")
	n, err := s.Frame(buf)
	if err != nil {
		return "", err
	}
	if n != len(buf) {
		t.Fatalf("Frame(%q) = %d, want %d", line, n, len(buf))
	}
	res, err := s.Decode(buf[:n], time.Unix(1767225600, 0).UTC())
	return string(res.Ack), err
}

func TestSlotEmptyRefusesThenServes(t *testing.T) {
	td := newTestDir(t, 3)
	b := td.dir.Bind("line", nil)
	if got := b.Info(); got.Name != "line" || len(got.Transports) != 2 {
		t.Errorf("Info of an empty slot = %+v, want name line and both transports", got)
	}
	_, err := b.OpenSession(plugins.SessionConfig{Transport: plugins.TCP})
	if !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "no file in") {
		t.Fatalf("OpenSession on an empty slot: %v, want ErrNoVersion saying no file declares it", err)
	}
	// Callers that do not know SessionOpener get a session refusing
	// every frame with the reason.
	if _, err := decode(t, b.NewSession(plugins.SessionConfig{Transport: plugins.TCP}), "d1,1"); !errors.Is(err, plugins.ErrUnsupported) || !errors.Is(err, ErrNoVersion) {
		t.Errorf("NewSession of an empty slot decodes with %v, want ErrUnsupported and ErrNoVersion", err)
	}
	if r, ok := td.row("line", StateMissing); !ok || r.Error == "" {
		t.Errorf("Status has no missing row for a bound empty slot: %+v", td.dir.Status())
	}

	td.write("line.wasm", "name=line version=1.0.0")
	s := open(t, b, plugins.TCP)
	if ack, err := decode(t, s, "d1,1"); err != nil || ack != "1.0.0 1" {
		t.Fatalf("decode = %q, %v; want the 1.0.0 ack", ack, err)
	}
	if r, ok := td.row("line", StateLive); !ok || r.Version != "1.0.0" || r.File != "line.wasm" || r.Sessions != 1 {
		t.Errorf("live row = %+v (%v)", r, ok)
	}
	s.Close()
	if r, _ := td.row("line", StateLive); r.Sessions != 0 {
		t.Errorf("sessions after Close = %d, want 0", r.Sessions)
	}
}

// A new version of the same state_version takes over at the next frame
// boundary with the session's state (the device id); the version before
// it is kept as previous and closed once neither the slot nor a session
// holds it.
func TestSlotSwapSameStateVersion(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0")
	b := td.dir.Bind("line", nil)
	s := open(t, b, plugins.TCP)
	if ack, _ := decode(t, s, "dev7,1"); ack != "1.0.0 1" {
		t.Fatalf("ack %q", ack)
	}
	td.write("line.wasm", "name=line version=1.1.0")
	ack, err := decode(t, s, ",2") // no device: it must come from the state
	if err != nil || ack != "1.1.0 2" {
		t.Fatalf("after the swap: %q, %v; want the 1.1.0 ack", ack, err)
	}
	if s.DeviceID() != "dev7" || s.Version() != "1.1.0" {
		t.Errorf("session after the swap: device %q version %q; want dev7 on 1.1.0", s.DeviceID(), s.Version())
	}
	v1 := td.loader.module(t, "1.0.0")
	if v1.closed.Load() {
		t.Error("1.0.0 closed while it is the previous version")
	}
	if _, ok := td.row("line", StatePrevious); !ok {
		t.Errorf("no previous row: %+v", td.dir.Status())
	}
	td.write("line.wasm", "name=line version=1.2.0")
	if !v1.closed.Load() {
		t.Error("1.0.0 still open after it stopped being the previous version and no session uses it")
	}
	if got := td.dir.Slot("line").Open(); got != 2 {
		t.Errorf("open versions = %d, want 2 (live and previous)", got)
	}
	s.Close()
}

// Sessions whose state_version differs keep their version until they
// close (it is then "draining"); new sessions get the new one.
func TestSlotSwapOtherStateVersionDrains(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0 state=1")
	b := td.dir.Bind("line", nil)
	old := open(t, b, plugins.TCP)
	if _, err := decode(t, old, "dev1,1"); err != nil {
		t.Fatal(err)
	}
	td.write("line.wasm", "name=line version=2.0.0 state=2")
	td.write("line.wasm", "name=line version=2.1.0 state=2")
	if ack, _ := decode(t, old, "dev1,2"); ack != "1.0.0 2" {
		t.Errorf("old session after two new versions of another state_version: ack %q, want 1.0.0's", ack)
	}
	if r, ok := td.row("line", StateDraining); !ok || r.Version != "1.0.0" || r.Sessions != 1 {
		t.Errorf("draining row = %+v (%v); status %+v", r, ok, td.dir.Status())
	}
	fresh := open(t, b, plugins.TCP)
	if ack, _ := decode(t, fresh, "dev2,1"); ack != "2.1.0 1" {
		t.Errorf("new session: ack %q, want 2.1.0's", ack)
	}
	v1 := td.loader.module(t, "1.0.0")
	if v1.closed.Load() {
		t.Fatal("1.0.0 closed while a session uses it")
	}
	old.Close()
	if !v1.closed.Load() {
		t.Error("1.0.0 not closed once its last session closed")
	}
	if _, ok := td.row("line", StateDraining); ok {
		t.Error("draining row left after the version closed")
	}
	fresh.Close()
}

// A session dropped without Close still lets its version go once it is
// garbage (replay and tests do not call Close).
func TestSlotSessionCleanup(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0 state=1")
	b := td.dir.Bind("line", nil)
	s := open(t, b, plugins.TCP)
	runtime.KeepAlive(s)
	td.write("line.wasm", "name=line version=2.0.0 state=2")
	td.write("line.wasm", "name=line version=3.0.0 state=3")
	v1 := td.loader.module(t, "1.0.0")
	for i := 0; i < 100 && !v1.closed.Load(); i++ {
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
	}
	if !v1.closed.Load() {
		t.Error("version of an unreachable session never closed")
	}
}

// Guest failures in a row disable the version and restore the previous
// one; ordinary refusals neither count nor disable; the disabled bytes are
// not retried until they change.
func TestSlotDisableRestoresPrevious(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0")
	b := td.dir.Bind("line", nil)
	td.write("line.wasm", "name=line version=1.1.0 mode=trap")
	s := open(t, b, plugins.TCP)
	other := open(t, b, plugins.TCP)
	for i := 0; i < 2; i++ {
		if _, err := decode(t, s, "d,1"); !errors.Is(err, ErrGuest) {
			t.Fatalf("trap %d: %v", i, err)
		}
	}
	if r, _ := td.row("line", StateLive); r.Version != "1.1.0" || r.Consecutive != 2 || r.GuestFailures != 2 || !strings.Contains(r.LastFailure, "trap") {
		t.Errorf("live row after 2 traps = %+v", r)
	}
	// The third guest failure in a row, from another session, disables it.
	if _, err := decode(t, other, "d,1"); !errors.Is(err, ErrGuest) {
		t.Fatal(err)
	}
	td.mu.Lock()
	got := append([]Disabled(nil), td.disabled...)
	td.mu.Unlock()
	if len(got) != 1 || got[0].Version != "1.1.0" || got[0].Restored != "1.0.0" || got[0].File != "line.wasm" || !strings.Contains(got[0].Reason, "3 consecutive") {
		t.Fatalf("disabled events = %+v", got)
	}
	if id, _ := td.dir.Slot("line").Current(); id != "1.0.0" {
		t.Errorf("current after disable = %q, want 1.0.0 restored", id)
	}
	if r, ok := td.row("line", StateDisabled); !ok || r.Version != "1.1.0" || r.File != "line.wasm" || !strings.Contains(r.Error, "consecutive guest failures") {
		t.Errorf("disabled row = %+v (%v)", r, ok)
	}
	// Same state_version: the failing session moves to the restored one.
	if ack, err := decode(t, s, "d,2"); err != nil || ack != "1.0.0 2" {
		t.Errorf("session after the restore: %q, %v; want 1.0.0's ack", ack, err)
	}
	loads := td.loader.count()
	td.scan()
	if err := os.Chtimes(filepath.Join(td.path, "line.wasm"), time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	td.scan()
	if td.loader.count() != loads {
		t.Error("the disabled file was loaded again although its bytes did not change")
	}
	td.write("line.wasm", "name=line version=1.2.0")
	if id, _ := td.dir.Slot("line").Current(); id != "1.2.0" || td.loader.count() != loads+1 {
		t.Errorf("after new bytes: current %q, loads %d; want 1.2.0 loaded once more", id, td.loader.count()-loads)
	}
	if _, ok := td.row("line", StateDisabled); ok {
		t.Error("disabled row kept after the file changed")
	}
	s.Close()
	other.Close()
}

// A disabled version with no previous one leaves the slot empty: new
// connections are refused saying why.
func TestSlotDisableWithoutPrevious(t *testing.T) {
	td := newTestDir(t, 1)
	td.write("line.wasm", "name=line version=1.0.0 mode=trap")
	b := td.dir.Bind("line", nil)
	s := open(t, b, plugins.UDP)
	if _, err := s.Decode([]byte("d,1"), time.Now()); !errors.Is(err, ErrGuest) {
		t.Fatal(err)
	}
	_, err := b.OpenSession(plugins.SessionConfig{Transport: plugins.UDP})
	if !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("OpenSession after the only version was disabled: %v", err)
	}
	td.mu.Lock()
	if len(td.disabled) != 1 || td.disabled[0].Restored != "" {
		t.Errorf("disabled events = %+v", td.disabled)
	}
	td.mu.Unlock()
	s.Close()
	if !td.loader.module(t, "1.0.0").closed.Load() {
		t.Error("disabled version not closed after its last session")
	}
}

// Options are decoded per version; a version that refuses the listener's
// options refuses new sessions, and sessions do not move to it.
func TestSlotOptionsPerVersion(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0 option=suffix")
	b := td.dir.Bind("line", map[string]string{"suffix": "!"})
	if err := b.Options(); err != nil {
		t.Fatal(err)
	}
	s := open(t, b, plugins.TCP)
	if ack, _ := decode(t, s, "d,1"); ack != "1.0.0 1!" {
		t.Errorf("ack %q, want the option's suffix", ack)
	}
	td.write("line.wasm", "name=line version=1.1.0")
	if err := b.Options(); err == nil {
		t.Error("Options() accepts an option the current version does not declare")
	}
	if _, err := b.OpenSession(plugins.SessionConfig{Transport: plugins.TCP}); err == nil || !strings.Contains(err.Error(), "listener options refused by line 1.1.0") {
		t.Errorf("OpenSession with options 1.1.0 refuses: %v", err)
	}
	if ack, _ := decode(t, s, "d,2"); ack != "1.0.0 2!" {
		t.Errorf("session moved to a version that refuses its options: ack %q", ack)
	}
	s.Close()
}

func TestSlotTransports(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0 transports=tcp")
	b := td.dir.Bind("line", nil)
	if _, err := b.OpenSession(plugins.SessionConfig{Transport: plugins.UDP}); err == nil || !strings.Contains(err.Error(), "does not take transport udp") {
		t.Errorf("udp session of a tcp-only version: %v", err)
	}
	if got := b.Info().Transports; len(got) != 1 || got[0] != plugins.TCP {
		t.Errorf("Info().Transports = %v", got)
	}
}

// Sessions decode while versions are swapped, disabled and removed from
// other goroutines (run with -race): nothing is used after it is closed
// (checked at cleanup) and every version ends closed.
func TestSlotHammer(t *testing.T) {
	td := newTestDir(t, 2)
	td.write("line.wasm", "name=line version=0 state=1")
	b := td.dir.Bind("line", nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := b.OpenSession(plugins.SessionConfig{Transport: plugins.TCP})
				if err != nil {
					continue
				}
				for i := 0; i < 20; i++ {
					buf := []byte("d,1\n")
					if _, err := s.Frame(buf); err != nil {
						break
					}
					if _, err := s.Decode(buf, time.Now()); err != nil && !errors.Is(err, ErrGuest) && !errors.Is(err, errFakeDisabled) {
						t.Errorf("decode: %v", err)
					}
				}
				s.(*slotSession).Close()
			}
		}()
	}
	for i := 1; i <= 60; i++ {
		spec := fmt.Sprintf("name=line version=%d state=%d", i, 1+i%3)
		if i%5 == 0 {
			spec += " mode=trap"
		}
		td.write("line.wasm", spec)
		if i%17 == 0 {
			td.remove("line.wasm")
		}
	}
	close(stop)
	wg.Wait()
	td.dir.Close()
	td.loader.mu.Lock()
	defer td.loader.mu.Unlock()
	for _, m := range td.loader.modules {
		if !m.closed.Load() {
			t.Errorf("version %s never closed", m.version)
		}
	}
}
