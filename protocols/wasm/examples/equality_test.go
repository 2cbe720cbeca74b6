package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	"github.com/fleetcore/fleetcore/protocols/h02"
	"github.com/fleetcore/fleetcore/protocols/teltonika"
	"github.com/fleetcore/fleetcore/signal"
)

// recv is the receive time of every frame: not on a whole second, so that
// a port stamping server times to the wrong precision shows.
var recv = time.Date(2026, 1, 1, 12, 0, 0, 123456789, time.UTC)

// port is one Go SDK port and the native decoder it must equal.
type port struct {
	pkg      string // the guest's main package, relative to the module root
	native   plugins.Decoder
	protocol string   // the corpus protocol name
	testdata []replay // the native package's own captures
}

// replay is one capture file of the native package, replayed on one
// session (as its golden test does).
type replay struct {
	file string
	hex  bool
	tr   plugins.Transport
}

var ports = []port{
	{"protocols/wasm/examples/teltonika_go", &teltonika.Decoder{}, "teltonika", []replay{
		{"protocols/teltonika/testdata/traccar-tcp.hex", true, plugins.TCP},
		{"protocols/teltonika/testdata/traccar-photo.hex", true, plugins.TCP},
		{"protocols/teltonika/testdata/traccar-udp.hex", true, plugins.UDP},
	}},
	{"protocols/wasm/examples/h02_go", &h02.Decoder{}, "h02", []replay{
		{"protocols/h02/testdata/traccar-text.txt", false, plugins.TCP},
		{"protocols/h02/testdata/traccar-binary.hex", true, plugins.TCP},
	}},
}

