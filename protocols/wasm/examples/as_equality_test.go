package examples_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	"github.com/fleetcore/fleetcore/protocols/gt06"
)

// asPort is one AssemblyScript port (protocols/wasm/sdk-as) and the native
// decoder it must equal.
type asPort struct {
	entry    string // the guest's entry file, relative to the module root
	native   plugins.Decoder
	protocol string // the corpus protocol name
}

var asPorts = []asPort{
	{"protocols/wasm/examples/gt06_as/assembly/index.ts", &gt06.Decoder{}, "gt06"},
}

// notPorted is the start of the message of a frame a partial port refuses
// because that part of the protocol is not ported (gt06_as README).
const notPorted = "not ported"

func loadAS(t testing.TB, entry string) *wasmdecoder.Module {
	t.Helper()
	h, err := wasmdecoder.NewHost(wasmdecoder.Config{Budget: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	m, err := h.Load(context.Background(), entry, wasmfixture.AS(t, entry))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// msSession hands the native session the receive time truncated to the
// millisecond: the ABI's server time of a record without ts is the receive
// time to the millisecond (ABI.md §4, stamp 0), where native GT06 keeps
// microseconds. The signals keep the receive time itself (recv). Everything
// else is the native session as it is.
type msSession struct{ plugins.Session }

func (s msSession) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.Session.Decode(frame, recv.Truncate(time.Millisecond))
	for i := range res.Signals {
		res.Signals[i].Recv = recv
	}
	return res, err
}

func (s msSession) DeviceID() string { return s.Session.(plugins.DeviceIdentifier).DeviceID() }

// TestASEquality runs each AssemblyScript port and its native decoder over
// every capture of the protocol in the shared corpus, as TestEquality does
// for the Go ports (same sessions, variants and comparison), frame by
// frame. A frame the port refuses as "not ported" ends that input's
// comparison and is counted; every other frame must be equal. The test
// fails when the port leaves more than a third of the frames unported, so
// that the port cannot shrink silently.
func TestASEquality(t *testing.T) {
	root, err := wasmfixture.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	rows := corpusRows(t, root)
	for _, p := range asPorts {
		t.Run(p.protocol, func(t *testing.T) {
			wasm := loadAS(t, p.entry)
			var st stats
			skipped := 0
			nat := func(tr plugins.Transport) plugins.Session { return msSession{newSession(p.native, tr)} }
			cmp := func(where string, tr plugins.Transport, a, b plugins.Session, data []byte) {
				skipped += compareAS(t, &st, where, tr, a, b, data)
			}
			groups := groupRows(rows[p.protocol])
			if len(groups) == 0 {
				t.Fatalf("no %s captures in the corpus", p.protocol)
			}
			for _, g := range groups {
				ns, gs := nat(g.tr), newSession(wasm, g.tr)
				var prev [][]byte
				for _, r := range g.rows {
					if r.Check == "frame_split" || r.Check == "encoder_output" {
						cmp(r.where(), g.tr, nat(plugins.TCP), newSession(wasm, plugins.TCP), r.data)
						continue
					}
					cmp(r.where(), g.tr, ns, gs, r.data)
					for i, v := range variants(r.data) {
						vn, vg := nat(g.tr), newSession(wasm, g.tr)
						for _, d := range prev {
							run(vn, g.tr, d)
							run(vg, g.tr, d)
						}
						cmp(fmt.Sprintf("%s variant %d", r.where(), i+1), g.tr, vn, vg, v)
					}
					prev = append(prev, r.data)
				}
			}
			t.Logf("%s: %d inputs, %d frames equal (%d signals, %d acks, %d refused), %d frames not ported",
				p.protocol, st.inputs, st.frames, st.signals, st.acks, st.errors, skipped)
			if st.signals == 0 || st.errors == 0 || st.acks == 0 {
				t.Errorf("the comparison saw %d signals, %d acks, %d refusals: the captures should hold all three", st.signals, st.acks, st.errors)
			}
			if skipped*3 > st.frames+skipped {
				t.Errorf("%d of %d frames not ported", skipped, st.frames+skipped)
			}
		})
	}
}

// compareAS is compare for a partial port: the frames up to the first one
// the port refuses as not ported are compared (through compare's rules),
// that frame and the rest of the input are counted as skipped.
func compareAS(t *testing.T, st *stats, where string, tr plugins.Transport, nat, gst plugins.Session, data []byte) int {
	t.Helper()
	st.inputs++
	a, b := run(nat, tr, data), run(gst, tr, data)
	for i, y := range b {
		if y.err != nil && strings.Contains(y.err.Error(), notPorted) {
			if i < len(a) {
				checkSteps(t, st, where, a[:i], b[:i])
				return len(a) - i
			}
			break
		}
	}
	checkSteps(t, st, where, a, b)
	return 0
}
