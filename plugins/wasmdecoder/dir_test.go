package wasmdecoder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

// A file that does not load is refused with its reason; the version in
// service keeps serving, and the refused bytes are not loaded again until
// they change.
func TestDirRefusedFileKeepsThePreviousVersion(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0")
	b := td.dir.Bind("line", nil)
	s := open(t, b, plugins.TCP)
	td.write("line.wasm", "name=line version=1.1.0 fail=ack")
	r, ok := td.row("line", StateRefused)
	if !ok || r.File != "line.wasm" || !strings.Contains(r.Error, `self-test "ack"`) {
		t.Fatalf("refused row = %+v (%v); status %+v", r, ok, td.dir.Status())
	}
	if id, _ := td.dir.Slot("line").Current(); id != "1.0.0" {
		t.Fatalf("current after a refused file = %q, want 1.0.0", id)
	}
	if ack, err := decode(t, s, "d,1"); err != nil || ack != "1.0.0 1" {
		t.Errorf("open session after a refused file: %q, %v", ack, err)
	}
	loads := td.loader.count()
	if err := os.Chtimes(filepath.Join(td.path, "line.wasm"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	td.scan()
	td.scan()
	if td.loader.count() != loads {
		t.Errorf("refused bytes loaded %d more times", td.loader.count()-loads)
	}
	td.write("line.wasm", "name=line version=1.1.1")
	if id, _ := td.dir.Slot("line").Current(); id != "1.1.1" {
		t.Errorf("current after fixed bytes = %q, want 1.1.1", id)
	}
	if _, ok := td.row("line", StateRefused); ok {
		t.Error("refused row kept after the file was fixed")
	}
	s.Close()
}

// A removed file refuses new sessions with a clear reason; open ones
// finish on their version, which is closed after them. The file coming
// back serves again.
func TestDirRemovedFile(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("line.wasm", "name=line version=1.0.0")
	b := td.dir.Bind("line", nil)
	s := open(t, b, plugins.UDP)
	td.remove("line.wasm")
	_, err := b.OpenSession(plugins.SessionConfig{Transport: plugins.UDP})
	if !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("OpenSession after the file was removed: %v", err)
	}
	if ack, err := s.Decode([]byte("d,1"), time.Now()); err != nil || string(ack.Ack) != "1.0.0 1" {
		t.Errorf("open session after removal: %q, %v", ack.Ack, err)
	}
	if r, ok := td.row("line", StateDraining); !ok || r.Sessions != 1 {
		t.Errorf("draining row = %+v (%v)", r, ok)
	}
	m := td.loader.module(t, "1.0.0")
	s.Close()
	if !m.closed.Load() {
		t.Error("removed version not closed after its last session")
	}
	td.write("line.wasm", "name=line version=1.0.0")
	if !td.dir.Loaded("line") {
		t.Error("the file coming back does not serve")
	}
}

// Names: a built-in decoder's name is refused; a second file declaring a
// name another file serves is refused until that file goes; a file that
// changes its name moves its decoder.
func TestDirNames(t *testing.T) {
	td := newTestDir(t, 3)
	td.write("builtin.wasm", "name=teltonika version=1.0.0")
	if td.dir.Loaded("teltonika") {
		t.Fatalf("a built-in name went live: %+v", td.dir.Status())
	}
	if r, ok := rowOfFile(td.dir, "builtin.wasm"); !ok || r.State != StateRefused || !strings.Contains(r.Error, "built-in") {
		t.Errorf("built-in name row = %+v (%v)", r, ok)
	}
	td.write("a.wasm", "name=line version=1.0.0")
	td.write("b.wasm", "name=line version=2.0.0")
	if id, _ := td.dir.Slot("line").Current(); id != "1.0.0" {
		t.Fatalf("current = %q, want a.wasm's 1.0.0", id)
	}
	if r, ok := rowOfFile(td.dir, "b.wasm"); !ok || r.State != StateRefused || !strings.Contains(r.Error, "already served by a.wasm") {
		t.Errorf("clash row = %+v (%v)", r, ok)
	}
	td.remove("a.wasm")
	if id, _ := td.dir.Slot("line").Current(); id != "2.0.0" {
		t.Errorf("after a.wasm left: current %q, want b.wasm's 2.0.0", id)
	}
	td.write("b.wasm", "name=other version=3.0.0")
	if td.dir.Loaded("line") || !td.dir.Loaded("other") {
		t.Errorf("after b.wasm renamed its decoder: line %v, other %v; want false, true", td.dir.Loaded("line"), td.dir.Loaded("other"))
	}
	if got := td.dir.Names(); len(got) != 1 || got[0] != "other" {
		t.Errorf("Names = %v", got)
	}
}

func rowOfFile(d *Dir, file string) (Status, bool) {
	for _, s := range d.Status() {
		if s.File == file {
			return s, true
		}
	}
	return Status{}, false
}

// A missing folder is no error: it is watched for, and its decoders go
// live once it appears. Run polls it and closes everything at the end.
func TestDirMissingFolderThenRun(t *testing.T) {
	td := newTestDir(t, 3)
	missing := filepath.Join(td.path, "later")
	l := &fakeLoader{max: 3}
	d := newDir(l.load, DirConfig{Path: missing, Poll: 10 * time.Millisecond})
	if err := d.Scan(context.Background()); err != nil {
		t.Fatalf("Scan of a missing folder: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	if err := os.Mkdir(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(missing, "line.wasm"), []byte("name=line version=1.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !d.Loaded("line"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("decoder of a folder that appeared never went live")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d.Loaded("line") || !l.modules[0].closed.Load() {
		t.Error("Run's end did not take the versions out of service and close them")
	}
}

// Only *.wasm files are decoders: temporary copies, other files and
// folders are not looked at.
func TestDirIgnoresOtherFiles(t *testing.T) {
	td := newTestDir(t, 3)
	for _, name := range []string{".line.wasm.tmp", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(td.path, name), []byte("name=x version=1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(td.path, "sub.wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	td.scan()
	if td.loader.count() != 0 || len(td.dir.Status()) != 0 {
		t.Errorf("loaded %d files, status %+v; want nothing from files that are not *.wasm", td.loader.count(), td.dir.Status())
	}
}
