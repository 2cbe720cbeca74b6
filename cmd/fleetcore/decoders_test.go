package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	"github.com/fleetcore/fleetcore/signal"
)

// acmeWAT is the WAT worked example of the decoder ABI: ACME AT-1 (the
// native protocols/acme) as a WASM decoder named acme_wat.
const acmeWAT = "../../protocols/wasm/examples/wat/acme.wat"

// The ACME captures of the native decoder's golden tests.
const (
	acmeTrip    = "../../protocols/acme/testdata/trip/input.hex"
	acmeRejects = "../../protocols/acme/testdata/rejects/input.hex"
	recvFlag    = "2026-11-25T12:00:00Z"
)

// writeWASM writes a module into dir and returns its path.
func writeWASM(t *testing.T, dir, name string, wasm []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// acmeModule assembles the example into a temporary .wasm file.
func acmeModule(t *testing.T) string {
	t.Helper()
	return writeWASM(t, t.TempDir(), "acme_wat.wasm", wasmfixture.WATFile(t, acmeWAT))
}

// metaData matches the example's fc_meta data segment and the length
// fc_meta returns.
var (
	metaData = regexp.MustCompile(`\(data \(i32\.const 1024\) "((?:[^"\\]|\\.)*)"\)`)
	metaLen  = regexp.MustCompile(`\(i64\.const 1444\)\)\)`)
)

// acmeVariant rewrites the example: the metadata (edit gets it as Go
// JSON text, returns the new one) and extra WAT at the start of fc_decode.
func acmeVariant(t *testing.T, edit func(meta string) string, decodeHead string) []byte {
	t.Helper()
	src, err := os.ReadFile(acmeWAT)
	if err != nil {
		t.Fatal(err)
	}
	m := metaData.FindSubmatch(src)
	if m == nil || !metaLen.Match(src) {
		t.Fatal("acme.wat: fc_meta data segment or length not found: update acmeVariant")
	}
	meta := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(string(m[1]))
	if len(meta) != 1444 {
		t.Fatalf("acme.wat meta is %d bytes, fc_meta says 1444", len(meta))
	}
	meta = edit(meta)
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(meta)
	out := bytes.Replace(src, m[0], []byte(`(data (i32.const 1024) "`+esc+`")`), 1)
	out = metaLen.ReplaceAll(out, []byte(fmt.Sprintf("(i64.const %d)))", len(meta))))
	head := []byte("    (local $recs i32)\n")
	if !bytes.Contains(out, head) {
		t.Fatal("acme.wat: fc_decode locals not found: update acmeVariant")
	}
	out = bytes.Replace(out, head, append(head, decodeHead+"\n"...), 1)
	return wasmfixture.WAT(t, string(out))
}

// renamed gives the metadata another name and no self-tests.
func renamed(name string) func(string) string {
	return func(meta string) string {
		meta = strings.Replace(meta, `"name":"acme_wat"`, `"name":"`+name+`"`, 1)
		i := strings.Index(meta, `,"tests":`)
		return meta[:i] + "}"
	}
}

// trapOnHeartbeat traps in fc_decode on an 8-byte frame (the heartbeat;
// data_len is the input's u32 at offset 28).
const trapOnHeartbeat = `    (if (i32.eq (i32.load offset=28 (local.get $in)) (i32.const 8)) (then unreachable))`

// runSplit runs the command line in-process with stdin from in and returns
// the exit code, stdout and stderr apart.
func runSplit(t *testing.T, in string, args ...string) (int, string, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(in); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldIn, oldOut, oldErr := os.Stdin, os.Stdout, os.Stderr
	os.Stdin, os.Stdout, os.Stderr = f, outW, errW
	outC, errC := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(outR); outC <- string(b) }()
	go func() { b, _ := io.ReadAll(errR); errC <- string(b) }()
	code := run(args)
	os.Stdin, os.Stdout, os.Stderr = oldIn, oldOut, oldErr
	outW.Close()
	errW.Close()
	return code, <-outC, <-errC
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodedLine is a line `decode` prints, as a map.
func decodedLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// sentinelOf is the plugins sentinel text an error line carries.
func sentinelOf(msg string) string {
	for _, s := range []string{"malformed frame", "checksum mismatch", "frame too large", "device not allowed", "no device identification", "unsupported frame"} {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return "no sentinel in " + msg
}

// TestDecodeWASMMatchesNative: `decode -wasm acme_wat.wasm` prints what
// `decode -protocol acme` prints, line for line, on the ACME captures
// (the trip and the rejects of the native golden tests), with the same
// exit code: every signal field equal but the protocol name (the module's
// own) and decoder_version (the module's Version, absent for a built-in
// decoder, which the server stamps builtin:<version>); a rejected frame at
// the same line with the same sentinel (the messages are each decoder's).
func TestDecodeWASMMatchesNative(t *testing.T) {
	wasm := acmeModule(t)
	for _, capture := range []string{acmeTrip, acmeRejects} {
		t.Run(filepath.Base(filepath.Dir(capture)), func(t *testing.T) {
			in := readFile(t, capture)
			nCode, nOut, nErr := runSplit(t, in, "decode", "-protocol", "acme", "-hex", "-now", recvFlag)
			wCode, wOut, wErr := runSplit(t, in, "decode", "-wasm", wasm, "-cache-dir", "", "-hex", "-now", recvFlag)
			if nCode != wCode {
				t.Fatalf("exit codes: native %d (%s), wasm %d (%s)", nCode, nErr, wCode, wErr)
			}
			native, wasmLines := decodedLines(t, nOut), decodedLines(t, wOut)
			if len(native) == 0 || len(native) != len(wasmLines) {
				t.Fatalf("native printed %d lines, wasm %d:\n%s\n---\n%s", len(native), len(wasmLines), nOut, wOut)
			}
			version := ""
			for i := range native {
				n, w := native[i], wasmLines[i]
				if n["error"] != nil || w["error"] != nil {
					ns, ws := sentinelOf(fmt.Sprint(n["error"])), sentinelOf(fmt.Sprint(w["error"]))
					if n["frame"] != w["frame"] || ns != ws {
						t.Errorf("line %d: native %v, wasm %v", i, n, w)
					}
					continue
				}
				if n["protocol"] != "acme" || w["protocol"] != "acme_wat" {
					t.Errorf("line %d: protocols %v and %v", i, n["protocol"], w["protocol"])
				}
				if _, ok := n["decoder_version"]; ok {
					t.Errorf("line %d: native decode printed a decoder version: %v", i, n)
				}
				v, _ := w["decoder_version"].(string)
				if !regexp.MustCompile(`^1\.0\.0\+sha256:[0-9a-f]{12}$`).MatchString(v) || (version != "" && v != version) {
					t.Errorf("line %d: decoder_version %q, want the module's 1.0.0+sha256:<12 hex>, the same on every line", i, v)
				}
				version = v
				delete(n, "protocol")
				delete(w, "protocol")
				delete(w, "decoder_version")
				nb, _ := json.Marshal(n)
				wb, _ := json.Marshal(w)
				if string(nb) != string(wb) {
					t.Errorf("line %d differs:\nnative %s\nwasm   %s", i, nb, wb)
				}
			}
		})
	}
}

// TestDecodeWASM holds the exit codes of `decode -wasm`: a module that
// does not load (missing, not WASM, failing its self-tests) is 1 with the
// reason; -protocol with -wasm, options the module does not declare, a
// transport it lacks are usage errors (2).
func TestDecodeWASM(t *testing.T) {
	dir := t.TempDir()
	wasm := acmeModule(t)
	junk := writeWASM(t, dir, "junk.wasm", []byte("not wasm"))
	failing := writeWASM(t, dir, "failing.wasm", acmeVariant(t, func(m string) string {
		return strings.Replace(m, `"ack_hex":"ac3e01830000907e"`, `"ack_hex":"ac3e01830000907f"`, 1)
	}, ""))
	huge := filepath.Join(dir, "huge.wasm")
	if err := os.WriteFile(huge, []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, maxDecoderFile+1); err != nil { // sparse
		t.Fatal(err)
	}
	hello := "ac3e0101000f3335363330373034323434313031332898\n"
	for _, tc := range []struct {
		name string
		args []string
		code int
		has  string
	}{
		{"decodes", []string{"-wasm", wasm, "-hex"}, 0, ""},
		{"options_declared", []string{"-wasm", wasm, "-hex", "-options", "ack=false"}, 0, ""},
		{"missing_file", []string{"-wasm", filepath.Join(dir, "none.wasm"), "-hex"}, 1, "decode: reading decoder: open "},
		{"too_large", []string{"-wasm", huge, "-hex"}, 1, "huge.wasm: larger than 67108864 bytes"},
		{"not_wasm", []string{"-wasm", junk, "-hex"}, 1, "junk.wasm"},
		{"self_test_fails", []string{"-wasm", failing, "-hex"}, 1, `self-test: 1 of 3 tests failed: test "hello, batch, heartbeat, bad CRC"`},
		{"both", []string{"-wasm", wasm, "-protocol", "acme", "-hex"}, 2, "-protocol and -wasm exclude each other"},
		{"unknown_option", []string{"-wasm", wasm, "-hex", "-options", "acks=false"}, 2, `decode: -options: `},
		{"bad_option_value", []string{"-wasm", wasm, "-hex", "-options", "ack=perhaps"}, 2, `"perhaps" is not true or false`},
		{"no_udp", []string{"-wasm", wasm, "-hex", "-udp"}, 2, "acme_wat does not support udp"},
		{"bad_now", []string{"-wasm", wasm, "-hex", "-now", "noon"}, 2, "parsing -now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runStdin(t, hello, append([]string{"decode", "-cache-dir", ""}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.has) {
				t.Errorf("exit code %d (want %d), output (want %q):\n%s", code, tc.code, tc.has, out)
			}
		})
	}
}