func loadPort(t testing.TB, pkg string) *wasmdecoder.Module {
	t.Helper()
	// The per-call budget is raised: this test is about equal output, and
	// a 2-core machine running many test binaries can stall one call past
	// the default 50 ms. Everything else is the host's default.
	h, err := wasmdecoder.NewHost(wasmdecoder.Config{Budget: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	m, err := h.Load(context.Background(), pkg, wasmfixture.Go(t, pkg, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// TestEquality runs each port and its native decoder over every capture
// of the protocol in the shared corpus (grouped into sessions by test
// class, test method and transport, in seq order, as protocols/corpus
// replays them) and over the native package's own testdata, frame by
// frame: the same framing, signals (every field, attrs, DTCs, times;
// Protocol and DecoderVersion aside), acks, close flags, device ids and
// error sentinels.
func TestEquality(t *testing.T) {
	root, err := wasmfixture.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	rows := corpusRows(t, root)
	for _, p := range ports {
		t.Run(p.protocol, func(t *testing.T) {
			wasm := loadPort(t, p.pkg)
			var st stats
			groups := groupRows(rows[p.protocol])
			if len(groups) == 0 {
				t.Fatalf("no %s captures in the corpus", p.protocol)
			}
			for _, g := range groups {
				nat := newSession(p.native, g.tr)
				gst := newSession(wasm, g.tr)
				var prev [][]byte
				for _, r := range g.rows {
					if r.Check == "frame_split" || r.Check == "encoder_output" {
						// Framing cases start a stream of their own.
						compare(t, &st, r.where(), g.tr, newSession(p.native, plugins.TCP), newSession(wasm, plugins.TCP), r.data)
						continue
					}
					compare(t, &st, r.where(), g.tr, nat, gst, r.data)
					// Each variant runs on a new pair of sessions that has
					// seen the group's earlier captures (the login), so
					// that what a variant leaves in a session (a native
					// H02 session learns a binary length from two records
					// in one read; the port cannot, see h02_go) never
					// reaches the captures after it.
					for i, v := range variants(r.data) {
						vn, vg := newSession(p.native, g.tr), newSession(wasm, g.tr)
						for _, d := range prev {
							run(vn, g.tr, d)
							run(vg, g.tr, d)
						}
						compare(t, &st, fmt.Sprintf("%s variant %d", r.where(), i+1), g.tr, vn, vg, v)
					}
					prev = append(prev, r.data)
				}
			}
			for _, rp := range p.testdata {
				f, err := os.ReadFile(filepath.Join(root, rp.file))
				if err != nil {
					t.Fatal(err)
				}
				nat, gst := newSession(p.native, rp.tr), newSession(wasm, rp.tr)
				for i, line := range strings.Split(string(f), "\n") {
					line = strings.TrimRight(line, "\r")
					if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
						continue
					}
					data := []byte(unescape(line))
					if rp.hex {
						if data, err = hex.DecodeString(strings.TrimSpace(line)); err != nil {
							t.Fatalf("%s:%d: %v", rp.file, i+1, err)
						}
					}
					compare(t, &st, fmt.Sprintf("%s:%d", rp.file, i+1), rp.tr, nat, gst, data)
				}
			}
			t.Logf("%s: %d inputs, %d frames, %d signals, %d acks, %d refused frames compared", p.protocol, st.inputs, st.frames, st.signals, st.acks, st.errors)
			if st.signals == 0 || st.errors == 0 || st.acks == 0 {
				t.Errorf("the comparison saw %d signals, %d acks, %d refusals: the captures should hold all three", st.signals, st.acks, st.errors)
			}
		})
	}
}

type stats struct{ inputs, frames, signals, acks, errors int }

func newSession(d plugins.Decoder, tr plugins.Transport) plugins.Session {
	return d.NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: 64 << 10, Options: plugins.MustDecodeOptions(d, nil), Logger: hclog.NewNullLogger()})
}

// variants are damaged copies of a capture that the port must refuse (or
// take) exactly as the native decoder does: cut in half, the last byte
// flipped (a checksum or a terminator), a byte in the middle flipped (a
// length, a field), and the capture twice in a row (a resend, and two
// frames in one read).
func variants(b []byte) [][]byte {
	if len(b) < 2 {
		return nil
	}
	half := slices.Clone(b[:len(b)/2])
	last := slices.Clone(b)
	last[len(last)-1] ^= 0x01
	mid := slices.Clone(b)
	mid[len(mid)/2] ^= 0x10
	return [][]byte{half, last, mid, slices.Concat(b, b)}
}

// step is what one frame made: the framing result and the decoding result.
type step struct {
	n        int
	frameErr error
	res      plugins.Result
	err      error
	device   string
}

// run feeds one input through a session as the gateway does: TCP through
// Frame and Decode until the bytes run out, an error or "need more"; UDP
// as one datagram. Every frame's signals go through plugins.CheckSignals.
func run(s plugins.Session, tr plugins.Transport, data []byte) []step {
	var out []step
	dev := func() string { return s.(plugins.DeviceIdentifier).DeviceID() }
	decode := func(st step, frame []byte) step {
		st.res, st.err = s.Decode(frame, recv)
		if st.err == nil {
			st.err = plugins.CheckSignals(st.res.Signals)
		}
		st.device = dev()
		return st
	}
	if tr == plugins.UDP {
		return append(out, decode(step{n: len(data)}, data))
	}
	for len(data) > 0 {
		n, err := s.Frame(data)
		st := step{n: n, frameErr: err}
		if err != nil || n <= 0 || n > len(data) {
			st.device = dev()
			return append(out, st)
		}
		st = decode(st, data[:n])
		out = append(out, st)
		if st.err != nil {
			return out
		}
		data = data[n:]
	}
	return out
}

func compare(t *testing.T, st *stats, where string, tr plugins.Transport, nat, gst plugins.Session, data []byte) {
	t.Helper()
	st.inputs++
	a, b := run(nat, tr, data), run(gst, tr, data)
	checkSteps(t, st, where, a, b)
}

// checkSteps compares the frames one input made in the native session
// (a) and in the port's (b).
func checkSteps(t *testing.T, st *stats, where string, a, b []step) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: native made %d frames, the port %d", where, len(a), len(b))
		return
	}
	for i := range a {
		x, y := a[i], b[i]
		w := fmt.Sprintf("%s frame %d", where, i+1)
		st.frames++
		if x.n != y.n || sentinels(x.frameErr) != sentinels(y.frameErr) {
			t.Errorf("%s: Frame = %d, %v; port %d, %v", w, x.n, x.frameErr, y.n, y.frameErr)
			continue
		}
		if x.frameErr != nil {
			st.errors++
			continue
		}
		if sentinels(x.err) != sentinels(y.err) {
			t.Errorf("%s: Decode error %v (%s); port %v (%s)", w, x.err, sentinels(x.err), y.err, sentinels(y.err))
			continue
		}
		if x.err != nil {
			// A refused frame closes the connection. The session's device
			// id afterwards differs by design: a native session has
			// already taken the frame's id, the host ignores the device
			// of a refused output (ABI.md §4).
			st.errors++
			continue
		}
		if x.device != y.device {
			t.Errorf("%s: device %q; port %q", w, x.device, y.device)
		}
		if !bytes.Equal(x.res.Ack, y.res.Ack) || x.res.Close != y.res.Close {
			t.Errorf("%s: ack %x close %v; port ack %x close %v", w, x.res.Ack, x.res.Close, y.res.Ack, y.res.Close)
		}
		if len(x.res.Ack) > 0 {
			st.acks++
		}
		if len(x.res.Signals) != len(y.res.Signals) {
			t.Errorf("%s: %d signals; port %d", w, len(x.res.Signals), len(y.res.Signals))
			continue
		}
		for j := range x.res.Signals {
			st.signals++
			if d := diffSignal(&x.res.Signals[j], &y.res.Signals[j]); d != "" {
				t.Errorf("%s signal %d: %s", w, j+1, d)
			}
		}
	}
}

