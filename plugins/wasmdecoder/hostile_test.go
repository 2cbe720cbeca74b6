package wasmdecoder

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
)

// The hostile modules share one template: a guest whose frames starting
// with 'G' are framed whole and decode to a good output (device "dev1",
// one record), and whose other frames run the behaviour under test (a
// loop, a trap, a canned bad output, …).
type guest struct {
	meta   string // fc_meta JSON; "" = baseMeta
	abi    int    // fc_abi's return; 0 = 1
	frame  string // fc_frame's body for non-'G' data (an i32 on the stack); "" = frame whole
	decode string // fc_decode's body for non-'G' data (an i64); "" = the bad output
	bad    []byte // the canned bad output ($bad)
	good   []byte // the good output; nil = goodOutput()
	extra  string // more module fields (imports go first)
	imprt  string
	sub    [][2]string // replacements on the final text
}

const baseMeta = `{"name":"hostile","version":"1.0.0","abi":1,"transports":["tcp","udp"],"default_port":6000,"state_version":1,"state_max":64}`

func watString(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "\\%02x", c)
	}
	return sb.String()
}

func (g guest) wat() string {
	meta := g.meta
	if meta == "" {
		meta = baseMeta
	}
	abi := g.abi
	if abi == 0 {
		abi = 1
	}
	good := g.good
	if good == nil {
		good = goodOutput()
	}
	frame := g.frame
	if frame == "" {
		frame = "(i32.load offset=28 (local.get $in))"
	}
	decode := g.decode
	if decode == "" {
		decode = "(call $bad)"
	}
	src := fmt.Sprintf(`(module
  %s
  (memory (export "memory") 2)
  (data (i32.const 1024) "%s")
  (data (i32.const 16384) "%s")
  (data (i32.const 32768) "%s")
  (func (export "fc_abi") (result i32) (i32.const %d))
  (func (export "fc_meta") (result i64) (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const %d)))
  (func (export "fc_alloc") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need (i32.shr_u (i32.add (local.get $size) (i32.const 131071)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (i32.const 65536))
  (func $first (param $in i32) (result i32)
    (if (result i32) (i32.eqz (i32.load offset=28 (local.get $in)))
      (then (i32.const 0))
      (else (i32.load8_u (i32.add (i32.add (i32.add (local.get $in) (i32.const 32))
        (i32.load offset=20 (local.get $in))) (i32.load offset=24 (local.get $in)))))))
  (func $good (result i64) (i64.or (i64.shl (i64.const 16384) (i64.const 32)) (i64.const %d)))
  (func $bad (result i64) (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.const %d)))
  (func (export "fc_frame") (param $in i32) (param $len i32) (result i32)
    (if (i32.eq (call $first (local.get $in)) (i32.const 71)) (then (return (i32.load offset=28 (local.get $in)))))
    %s)
  (func (export "fc_decode") (param $in i32) (param $len i32) (result i64)
    (if (i32.eq (call $first (local.get $in)) (i32.const 71)) (then (return (call $good))))
    %s)
  %s
)`, g.imprt, watString([]byte(meta)), watString(good), watString(g.bad), abi, len(meta), len(good), len(g.bad), frame, decode, g.extra)
	for _, r := range g.sub {
		src = strings.Replace(src, r[0], r[1], 1)
	}
	return src
}

// out builds an fc_decode output; lens, when set, overrides the section
// lengths in the header (a lying header).
type out struct {
	status                                    int32
	flags                                     uint32
	nrec                                      int
	device, ack, reject, message, state, recs []byte
	magic                                     string
	pad                                       uint64
	extra                                     int // bytes appended after the sections
}

func (o out) bytes() []byte {
	b := make([]byte, OutputHeaderSize)
	magic := o.magic
	if magic == "" {
		magic = "FCR1"
	}
	copy(b, magic)
	le := binary.LittleEndian
	le.PutUint32(b[4:], uint32(o.status))
	le.PutUint32(b[8:], o.flags)
	le.PutUint32(b[12:], uint32(o.nrec))
	for i, s := range [][]byte{o.device, o.ack, o.reject, o.message, o.state, o.recs} {
		le.PutUint32(b[16+4*i:], uint32(len(s)))
	}
	le.PutUint64(b[40:], o.pad)
	for _, s := range [][]byte{o.device, o.ack, o.reject, o.message, o.state, o.recs} {
		b = append(b, s...)
	}
	return append(b, make([]byte, o.extra)...)
}

