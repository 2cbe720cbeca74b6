package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// replayFlags are the input flags that `decode` and `decoders test` share:
// how each input line holds a frame, and the session it goes through.
type replayFlags struct {
	hex, udp, corpus *bool
	corpusProtocol   *string
	maxFrame         *int
	now              *string
	options          optionsFlag
}

func addReplayFlags(fs *flag.FlagSet) *replayFlags {
	f := &replayFlags{options: optionsFlag{}}
	f.hex = fs.Bool("hex", false, "each line is a frame in hex")
	f.udp = fs.Bool("udp", false, "each line is one UDP datagram")
	f.corpus = fs.Bool("corpus", false, "each line is a capture corpus row (shared/testdata/traccar-frames*.jsonl: encoding, payload,\ntransport and decoder_state from the row; one session per test method)")
	f.corpusProtocol = fs.String("corpus-protocol", "", "with -corpus: replay the rows of this protocol (default: the decoder's name)")
	f.maxFrame = fs.Int("max-frame", 64<<10, "cap on a frame's length in bytes")
	f.now = fs.String("now", "", "receive time of every frame, RFC 3339 (default: the current time)")
	fs.Var(f.options, "options", "listener options of the session, `k=v,k=v` (the decoder's declared options; repeatable)")
	return f
}

// replayOptions turns the flags into replay options for dec; the error is
// a usage error (a bad -now, options the decoder refuses).
func (f *replayFlags) replayOptions(dec plugins.Decoder) (replay.Options, error) {
	o := replay.Options{Hex: *f.hex, MaxFrame: *f.maxFrame, Corpus: *f.corpus, CorpusProtocol: *f.corpusProtocol}
	if *f.udp {
		o.Transport = plugins.UDP
	}
	if *f.maxFrame <= 0 {
		return o, fmt.Errorf("-max-frame %d: must be positive", *f.maxFrame)
	}
	if *f.corpusProtocol != "" && !*f.corpus {
		return o, fmt.Errorf("-corpus-protocol needs -corpus")
	}
	if *f.corpus && (*f.hex || *f.udp) {
		return o, fmt.Errorf("-corpus takes the encoding and transport from each row: drop -hex and -udp")
	}
	if *f.now != "" {
		t, err := time.Parse(time.RFC3339Nano, *f.now)
		if err != nil {
			return o, fmt.Errorf("parsing -now: %v", err)
		}
		o.Now = func() time.Time { return t }
	}
	if len(f.options) > 0 {
		if _, err := plugins.DecodeOptions(dec, f.options); err != nil {
			return o, fmt.Errorf("-options: %v", err)
		}
		o.Options = f.options
	}
	tr := plugins.TCP
	if *f.udp {
		tr = plugins.UDP
	}
	if !*f.corpus && !supports(dec.Info(), tr) {
		return o, fmt.Errorf("%s does not support %s (it supports %v)", dec.Info().Name, tr, dec.Info().Transports)
	}
	return o, nil
}

func supports(info plugins.Info, tr plugins.Transport) bool {
	for _, t := range info.Transports {
		if t == tr {
			return true
		}
	}
	return false
}

// optionsFlag collects -options k=v,k=v (repeatable).
type optionsFlag map[string]string

func (o optionsFlag) String() string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + o[k]
	}
	return strings.Join(parts, ",")
}

func (o optionsFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", kv)
		}
		if _, dup := o[k]; dup {
			return fmt.Errorf("option %q given twice", k)
		}
		o[k] = v
	}
	return nil
}

// wasmTool is a WASM decoder module loaded for a command-line tool: its
// host and the module, closed together.
type wasmTool struct {
	host *wasmdecoder.Host
	mod  *wasmdecoder.Module
	// loadTime is how long Load took (compile, checks, first instance,
	// self-tests).
	loadTime time.Duration
}

// loadWASM loads the decoder module at path as the server would (compile,
// ABI checks, metadata, self-tests), with a compilation cache in cacheDir
// ("" = none). A module never disables itself here: a tool reports every
// frame.
func loadWASM(ctx context.Context, path, cacheDir string) (*wasmTool, error) {
	wasm, err := readDecoderFile(path)
	if err != nil {
		return nil, err
	}
	return loadWASMBytes(ctx, path, wasm, cacheDir)
}

// loadWASMBytes is loadWASM of bytes already read from path.
func loadWASMBytes(ctx context.Context, path string, wasm []byte, cacheDir string) (*wasmTool, error) {
	host, err := wasmdecoder.NewHost(wasmdecoder.Config{CacheDir: cacheDir, MaxFailures: 1 << 30, Logger: hclog.NewNullLogger()})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	mod, err := host.Load(ctx, path, wasm)
	if err != nil {
		_ = host.Close(ctx)
		return nil, err
	}
	return &wasmTool{host: host, mod: mod, loadTime: time.Since(start)}, nil
}

// maxDecoderFile caps a decoder module the tools read, as the server's
// decoder folder does (64 MiB; real decoders are tens of KiB to a few MiB).
const maxDecoderFile = 64 << 20

// readDecoderFile reads a module, refusing one over maxDecoderFile unread.
func readDecoderFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading decoder: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxDecoderFile {
		return nil, fmt.Errorf("reading decoder %s: larger than %d bytes (%d)", path, maxDecoderFile, st.Size())
	}
	// A file that grows while it is read is cut here.
	b, err := io.ReadAll(io.LimitReader(f, maxDecoderFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading decoder %s: %w", path, err)
	}
	if len(b) > maxDecoderFile {
		return nil, fmt.Errorf("reading decoder %s: larger than %d bytes", path, maxDecoderFile)
	}
	return b, nil
}

func (w *wasmTool) close(ctx context.Context) {
	_ = w.mod.Close(ctx)
	_ = w.host.Close(ctx)
}