var allSentinels = []error{plugins.ErrMalformed, plugins.ErrChecksum, plugins.ErrTooLarge, plugins.ErrUnauthorized,
	plugins.ErrNoDevice, plugins.ErrUnsupported, signal.ErrInvalid}

// sentinels names the sentinels err wraps ("" for nil); an error wrapping
// none (a guest failure) is "other".
func sentinels(err error) string {
	if err == nil {
		return ""
	}
	var names []string
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			names = append(names, s.Error())
		}
	}
	if len(names) == 0 {
		return "other"
	}
	return strings.Join(names, "+")
}

// diffSignal compares every stored part of two signals but Protocol and
// DecoderVersion (the port's name and version differ by design).
func diffSignal(a, b *signal.Signal) string {
	var d []string
	if a.DeviceID != b.DeviceID {
		d = append(d, fmt.Sprintf("device_id %q / %q", a.DeviceID, b.DeviceID))
	}
	if !a.TS.Equal(b.TS) {
		d = append(d, fmt.Sprintf("ts %s / %s", a.TS.Format(time.RFC3339Nano), b.TS.Format(time.RFC3339Nano)))
	}
	if !a.Recv.Equal(b.Recv) {
		d = append(d, fmt.Sprintf("recv %s / %s", a.Recv, b.Recv))
	}
	for f := signal.FieldLat; f <= signal.FieldThrottle; f++ {
		x, y := a.Number(f), b.Number(f)
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			d = append(d, fmt.Sprintf("%s %v / %v", f, x, y))
		}
	}
	if a.Valid != b.Valid {
		d = append(d, fmt.Sprintf("valid %v / %v", a.Valid, b.Valid))
	}
	if !slices.Equal(a.DTCs, b.DTCs) {
		d = append(d, fmt.Sprintf("dtcs %q / %q", a.DTCs, b.DTCs))
	}
	if len(a.Attrs)+len(b.Attrs) > 0 && !reflect.DeepEqual(a.Attrs, b.Attrs) {
		d = append(d, attrDiff(a.Attrs, b.Attrs))
	}
	if !bytes.Equal(a.Frame, b.Frame) {
		d = append(d, fmt.Sprintf("frame %x / %x", a.Frame, b.Frame))
	}
	if a.Path != b.Path {
		d = append(d, fmt.Sprintf("path %q / %q", a.Path, b.Path))
	}
	// The record hash covers Protocol: compare it under the native name.
	renamed := *b
	renamed.Protocol = a.Protocol
	if a.RecordHash() != renamed.RecordHash() {
		d = append(d, "record hash")
	}
	return strings.Join(d, "; ")
}

