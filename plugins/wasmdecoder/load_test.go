package wasmdecoder

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

func metaWith(kv string) string { return strings.TrimSuffix(baseMeta, "}") + "," + kv + "}" }

func TestLoadRefuses(t *testing.T) {
	goodHex := strings.ToLower(strings.TrimSpace("472d6672616d65")) // "G-frame"
	cases := []struct {
		name string
		g    guest
		want string
	}{
		{"fc_abi is not 1", guest{abi: 2}, "fc_abi returned 2, want 1"},
		{"fc_decode missing", guest{sub: [][2]string{{`(export "fc_decode")`, ``}}}, "does not export fc_decode"},
		{"fc_alloc missing", guest{sub: [][2]string{{`(export "fc_alloc")`, ``}}}, "does not export fc_alloc"},
		{"memory not exported", guest{sub: [][2]string{{`(memory (export "memory") 2)`, `(memory 2)`}}}, `does not export "memory"`},
		{"fc_frame signature", guest{sub: [][2]string{{`(export "fc_frame")`, ``}},
			extra: `(func (export "fc_frame") (param i32) (result i32) (i32.const 0))`}, "export fc_frame has signature ([i32]) -> ([i32]), want ([i32 i32]) -> ([i32])"},
		{"fc_decode returns i32", guest{sub: [][2]string{{`(export "fc_decode")`, ``}},
			extra: `(func (export "fc_decode") (param i32 i32) (result i32) (i32.const 0))`}, "export fc_decode has signature"},
		{"fc_error signature", guest{extra: `(func (export "fc_error") (result i32) (i32.const 0))`}, "export fc_error has signature"},
		{"foreign import", guest{imprt: `(import "env" "now" (func $now (result i64)))`}, "imports env.now: only wasi_snapshot_preview1 is provided"},
		{"imported memory", guest{sub: [][2]string{{`(memory (export "memory") 2)`, `(import "env" "mem" (memory 2))`}}}, "imports its memory"},
		{"a quality rule", guest{sub: [][2]string{{`(export "fc_decode")`, `(export "fc_check")`}}}, "this is a quality rule"},
		{"meta not JSON", guest{meta: `{"name":`}, "decoding metadata JSON"},
		{"meta unknown key", guest{meta: metaWith(`"colour":"red"`)}, `unknown field "colour"`},
		{"meta bad name", guest{meta: strings.Replace(baseMeta, `"hostile"`, `"Hostile-1"`, 1)}, `meta name "Hostile-1"`},
		{"meta reserved name", guest{meta: strings.Replace(baseMeta, `"hostile"`, `"builtin"`, 1)}, `"builtin" is a built-in decoder's name`},
		{"meta bad version", guest{meta: strings.Replace(baseMeta, `"1.0.0"`, `"v1"`, 1)}, `meta version "v1"`},
		{"meta abi 2", guest{meta: strings.Replace(baseMeta, `"abi":1`, `"abi":2`, 1)}, "meta abi 2"},
		{"meta transport", guest{meta: strings.Replace(baseMeta, `["tcp","udp"]`, `["http"]`, 1)}, "meta transports"},
		{"meta port", guest{meta: strings.Replace(baseMeta, `6000`, `70000`, 1)}, "meta default_port 70000"},
		{"meta state_max over the host cap", guest{meta: strings.Replace(baseMeta, `"state_max":64`, `"state_max":257`, 1)}, "meta state_max 257: want 0..256"},
		{"option type", guest{meta: metaWith(`"options":[{"name":"x","type":"list","help":"h"}]`)}, `meta option "x": type "list"`},
		{"option without help", guest{meta: metaWith(`"options":[{"name":"x","type":"bool"}]`)}, `meta option "x": help is empty`},
		{"option default of the wrong type", guest{meta: metaWith(`"options":[{"name":"x","type":"int","default":"7","help":"h"}]`)}, `default "7" is not a whole number`},
		{"option default out of range", guest{meta: metaWith(`"options":[{"name":"x","type":"int","default":9,"min":0,"max":5,"help":"h"}]`)}, "default 9 outside 0..5"},
		{"enum default not a value", guest{meta: metaWith(`"options":[{"name":"m","type":"enum","values":["a","b"],"default":"c","help":"h"}]`)}, `default "c" is not one of`},
		{"option declared twice", guest{meta: metaWith(`"options":[{"name":"x","type":"bool","help":"h"},{"name":"x","type":"bool","help":"h"}]`)}, `meta option "x" declared twice`},
		{"test with an unknown error", guest{meta: metaWith(`"tests":[{"name":"t","frames":[{"hex":"` + goodHex + `","want":{"error":"oops"}}]}]`)}, `want.error "oops"`},
		{"test with an unknown signal key", guest{meta: metaWith(`"tests":[{"name":"t","frames":[{"hex":"` + goodHex + `","want":{"signals":[{"latitude":1}]}}]}]`)}, `key "latitude" is not a signal field`},
		{"test with an undeclared option", guest{meta: metaWith(`"tests":[{"name":"t","options":{"x":"1"},"frames":[{"hex":"` + goodHex + `","want":{}}]}]`)}, `option "x" is not declared`},
		{"self-test: wrong ack", guest{meta: metaWith(`"tests":[{"name":"acks","frames":[{"hex":"` + goodHex + `","want":{"ack_hex":"4e4f"}}]}]`)},
			`test "acks": frame 0: ack: want 4e4f, got 4f4b`},
		{"self-test: wrong signal", guest{meta: metaWith(`"tests":[{"name":"pos","frames":[{"text":"G-frame","want":{"signals":[{"lat":45.5,"lon":8}]}}]}]`)},
			`test "pos": frame 0: signal 0: lon: want 8, got 7.25`},
		{"self-test: wrong count", guest{meta: metaWith(`"tests":[{"name":"n","frames":[{"text":"G-frame","want":{"signals":[]}}]}]`)},
			`want 0 signals, got 1`},
		{"self-test: wants an error", guest{meta: metaWith(`"tests":[{"name":"e","frames":[{"text":"G-frame","want":{"error":"checksum"}}]}]`)},
			`want error checksum, got none`},
		{"self-test: a trap", guest{decode: "(unreachable)", meta: metaWith(`"tests":[{"name":"trap","frames":[{"text":"x","want":{}}]}]`)},
			`test "trap": frame 0: hostile 1.0.0+sha256:`},
		{"self-test: framed short", guest{frame: "(i32.const 1)", meta: metaWith(`"tests":[{"name":"f","frames":[{"text":"xy","want":{}}]}]`)},
			`fc_frame framed 1 of the frame's 2 bytes`},
	}
	h := newHost(t, Config{Budget: testBudget, Caps: Caps{State: 256}, Reserved: func(n string) bool { return n == "builtin" }})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := loadGuest(t, h, tc.g)
			if err == nil {
				t.Fatalf("loaded %s, want an error with %q", m.Version(), tc.want)
			}
			if !errors.Is(err, ErrInvalidModule) || KindOf(err) != KindInvalid {
				t.Errorf("error %v is not KindInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "hostile.wasm") {
				t.Errorf("error %q does not start with the file and contain %q", err, tc.want)
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		_, err := h.Load(context.Background(), "junk.wasm", []byte("\x00asm junk"))
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "junk.wasm") || !strings.Contains(err.Error(), "compiling") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("the example's self-tests pass", func(t *testing.T) {
		m := load(t, h, examplePath, exampleWasm(t))
		if err := m.SelfTest(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// A guest's refusal (negative status) is the plugins sentinel with its
// message and reject bytes, and no guest failure.
func TestGuestRefusal(t *testing.T) {
	h := hostileHost(t, testBudget)
	m, err := loadGuest(t, h, guest{bad: out{status: -2, reject: []byte("NAK"), message: []byte("crc 1 != 2\n"), state: []byte("zz"), flags: FlagState}.bytes(),
		frame: "(i32.const -2)", extra: `(data (i32.const 2048) "bad crc") (func (export "fc_error") (result i64) (i64.const 0x0000080000000007))`})
	if err != nil {
		t.Fatal(err)
	}
	sess := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP})
	checkGood(t, m, sess)
	_, err = sess.Frame([]byte("x"))
	if !errors.Is(err, plugins.ErrChecksum) || errors.Is(err, ErrGuest) || err.Error() != "framing hostile data: checksum mismatch: bad crc" {
		t.Errorf("Frame error %q", err)
	}
	if r := sess.(plugins.Rejecter).Reject(err); r != nil {
		t.Errorf("Frame reject %q, want none", r)
	}
	_, err = sess.Decode([]byte("x"), recvT)
	if !errors.Is(err, plugins.ErrChecksum) || errors.Is(err, ErrGuest) || err.Error() != "decoding hostile frame: checksum mismatch: crc 1 != 2" {
		t.Errorf("Decode error %q", err)
	}
	if r := sess.(plugins.Rejecter).Reject(err); string(r) != "NAK" {
		t.Errorf("reject %q, want NAK", r)
	}
	if s := sess.(*Session).State(); string(s) != "s1" {
		t.Errorf("state %q after a refused frame, want s1", s)
	}
	if st := m.Stats(); st.Failures != 0 {
		t.Errorf("a refusal counted as a failure: %+v", st)
	}
}

// MaxFailures consecutive guest failures disable the module once; a
// success in between resets the run; refusals do not count.
func TestFailuresDisable(t *testing.T) {
	h := newHost(t, Config{MaxFailures: 3, Budget: testBudget})
	m, err := loadGuest(t, h, guest{decode: "(unreachable)"})
	if err != nil {
		t.Fatal(err)
	}
	var got []Failure
	m.OnFailure(func(f Failure) { got = append(got, f) })
	sess := m.NewSession(plugins.SessionConfig{Transport: plugins.TCP})
	bad := func() {
		if _, err := sess.Decode([]byte("x"), recvT); !errors.Is(err, ErrTrap) {
			t.Fatalf("error %v, want a trap", err)
		}
	}
	bad()
	bad()
	checkGood(t, m, sess) // resets the run
	bad()
	bad()
	if m.Disabled() {
		t.Fatal("disabled after 2 consecutive failures")
	}
	bad()
	if !m.Disabled() || len(got) != 5 || !got[4].Disabled || got[4].Consecutive != 3 || got[3].Disabled {
		t.Fatalf("disabled %v, failures %+v", m.Disabled(), got)
	}
	_, err = sess.Decode(goodFrame, recvT)
	if !errors.Is(err, ErrDisabled) || errors.Is(err, ErrGuest) {
		t.Errorf("a disabled module decoded: %v", err)
	}
	if _, err := m.NewSession(plugins.SessionConfig{}).Frame(goodFrame); !errors.Is(err, ErrDisabled) {
		t.Errorf("a disabled module framed: %v", err)
	}
	if len(got) != 5 {
		t.Errorf("calls refused as disabled counted as failures: %d", len(got))
	}
}

// Closing a module from its failure callback does not deadlock, and later
// calls fail with ErrClosed.
func TestCloseFromCallback(t *testing.T) {
	h := newHost(t, Config{MaxFailures: 1, Budget: testBudget})
	m, err := loadGuest(t, h, guest{decode: "(unreachable)"})
	if err != nil {
		t.Fatal(err)
	}
	m.OnFailure(func(f Failure) {
		if f.Disabled {
			_ = m.Close(context.Background())
		}
	})
	sess := m.NewSession(plugins.SessionConfig{})
	_, _ = sess.Decode([]byte("x"), recvT)
	if _, err := sess.Decode(goodFrame, recvT); !errors.Is(err, ErrClosed) {
		t.Errorf("error %v, want ErrClosed", err)
	}
}

func TestHostChecks(t *testing.T) {
	h := hostileHost(t, testBudget)
	noDevice := out{nrec: 1, recs: position().bytes()}.bytes()
	m, err := loadGuest(t, h, guest{bad: noDevice})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("records before a device id", func(t *testing.T) {
		_, err := m.NewSession(plugins.SessionConfig{}).Decode([]byte("x"), recvT)
		if !errors.Is(err, plugins.ErrNoDevice) || errors.Is(err, ErrGuest) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("allow-list", func(t *testing.T) {
		sess := m.NewSession(plugins.SessionConfig{AllowDevice: func(id string) bool { return id != "dev1" }})
		res, err := sess.Decode(goodFrame, recvT)
		if !errors.Is(err, plugins.ErrUnauthorized) || res.DeviceID != "dev1" || sess.(*Session).DeviceID() != "" {
			t.Errorf("result %+v, error %v", res, err)
		}
	})
	t.Run("signal check", func(t *testing.T) {
		bad := out{nrec: 1, device: []byte("d"), recs: rec{mask: 1 | 4, values: []uint64{1767225600000, f64(91)}}.bytes()}.bytes()
		m2, err := loadGuest(t, h, guest{bad: bad})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m2.NewSession(plugins.SessionConfig{}).Decode([]byte("x"), recvT)
		if !errors.Is(err, plugins.ErrMalformed) || !strings.Contains(err.Error(), "lat") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("server time", func(t *testing.T) {
		// Two records without a device time: byte 9 = 0 stamps the
		// receive time to the ms, 1 to the second; a resend keeps both.
		recs := append(rec{mask: 4 | 8, values: []uint64{f64(1), f64(2)}}.bytes(), rec{mask: 4, stamp: 1, values: []uint64{f64(1)}}.bytes()...)
		m2, err := loadGuest(t, h, guest{bad: out{nrec: 2, device: []byte("d"), recs: recs}.bytes()})
		if err != nil {
			t.Fatal(err)
		}
		recv := time.Date(2026, 1, 1, 12, 0, 0, 700_123_000, time.UTC)
		for _, at := range []time.Time{recv, recv.Add(time.Minute)} {
			res, err := m2.NewSession(plugins.SessionConfig{}).Decode([]byte("x"), at)
			if err != nil || len(res.Signals) != 2 {
				t.Fatalf("%+v %v", res, err)
			}
			if !res.Signals[0].TS.Equal(recv.Truncate(time.Millisecond)) || !res.Signals[1].TS.Equal(recv.Truncate(time.Second)) {
				t.Errorf("received at %s: ts %s and %s, want the first receipt to the ms and to the second", at, res.Signals[0].TS, res.Signals[1].TS)
			}
		}
		o, err := ParseOutput(out{nrec: 2, device: []byte("d"), recs: recs}.bytes(), Caps{})
		if err != nil || !o.Records[0].TS.IsZero() || !o.Records[1].TS.IsZero() || o.ServerSeconds[0] || !o.ServerSeconds[1] {
			t.Errorf("ParseOutput: %+v %v", o, err)
		}
	})
	t.Run("short OBD data", func(t *testing.T) {
		bad := out{nrec: 1, device: []byte("d"), recs: rec{nob: 1, body: []byte{1, 0x0c, 1, 0x1a}}.bytes()}.bytes()
		m2, err := loadGuest(t, h, guest{bad: bad})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m2.NewSession(plugins.SessionConfig{}).Decode([]byte("x"), recvT)
		if !errors.Is(err, plugins.ErrMalformed) || errors.Is(err, ErrGuest) {
			t.Errorf("error %v", err)
		}
	})
}