// TestDecodersTest holds `decoders test`: one result line per frame line
// (decoded with device and acks, rejected with the sentinel's kind,
// guest_failed with the failure's kind, skipped), the summary, and the exit
// codes: 0 when every line was decoded or rejected, 1 for a guest failure,
// a line without a frame, no frame or a module that does not load, 2 on
// usage.
func TestDecodersTest(t *testing.T) {
	dir := t.TempDir()
	wasm := acmeModule(t)
	trap := writeWASM(t, dir, "trap.wasm", acmeVariant(t, renamed("acme_trap"), trapOnHeartbeat))
	rejects := readFile(t, acmeRejects)
	const (
		hello     = "ac3e0101000f3335363330373034323434313031332898"
		batch     = "ac3e0102001900020169259a7c1f4e5fb007fe3420002401f403840002ffff6927"
		heartbeat = "ac3e01030000ab24"
	)
	for _, tc := range []struct {
		name  string
		args  []string
		in    string
		code  int
		has   []string
		lacks []string
	}{
		{"trip", []string{wasm, "-input", acmeTrip}, "", 0, []string{
			`{"frame":2,"status":"decoded","device":"356307042441013","acks_hex":["ac3e01810000fe1e"]}`,
			`{"frame":8,"status":"decoded","device":"356307042441013","acks_hex":["ac3e01820002000263c1"],"signals":[{"device_id":"356307042441013","ts":"2025-11-25T12:01:00Z","recv":"2026-11-25T12:00:00Z"`,
			"acme_wat 1.0.0+sha256:", ": self-tests 3 of 3 pass; frames=4 decoded=4 rejected=0 guest_failed=0 skipped=0 signals=3",
		}, nil},
		{"rejected_frames_are_answers", []string{wasm}, rejects, 0, []string{
			`{"frame":2,"status":"rejected","kind":"no_device","error":"decoding acme_wat frame: no device identification: no hello before this message"}`,
			`{"frame":6,"status":"rejected","kind":"checksum",`,
			`{"frame":8,"status":"rejected","kind":"unsupported",`,
			`{"frame":12,"status":"rejected","kind":"malformed","error":"framing acme_wat data: malformed frame: start bytes are not AC 3E"`,
			"frames=7 decoded=2 rejected=5 guest_failed=0 skipped=0 signals=1",
		}, nil},
		{"listen_only_option", []string{wasm, "-options", "ack=false"}, hello + "\n", 0,
			[]string{`{"frame":1,"status":"decoded","device":"356307042441013"}`}, []string{"acks_hex"}},
		{"guest_trap_costs_its_frame", []string{trap}, hello + "\n" + heartbeat + "\n" + batch + "\n", 1, []string{
			`{"frame":2,"status":"guest_failed","kind":"trap","error":"`,
			`{"frame":3,"status":"decoded","device":"356307042441013","acks_hex":["ac3e01820002000263c1"],"signals":[`,
			"acme_trap 1.0.0+sha256:", "self-tests 0 of 0 pass; frames=3 decoded=2 rejected=0 guest_failed=1 skipped=0 signals=1",
			"decoders test: 1 of 3 frame lines failed in the guest, 0 skipped (no frame)",
		}, nil},
		{"not_hex_is_skipped", []string{wasm}, hello + "\nzz\n", 1, []string{
			`{"frame":2,"status":"skipped","error":"decoding hex: encoding/hex: invalid byte: U+007A 'z'"}`,
			"0 of 2 frame lines failed in the guest, 1 skipped",
		}, nil},
		{"corpus_rows", []string{wasm, "-corpus", "-corpus-protocol", "acme"},
			`{"protocol":"acme","test_class":"A","test_method":"m","encoding":"hex","payload":"` + hello + `"}` + "\n" +
				`{"protocol":"gt06","test_class":"G","test_method":"m","encoding":"hex","payload":"78780d01"}` + "\n" +
				`{"protocol":"acme","test_class":"A","test_method":"m","encoding":"hex","payload":"` + batch + `"}` + "\n", 0,
			[]string{`{"frame":1,"status":"decoded"`, `{"frame":3,"status":"decoded","device":"356307042441013","acks_hex":["ac3e01820002000263c1"],"signals":[`, "frames=2 decoded=2"},
			[]string{`"frame":2`}},
		{"empty_input", []string{wasm}, "# nothing\n", 1, []string{"decoders test: no frame in the input"}, nil},
		{"module_refused", []string{writeWASM(t, dir, "junk.wasm", []byte("\x00asm junk"))}, hello, 1, []string{"decoders test: ", "junk.wasm"}, nil},
		{"no_module", nil, hello, 2, []string{"Usage: fleetcore decoders test"}, nil},
		{"two_modules", []string{wasm, wasm}, hello, 2, []string{"Usage: fleetcore decoders test"}, nil},
		{"unknown_option", []string{wasm, "-options", "nope=1"}, hello, 2, []string{"decoders test: -options: "}, nil},
		{"missing_input", []string{wasm, "-input", filepath.Join(dir, "none.hex")}, "", 1, []string{"decoders test: opening input: "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"decoders", "test"}, tc.args...)
			if !slices.Contains(tc.args, "-corpus") {
				args = append(args, "-hex")
			}
			args = append(args, "-cache-dir", "", "-now", recvFlag)
			code, out := runStdin(t, tc.in, args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d:\n%s", code, tc.code, out)
			}
			for _, s := range tc.has {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestDecodersInspect holds what `decoders inspect` prints of the example
// and of a module it refuses (exit 1, the reason).
func TestDecodersInspect(t *testing.T) {
	wasm := acmeModule(t)
	code, out := runCaptured(t, "decoders", "inspect", wasm)
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	for _, s := range []string{
		"size:          ", " bytes\nsha256:        ", "compile:       ", "(cold, no cache)", "memory:        2 pages (128 KiB)",
		"imports:       (none)", "fc_decode(i32, i32) -> (i64)", "memory (memory)",
		"name:          acme_wat", "version:       1.0.0+sha256:", "(meta 1.0.0;", "transports:    tcp", "default port:  5201",
		"state:         version 1, at most 15 bytes per connection",
		"options:       ack bool default true: answer hellos",
		"tests:         hello, batch, heartbeat, bad CRC (4 frames, tcp)", "records before the hello (1 frames, tcp)",
		"self-test:     3 of 3 tests pass",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	failing := writeWASM(t, t.TempDir(), "failing.wasm", acmeVariant(t, func(m string) string {
		return strings.Replace(m, `"error":"checksum"`, `"error":"malformed"`, 1)
	}, ""))
	code, out = runCaptured(t, "decoders", "inspect", failing)
	if code != 1 || !strings.Contains(out, "status:        refused") || !strings.Contains(out, `self-test: 1 of 3 tests failed: test "hello, batch, heartbeat, bad CRC"`) {
		t.Errorf("failing self-test: exit code %d, output:\n%s", code, out)
	}
	if code, out := runCaptured(t, "decoders", "inspect"); code != 2 || !strings.Contains(out, "Usage: fleetcore decoders inspect DECODER.wasm") {
		t.Errorf("no module: exit code %d, output:\n%s", code, out)
	}
}

// TestDecodersList lists a decoder folder: a line per .wasm file with name
// and version, a refused file and a second module of the same name marked,
// exit 1 then; 0 for a folder whose modules all load.
func TestDecodersList(t *testing.T) {
	dir := t.TempDir()
	acme := wasmfixture.WATFile(t, acmeWAT)
	writeWASM(t, dir, "a_acme.wasm", acme)
	writeWASM(t, dir, "b_again.wasm", acme)
	writeWASM(t, dir, "c_junk.wasm", []byte("junk"))
	writeWASM(t, dir, "notes.txt", []byte("not a module"))
	code, out := runCaptured(t, "decoders", "list", "-cache-dir", "", "-dir", dir)
	if code != 1 {
		t.Errorf("exit code %d, want 1:\n%s", code, out)
	}
	for _, re := range []string{
		`FILE\s+NAME\s+VERSION\s+TRANSPORTS\s+PORT\s+STATUS`,
		`a_acme\.wasm\s+acme_wat\s+1\.0\.0\+sha256:[0-9a-f]{12}\s+tcp\s+5201\s+ok`,
		`b_again\.wasm\s+acme_wat\s+1\.0\.0\+sha256:[0-9a-f]{12}\s+tcp\s+5201\s+refused: name acme_wat is also declared by a_acme\.wasm`,
		`c_junk\.wasm\s+-\s+-\s+-\s+-\s+refused: `,
		`decoders list: not every decoder in `,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "notes.txt") {
		t.Errorf("listed a file that is not .wasm:\n%s", out)
	}
	good := t.TempDir()
	writeWASM(t, good, "acme.wasm", acme)
	if code, out := runCaptured(t, "decoders", "list", "-cache-dir", "", "-dir", good); code != 0 || !strings.Contains(out, "acme_wat") {
		t.Errorf("good folder: exit code %d:\n%s", code, out)
	}
	if code, out := runCaptured(t, "decoders", "list", "-dir", filepath.Join(dir, "none")); code != 1 || !strings.Contains(out, "reading decoder folder") {
		t.Errorf("missing folder: exit code %d:\n%s", code, out)
	}
	if code, _ := runCaptured(t, "decoders", "list"); code != 2 {
		t.Errorf("no -dir: exit code %d, want 2", code)
	}
}

// TestClassify: the status and kind of a line from what replay made of it
// (the errors a WASM session returns, and one that breaks the decoder
// contract by wrapping no sentinel).
func TestClassify(t *testing.T) {
	guest := &wasmdecoder.Error{Decoder: "x", Kind: wasmdecoder.KindTimeout, Err: fmt.Errorf("%w: %w", wasmdecoder.ErrGuest, wasmdecoder.ErrTimeout)}
	for _, tc := range []struct {
		err          error
		status, kind string
	}{
		{nil, testDecoded, ""},
		{fmt.Errorf("decoding x frame: %w: bad", plugins.ErrChecksum), testRejected, "checksum"},
		{fmt.Errorf("%w: record 0: %w: lat 91 outside", plugins.ErrMalformed, signal.ErrInvalid), testRejected, "invalid_record"},
		{fmt.Errorf("decoding x frame: %w", plugins.ErrTooLarge), testRejected, "too_large"},
		{guest, testGuestFailed, "timeout"},
		{&wasmdecoder.Error{Kind: wasmdecoder.KindDisabled, Err: wasmdecoder.ErrDisabled}, testGuestFailed, "disabled"},
		{errors.New("something else"), testGuestFailed, "no_sentinel"},
		{fmt.Errorf("wrapped: %w", replay.ErrNoFrame), testSkipped, ""},
	} {
		l := classify(&replay.LineResult{Line: 3, Err: tc.err, Reject: []byte{0xab}})
		if l.Status != tc.status || l.Kind != tc.kind || l.Frame != 3 || (tc.err != nil) != (l.Error != "") || l.RejectHex != "ab" {
			t.Errorf("%v: %+v, want status %s kind %q", tc.err, l, tc.status, tc.kind)
		}
	}
}