func attrDiff(a, b map[string]any) string {
	var d []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		x, okx := a[k]
		y, oky := b[k]
		if okx != oky || !reflect.DeepEqual(x, y) {
			d = append(d, fmt.Sprintf("%s %#v / %#v", k, x, y))
		}
	}
	return "attrs " + strings.Join(d, ", ")
}

// row is one line of the shared corpus (see shared/testdata/README.md).
type row struct {
	Protocol   string          `json:"protocol"`
	TestClass  string          `json:"test_class"`
	TestMethod string          `json:"test_method"`
	Encoding   string          `json:"encoding"`
	Payload    string          `json:"payload"`
	Check      string          `json:"check"`
	Transport  string          `json:"transport"`
	Seq        *int            `json:"seq"`
	Derived    json.RawMessage `json:"derived"`

	data []byte
	src  string
	line int
}

func (r *row) where() string { return fmt.Sprintf("%s:%d", r.src, r.line) }

// corpusRows reads the shared captures of the ported protocols.
func corpusRows(t *testing.T, root string) map[string][]*row {
	t.Helper()
	want := map[string]bool{}
	for _, p := range ports {
		want[p.protocol] = true
	}
	for _, p := range asPorts {
		want[p.protocol] = true
	}
	out := map[string][]*row{}
	dir := filepath.Join(root, "..", "shared", "testdata")
	files, err := filepath.Glob(filepath.Join(dir, "traccar-frames*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s (%v)", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		n := 0
		for sc.Scan() {
			n++
			r := &row{src: filepath.Base(f), line: n}
			if err := json.Unmarshal(sc.Bytes(), r); err != nil {
				t.Fatalf("%s:%d: %v", f, n, err)
			}
			if !want[r.Protocol] {
				continue
			}
			if strings.Contains(string(r.Derived), `"unescaped"`) {
				t.Fatalf("%s:%d: an unescaped capture of %s: re-escaping is not implemented here", f, n, r.Protocol)
			}
			r.data = []byte(r.Payload)
			if r.Encoding == "hex" {
				if r.data, err = hex.DecodeString(r.Payload); err != nil {
					t.Fatalf("%s:%d: %v", f, n, err)
				}
			}
			out[r.Protocol] = append(out[r.Protocol], r)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	return out
}

type group struct {
	tr   plugins.Transport
	rows []*row
}

// groupRows splits a protocol's rows into sessions by test class, test
// method and transport, each in seq order (rows without a seq last, in
// file order), as protocols/corpus does.
func groupRows(rows []*row) []*group {
	type key struct{ class, method, tr string }
	idx := map[key]*group{}
	var out []*group
	for _, r := range rows {
		tr := plugins.TCP
		if r.Transport == "udp" {
			tr = plugins.UDP
		}
		k := key{r.TestClass, r.TestMethod, string(tr)}
		g := idx[k]
		if g == nil {
			g = &group{tr: tr}
			idx[k] = g
			out = append(out, g)
		}
		g.rows = append(g.rows, r)
	}
	for _, g := range out {
		sort.SliceStable(g.rows, func(i, j int) bool {
			a, b := g.rows[i].Seq, g.rows[j].Seq
			if a == nil || b == nil {
				return a != nil && b == nil
			}
			return *a < *b
		})
	}
	return out
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\\`, `\`).Replace(s)
}
