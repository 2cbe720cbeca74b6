// Package builtinrules embeds the built-in quality rules (the compiled
// checks-wasm/rules/*, gzipped by `make rules` into rules/) into the
// fleetcore binary, so that a copied binary runs with its rules: `fleetcore
// serve` serves them while rules.dir is missing or holds no rule file.
package builtinrules

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed rules
var files embed.FS

// FS returns the built-in rules as a flat file system of NAME.wasm files
// (decompressed when read), empty when the binary was built without `make
// rules`.
func FS() fs.FS {
	m := memFS{}
	ents, _ := files.ReadDir("rules")
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".wasm.gz"); ok && !e.IsDir() {
			m[name+".wasm"] = "rules/" + e.Name()
		}
	}
	return m
}

// Names lists the file names of FS, sorted.
func Names() []string {
	m := FS().(memFS)
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// memFS maps a rule file name to its gzipped file in the embedded FS.
type memFS map[string]string

var (
	_ fs.ReadDirFS  = memFS{}
	_ fs.ReadFileFS = memFS{}
	_ fs.StatFS     = memFS{}
)

func (m memFS) ReadFile(name string) ([]byte, error) {
	gz, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	raw, err := files.ReadFile(gz)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading built-in rule %s: %w", name, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("reading built-in rule %s: %w", name, err)
	}
	return b, nil
}

func (m memFS) Stat(name string) (fs.FileInfo, error) {
	if name == "." {
		return info{name: ".", dir: true}, nil
	}
	gz, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	raw, err := files.ReadFile(gz)
	if err != nil || len(raw) < 4 {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.Join(fs.ErrInvalid, err)}
	}
	// ISIZE, the gzip trailer: the uncompressed size mod 2^32 (a rule is
	// far below 4 GiB).
	return info{name: name, size: int64(binary.LittleEndian.Uint32(raw[len(raw)-4:]))}, nil
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	var out []fs.DirEntry
	for n := range m {
		fi, err := m.Stat(n)
		if err != nil {
			return nil, err
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (m memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	fi, err := m.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		ents, _ := m.ReadDir(".")
		return &dirFile{info: fi.(info), ents: ents}, nil
	}
	b, err := m.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &file{info: fi.(info), r: bytes.NewReader(b)}, nil
}

type info struct {
	name string
	size int64
	dir  bool
}

func (i info) Name() string { return path.Base(i.name) }
func (i info) Size() int64  { return i.size }
func (i info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.dir }
func (i info) Sys() any           { return nil }

type file struct {
	info info
	r    *bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *file) Close() error               { return nil }

type dirFile struct {
	info info
	ents []fs.DirEntry
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n]
	d.ents = d.ents[n:]
	return out, nil
}
