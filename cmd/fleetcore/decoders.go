package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	fcsignal "github.com/fleetcore/fleetcore/signal"
)

func init() {
	commands["decoders"] = command{"test, inspect and list WASM protocol decoders (decoders test|inspect|list)", decodersCmd}
}

const decodersUsage = `Usage: fleetcore decoders SUBCOMMAND [flags]

Subcommands:
  test DECODER.wasm [-input CAPTURE]   load the module (compile, ABI checks, metadata
                                       self-tests), then replay a capture through it
                                       (the inputs 'fleetcore decode' reads) and print
                                       one result per frame line and a summary
  inspect DECODER.wasm                 print size, hash, compile and load time, imports,
                                       exports, memory, metadata (transports, port,
                                       options, state, tests) and the self-test result
  list -dir DIR                        load every .wasm file of a decoder folder and
                                       print one line per file: name, version, status

Run 'fleetcore decoders SUBCOMMAND -h' for a subcommand's flags.
`

// decodersCmd is `fleetcore decoders`.
func decodersCmd(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		out := io.Writer(os.Stdout)
		if len(args) == 0 {
			out = os.Stderr
		}
		fmt.Fprint(out, decodersUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "test":
		return decodersTest(ctx, args[1:])
	case "inspect":
		return decodersInspect(ctx, args[1:])
	case "list":
		return decodersList(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "fleetcore decoders: unknown subcommand %q\n\n%s", args[0], decodersUsage)
	return 2
}

// decodersTestExitCodes is the exit code rule of `fleetcore decoders
// test`, for -h and the README. A frame the decoder refuses with a plugins
// sentinel (checksum, malformed, …) is the decoder's answer, not a failure
// of the run, as a rule's fail verdict is for `rules test`.
const decodersTestExitCodes = `Exit status: 0 when the module loaded, passed its self-tests and handled
every frame line (decoded it, or refused it with a protocol error such as
checksum or malformed: status "rejected"); 1 when any frame made the guest
fail (trap, timeout, memory, ABI violation: status "guest_failed"), a line
held no frame (status "skipped": not hex, not a corpus row, a transport
the decoder lacks), the input held no frame, or the module did not load or
failed its self-tests; 2 on a usage error.`

// Statuses of a `decoders test` line.
const (
	testDecoded     = "decoded"      // the frames of the line decoded (maybe into no signal: a login)
	testRejected    = "rejected"     // the decoder refused the frame with a protocol error
	testGuestFailed = "guest_failed" // the guest trapped, timed out, ran out of memory or broke the ABI
	testSkipped     = "skipped"      // the line held no frame
)

var testStatuses = []string{testDecoded, testRejected, testGuestFailed, testSkipped}

// decoderTestLine is one output line of `decoders test`: what one input
// line holding a frame made.
type decoderTestLine struct {
	Frame  int    `json:"frame"`  // the input line
	Status string `json:"status"` // decoded, rejected, guest_failed, skipped
	// Kind names the refusal (rejected: malformed, checksum, too_large,
	// unauthorized, no_device, unsupported, invalid_record) or the guest's
	// failure (guest_failed: trap, timeout, memory, abi, …).
	Kind    string   `json:"kind,omitempty"`
	Error   string   `json:"error,omitempty"`
	Device  string   `json:"device,omitempty"`   // the session's device id after the line
	AcksHex []string `json:"acks_hex,omitempty"` // the acks written for the line's frames
	// RejectHex is the reply written before the close on a rejected frame.
	RejectHex string          `json:"reject_hex,omitempty"`
	Signals   []fcsignal.JSON `json:"signals,omitempty"`
}

// rejectionKind names the plugins sentinel a refusal wraps, as the ABI's
// self-tests do ("" when none).
func rejectionKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{fcsignal.ErrInvalid, "invalid_record"}, // wraps ErrMalformed too: first
		{plugins.ErrChecksum, "checksum"},
		{plugins.ErrTooLarge, "too_large"},
		{plugins.ErrUnauthorized, "unauthorized"},
		{plugins.ErrNoDevice, "no_device"},
		{plugins.ErrUnsupported, "unsupported"},
		{plugins.ErrMalformed, "malformed"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// classify turns one replayed line into its test line.
func classify(r *replay.LineResult) decoderTestLine {
	l := decoderTestLine{Frame: r.Line, Status: testDecoded, Device: r.Device}
	for _, a := range r.Acks {
		l.AcksHex = append(l.AcksHex, hex.EncodeToString(a))
	}
	for i := range r.Signals {
		l.Signals = append(l.Signals, r.Signals[i].ToJSON())
	}
	if len(r.Reject) > 0 {
		l.RejectHex = hex.EncodeToString(r.Reject)
	}
	switch err := r.Err; {
	case err == nil:
	case errors.Is(err, replay.ErrNoFrame):
		l.Status, l.Error = testSkipped, err.Error()
	case errors.Is(err, wasmdecoder.ErrGuest), errors.Is(err, wasmdecoder.ErrDisabled), errors.Is(err, wasmdecoder.ErrClosed):
		l.Status, l.Kind, l.Error = testGuestFailed, wasmdecoder.KindOf(err).String(), err.Error()
	default:
		l.Status, l.Kind, l.Error = testRejected, rejectionKind(err), err.Error()
		if l.Kind == "" {
			// An error that wraps no sentinel breaks the decoder contract.
			l.Status, l.Kind = testGuestFailed, "no_sentinel"
		}
	}
	return l
}

func decodersTest(ctx context.Context, args []string) int {
	fs := newFlagSetNote("decoders test", "decoders test DECODER.wasm [-input CAPTURE] [-hex | -corpus] [-udp] [-options k=v,…] [-now RFC3339]", decodersTestExitCodes)
	input := fs.String("input", "-", "the capture: one frame per line as 'fleetcore decode' reads it ('-' = stdin)")
	cacheDir := fs.String("cache-dir", defaultRuleCache(), "compilation cache directory ('' = none)")
	quiet := fs.Bool("q", false, "do not print the summary line on stderr")
	rf := addReplayFlags(fs)
	path, rest := splitPositional(args)
	if err := fs.Parse(rest); err != nil {
		return flagExit(err)
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" {
		fs.Usage()
		return 2
	}
	in := io.Reader(os.Stdin)
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return errorf("decoders test: opening input: %v", err)
		}
		defer f.Close()
		in = f
	}
	w, err := loadWASM(ctx, path, *cacheDir)
	if err != nil {
		return errorf("decoders test: %v", err)
	}
	defer w.close(context.Background())
	o, err := rf.replayOptions(w.mod)
	if err != nil {
		usageErrorf("decoders test: %v", err)
		return 2
	}
	counts := map[string]int{}
	signals := 0
	bw := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(bw)
	_, err = replay.Each(w.mod, in, o, func(r *replay.LineResult) error {
		l := classify(r)
		counts[l.Status]++
		signals += len(r.Signals)
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("writing results: %w", err)
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing results: %w", ferr)
	}
	if err != nil {
		return errorf("decoders test: %v", err)
	}
	lines := 0
	for _, n := range counts {
		lines += n
	}
	if !*quiet {
		parts := []string{fmt.Sprintf("self-tests %d of %d pass;", len(w.mod.Meta().Tests), len(w.mod.Meta().Tests)), fmt.Sprintf("frames=%d", lines)}
		for _, s := range testStatuses {
			parts = append(parts, fmt.Sprintf("%s=%d", s, counts[s]))
		}
		parts = append(parts, fmt.Sprintf("signals=%d", signals))
		fmt.Fprintf(os.Stderr, "%s %s: %s\n", w.mod.Name(), w.mod.Version(), strings.Join(parts, " "))
	}
	switch {
	case lines == 0:
		return errorf("decoders test: no frame in the input")
	case counts[testGuestFailed] > 0 || counts[testSkipped] > 0:
		return errorf("decoders test: %d of %d frame lines failed in the guest, %d skipped (no frame)", counts[testGuestFailed], lines, counts[testSkipped])
	}
	return 0
}

func decodersInspect(ctx context.Context, args []string) int {
	fs := newFlagSet("decoders inspect", "decoders inspect DECODER.wasm")
	path, rest := splitPositional(args)
	if err := fs.Parse(rest); err != nil {
		return flagExit(err)
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" {
		fs.Usage()
		return 2
	}
	if err := inspectDecoder(ctx, path, os.Stdout); err != nil {
		return errorf("decoders inspect: %v", err)
	}
	return 0
}

// inspectDecoder prints what a decoder module is. It loads the module
// without a compilation cache, so the compile time is a cold one, and
// returns the load error (after the file's size and hash) when the module
// is refused.
func inspectDecoder(ctx context.Context, path string, out io.Writer) error {
	wasm, err := readDecoderFile(path)
	if err != nil {
		return err
	}
	w := &errWriter{w: out}
	sum := sha256Hex(wasm)
	w.printf("file:          %s\n", path)
	w.printf("size:          %d bytes\n", len(wasm))
	w.printf("sha256:        %s\n", sum)
	t, err := loadWASMBytes(ctx, path, wasm, "")
	if err != nil {
		w.printf("status:        refused\n")
		w.printf("error:         %v\n", err)
		return errors.Join(err, w.err)
	}
	defer t.close(context.Background())
	m := t.mod
	meta := m.Meta()
	w.printf("compile:       %v (cold, no cache)\n", m.CompileTime().Round(time.Microsecond))
	w.printf("load:          %v (compile, ABI checks, first instance, metadata, self-tests)\n", t.loadTime.Round(time.Microsecond))
	w.printf("memory:        %d pages (%d KiB) after initialisation\n", m.MemoryPages(), m.MemoryPages()*64)
	imports := m.Imports()
	sort.Strings(imports)
	if len(imports) == 0 {
		imports = []string{"(none)"}
	}
	w.printf("imports:       %s\n", strings.Join(imports, "\n               "))
	exports := m.Exports()
	sort.Strings(exports)
	w.printf("exports:       %s\n", strings.Join(exports, "\n               "))
	w.printf("name:          %s\n", meta.Name)
	w.printf("version:       %s (meta %s; recorded on every signal as decoder_version)\n", m.Version(), meta.Version)
	w.printf("abi:           %d\n", meta.ABI)
	if meta.Description != "" {
		w.printf("description:   %s\n", meta.Description)
	}
	w.printf("transports:    %s\n", strings.Join(meta.Transports, ", "))
	w.printf("default port:  %d\n", meta.DefaultPort)
	if meta.MaxFrame > 0 {
		w.printf("max frame:     %d bytes\n", meta.MaxFrame)
	}
	w.printf("state:         version %d, at most %d bytes per connection\n", meta.StateVersion, meta.StateMax)
	if len(meta.Options) == 0 {
		w.printf("options:       (none)\n")
	}
	for i, o := range meta.Options {
		label := "               "
		if i == 0 {
			label = "options:       "
		}
		w.printf("%s%s\n", label, optionLine(o))
	}
	if len(meta.Tests) == 0 {
		w.printf("tests:         (none)\n")
	}
	for i, tc := range meta.Tests {
		label := "               "
		if i == 0 {
			label = "tests:         "
		}
		tr := tc.Transport
		if tr == "" {
			tr = "default transport"
		}
		w.printf("%s%s (%d frames, %s)\n", label, tc.Name, len(tc.Frames), tr)
	}
	w.printf("self-test:     %d of %d tests pass\n", len(meta.Tests), len(meta.Tests))
	return w.err
}

// optionLine is one declared option: name, type, default, range, help.
func optionLine(o wasmdecoder.OptionMeta) string {
	s := o.Name + " " + o.Type
	if len(o.Default) > 0 {
		s += " default " + string(o.Default)
	}
	switch {
	case len(o.Values) > 0:
		s += " one of " + strings.Join(o.Values, "|")
	case o.Min != nil || o.Max != nil:
		lo, hi := "…", "…"
		if o.Min != nil {
			lo = fmt.Sprint(*o.Min)
		}
		if o.Max != nil {
			hi = fmt.Sprint(*o.Max)
		}
		s += " in [" + lo + ", " + hi + "]"
	}
	if o.Help != "" {
		s += ": " + o.Help
	}
	return s
}

func decodersList(ctx context.Context, args []string) int {
	const exitCodes = `Exit status: 0 when every .wasm file of the folder loads; 1 when any is
refused (its line says why) or two declare the same name, or the folder
cannot be read; 2 on a usage error.`
	fs := newFlagSetNote("decoders list", "decoders list -dir DIR", exitCodes)
	dir := fs.String("dir", "", "the decoder folder (decoders { dir = … } of the config)")
	cacheDir := fs.String("cache-dir", defaultRuleCache(), "compilation cache directory ('' = none)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *dir == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	ok, err := listDecoders(ctx, *dir, *cacheDir, os.Stdout)
	if err != nil {
		return errorf("decoders list: %v", err)
	}
	if !ok {
		return errorf("decoders list: not every decoder in %s loads", *dir)
	}
	return 0
}

// listDecoders loads every .wasm file of dir (not recursing) and prints
// one line per file; ok is false when any is refused or a name is taken
// twice.
func listDecoders(ctx context.Context, dir, cacheDir string, out io.Writer) (ok bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("reading decoder folder: %w", err)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	w := &errWriter{w: tw}
	w.printf("FILE\tNAME\tVERSION\tTRANSPORTS\tPORT\tSTATUS\n")
	ok = true
	seen := map[string]string{} // name -> file
	n := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".wasm") {
			continue
		}
		n++
		t, err := loadWASM(ctx, filepath.Join(dir, e.Name()), cacheDir)
		if err != nil {
			ok = false
			w.printf("%s\t-\t-\t-\t-\trefused: %s\n", e.Name(), oneLine(err.Error()))
			continue
		}
		m := t.mod
		status := "ok"
		if other, dup := seen[m.Name()]; dup {
			ok = false
			status = "refused: name " + m.Name() + " is also declared by " + other
		} else {
			seen[m.Name()] = e.Name()
		}
		w.printf("%s\t%s\t%s\t%s\t%d\t%s\n", e.Name(), m.Name(), m.Version(), strings.Join(m.Meta().Transports, ","), m.Meta().DefaultPort, status)
		t.close(context.Background())
	}
	if n == 0 {
		w.printf("(no .wasm file)\t\t\t\t\t\n")
	}
	if err := tw.Flush(); err != nil && w.err == nil {
		w.err = fmt.Errorf("writing the list: %w", err)
	}
	return ok, w.err
}

// oneLine keeps an error on its table line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	if _, err := fmt.Fprintf(e.w, format, args...); err != nil {
		e.err = fmt.Errorf("writing output: %w", err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