// rec builds one record.
type rec struct {
	mask              uint32
	valid             byte
	stamp             byte
	values            []uint64
	nattrs, ndtc, nob int
	body              []byte // attrs, DTCs and OBD items, as bytes
	lenDelta          int    // added to rec_len (a lying length)
}

func (r rec) bytes() []byte {
	b := make([]byte, recordHeaderSize)
	le := binary.LittleEndian
	le.PutUint32(b[4:], r.mask)
	b[8] = r.valid
	b[9] = r.stamp
	le.PutUint16(b[10:], uint16(r.nattrs))
	le.PutUint16(b[12:], uint16(r.ndtc))
	le.PutUint16(b[14:], uint16(r.nob))
	for _, v := range r.values {
		b = le.AppendUint64(b, v)
	}
	b = append(b, r.body...)
	le.PutUint32(b[0:], uint32(len(b)+r.lenDelta))
	return b
}

func f64(v float64) uint64 { return math.Float64bits(v) }

// position is a record with ts, lat and lon.
func position() rec {
	return rec{mask: 1 | 4 | 8, valid: 2, values: []uint64{uint64(1767225600000), f64(45.5), f64(7.25)}}
}

func goodOutput() []byte {
	return out{nrec: 1, device: []byte("dev1"), ack: []byte("OK"), state: []byte("s1"), flags: FlagState, recs: position().bytes()}.bytes()
}

func attrBool(name string) []byte {
	return append([]byte{3, byte(len(name))}, append([]byte(name), 1)...)
}

// loadGuest assembles and loads g.
func loadGuest(t *testing.T, h *Host, g guest) (*Module, error) {
	t.Helper()
	wasm := wasmfixture.WAT(t, g.wat())
	m, err := h.Load(context.Background(), "hostile.wasm", wasm)
	if m != nil {
		t.Cleanup(func() { _ = m.Close(context.Background()) })
	}
	return m, err
}

func hostileHost(t *testing.T, budget time.Duration) *Host {
	return newHost(t, Config{Budget: budget, MemoryLimitPages: 64, MaxFailures: 1000,
		Caps: Caps{Records: 2, Attrs: 2, DTCs: 2, OBD: 2, Output: 8192, State: 256, Reply: 16, DeviceID: 16}})
}

var recvT = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// goodFrame is decoded by the good path.
var goodFrame = []byte("G-frame")

// checkGood proves a fresh session, and sess, still decode through m.
func checkGood(t *testing.T, m *Module, sess plugins.Session) {
	t.Helper()
	for i, s := range []plugins.Session{sess, m.NewSession(plugins.SessionConfig{Transport: plugins.TCP})} {
		if n, err := s.Frame(goodFrame); err != nil || n != len(goodFrame) {
			t.Fatalf("session %d after the failure: Frame = %d, %v", i, n, err)
		}
		res, err := s.Decode(goodFrame, recvT)
		if err != nil || len(res.Signals) != 1 || res.Signals[0].DeviceID != "dev1" || string(res.Ack) != "OK" {
			t.Fatalf("session %d after the failure: Decode = %+v, %v", i, res, err)
		}
	}
}

func TestHostileCalls(t *testing.T) {
	loop := "(loop $spin (br $spin)) (unreachable)"
	bomb := "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 4)) (i32.const -1)))) (unreachable)"
	cases := []struct {
		name  string
		g     guest
		frame bool // the failure is in fc_frame (else fc_decode)
		kind  Kind
		want  string // in the error text
	}{
		{"infinite loop in fc_frame", guest{frame: loop}, true, KindTimeout, "fc_frame ran longer than"},
		{"infinite loop in fc_decode", guest{decode: loop}, false, KindTimeout, "fc_decode ran longer than"},
		{"memory bomb in fc_frame", guest{frame: bomb}, true, KindMemory, "memory at"},
		{"memory bomb in fc_decode", guest{decode: bomb}, false, KindMemory, "memory at"},
		{"trap in fc_frame", guest{frame: "(unreachable)"}, true, KindTrap, "unreachable"},
		{"trap in fc_decode", guest{decode: "(unreachable)"}, false, KindTrap, "unreachable"},
		{"out-of-bounds load in fc_decode", guest{decode: "(i64.load (i32.const -8))"}, false, KindTrap, "out of bounds"},
		{"fc_frame claims more than it has", guest{frame: "(i32.const 100000)"}, true, KindABI, "fc_frame returned 100000 for 5 bytes"},
		{"fc_frame returns an unknown code", guest{frame: "(i32.const -7)"}, true, KindABI, "fc_frame returned -7"},
		{"output outside memory", guest{decode: "(i64.const 0x7fff000000001000)"}, false, KindABI, "outside memory"},
		{"output over the cap", guest{decode: "(i64.const 0x0000000000004000)"}, false, KindABI, "output of 16384 bytes exceeds the cap of 8192"},
		{"output shorter than its header", guest{bad: []byte("FCR1")}, false, KindABI, "shorter than its 48-byte header"},
		{"bad magic", guest{bad: out{magic: "FCX1"}.bytes()}, false, KindABI, "output magic"},
		{"bad status", guest{bad: out{status: -9}.bytes()}, false, KindABI, "status -9"},
		{"undefined flag", guest{bad: out{flags: 4}.bytes()}, false, KindABI, "flags 0x4"},
		{"header padding not zero", guest{bad: out{pad: 1}.bytes()}, false, KindABI, "bytes 40..47"},
		{"sections longer than the output", guest{bad: out{device: []byte("d")}.bytes()[:48]}, false, KindABI, "add up to 49 bytes, the output is 48"},
		{"bytes after the sections", guest{bad: out{extra: 3}.bytes()}, false, KindABI, "add up to 48 bytes, the output is 51"},
		{"records over the cap", guest{bad: out{nrec: 3, device: []byte("d"), recs: append(append(position().bytes(), position().bytes()...), position().bytes()...)}.bytes()}, false, KindABI, "3 records exceed the cap of 2"},
		{"attrs over the cap", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 3, body: append(append(attrBool("a"), attrBool("b")...), attrBool("c")...)}.bytes()}.bytes()}, false, KindABI, "3 attrs exceed the cap of 2"},
		{"DTCs over the cap", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{ndtc: 3, body: []byte("\x05P0301\x05P0302\x05P0303")}.bytes()}.bytes()}, false, KindABI, "3 DTCs exceed the cap of 2"},
		{"OBD items over the cap", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nob: 3, body: []byte("\x01\x0c\x02\x1a\xf8\x01\x0c\x02\x1a\xf8\x01\x0c\x02\x1a\xf8")}.bytes()}.bytes()}, false, KindABI, "3 OBD items exceed the cap of 2"},
		{"ack over the reply cap", guest{bad: out{ack: make([]byte, 17)}.bytes()}, false, KindABI, "ack of 17 bytes exceeds the cap of 16"},
		{"reject over the reply cap", guest{bad: out{status: -1, reject: make([]byte, 17)}.bytes()}, false, KindABI, "reject of 17 bytes"},
		{"device id over the cap", guest{bad: out{device: []byte("01234567890123456")}.bytes()}, false, KindABI, "device id of 17 bytes exceeds the cap of 16"},
		{"state over state_max", guest{bad: out{flags: FlagState, state: make([]byte, 65)}.bytes()}, false, KindABI, "state of 65 bytes exceeds state_max 64"},
		{"rec_len beyond the records", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{lenDelta: 1}.bytes()}.bytes()}, false, KindABI, "rec_len 17 outside"},
		{"field_mask sets recv", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{mask: 2, values: []uint64{1}}.bytes()}.bytes()}, false, KindABI, "field_mask 0x2"},
		{"field_mask bit 16", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{mask: 1 << 16, values: []uint64{1}}.bytes()}.bytes()}, false, KindABI, "field_mask 0x10000"},
		{"stamp out of range", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{stamp: 2}.bytes()}.bytes()}, false, KindABI, "stamp 2"},
		{"valid out of range", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{valid: 3}.bytes()}.bytes()}, false, KindABI, "valid 3"},
		{"records after the last", guest{bad: out{nrec: 1, device: []byte("d"), recs: append(rec{}.bytes(), 0, 0)}.bytes()}, false, KindABI, "2 bytes after the last record"},
		{"records without a count", guest{bad: out{device: []byte("d"), recs: rec{}.bytes()}.bytes()}, false, KindABI, "0 records in 16 bytes"},
		{"values past rec_len", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{mask: 1 | 4, values: []uint64{1767225600000}}.bytes()}.bytes()}, false, KindABI, "ends inside the record"},
		{"attr name not snake_case", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 1, body: attrBool("Bad")}.bytes()}.bytes()}, false, KindABI, `name "Bad"`},
		{"attr set twice", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 2, body: append(attrBool("a"), attrBool("a")...)}.bytes()}.bytes()}, false, KindABI, `attr "a" set twice`},
		{"attr kind unknown", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 1, body: []byte{9, 1, 'a'}}.bytes()}.bytes()}, false, KindABI, "kind 9"},
		{"attr bool not 0/1", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 1, body: []byte{3, 1, 'a', 7}}.bytes()}.bytes()}, false, KindABI, "bool byte"},
		{"attr string over 1024", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nattrs: 1, body: []byte{4, 1, 'a', 0x01, 0x04}}.bytes()}.bytes()}, false, KindABI, "string of 1025 bytes"},
		{"DTC not printable", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{ndtc: 1, body: []byte{2, 'P', 0}}.bytes()}.bytes()}, false, KindABI, "printable ASCII"},
		{"OBD kind unknown", guest{bad: out{nrec: 1, device: []byte("d"), recs: rec{nob: 1, body: []byte{7, 0x0c}}.bytes()}.bytes()}, false, KindABI, "OBD item 0: kind 7"},
	}
	// A loop needs a short budget to end the test soon; a memory bomb a
	// long one, so that a loaded machine does not turn it into a timeout.
	short, long := hostileHost(t, 250*time.Millisecond), hostileHost(t, testBudget)
	for _, tc := range cases {
		h := long
		if tc.kind == KindTimeout {
			h = short
		}
		t.Run(tc.name, func(t *testing.T) {
			m, err := loadGuest(t, h, tc.g)
			if err != nil {
				t.Fatal(err)
			}
			var failures []Failure
			m.OnFailure(func(f Failure) { failures = append(failures, f) })
			sess := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP})
			// The session logs in on a good frame first: the failure must
			// not cost it its state beyond the connection.
			checkGood(t, m, sess)
			bad := []byte("BAD!!")
			var gotErr error
			if tc.frame {
				_, gotErr = sess.Frame(bad)
			} else {
				_, gotErr = sess.Decode(bad, recvT)
			}
			if !errors.Is(gotErr, ErrGuest) || KindOf(gotErr) != tc.kind {
				t.Fatalf("error %v (kind %v), want a guest error of kind %v", gotErr, KindOf(gotErr), tc.kind)
			}
			if !strings.Contains(gotErr.Error(), tc.want) || !strings.Contains(gotErr.Error(), "hostile 1.0.0+sha256:") {
				t.Errorf("error %q does not name the decoder version and %q", gotErr, tc.want)
			}
			if len(failures) != 1 || failures[0].Kind != tc.kind || failures[0].Consecutive != 1 {
				t.Errorf("OnFailure got %+v, want one failure of kind %v", failures, tc.kind)
			}
			if got := string(sess.(*Session).State()); got != "s1" {
				t.Errorf("state after the failure %q, want s1 (unchanged)", got)
			}
			checkGood(t, m, sess)
			if st := m.Stats(); st.Consecutive != 0 || st.Failures != 1 || st.Errors[tc.kind.String()] != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
