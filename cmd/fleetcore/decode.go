package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

func init() {
	commands["decode"] = command{"decode frames from stdin (one per line) and print signals as JSON", decodeCmd}
}

// decodeExitCodes is the exit code rule of `fleetcore decode`, for -h and
// the README.
const decodeExitCodes = `Exit status: 0 when every input line held a frame that decoded; 1 when
any line was rejected (its {"frame": N, "error": …} line is printed), no
line held a frame, reading failed, or the -wasm module did not load (or
failed its self-tests); 2 on a usage error (a bad flag, a missing or
unknown -protocol, both -protocol and -wasm, options the decoder refuses,
-udp for a decoder without UDP).`

func decodeCmd(args []string) int {
	fs := newFlagSetNote("decode", "decode (-protocol NAME | -wasm FILE.wasm) [-hex | -corpus] [-udp] [-options k=v,…] [-now RFC3339] < frames", decodeExitCodes)
	proto := fs.String("protocol", "", "decoder name ("+joinNames()+")")
	wasmPath := fs.String("wasm", "", "decode with this WASM decoder module instead of a built-in protocol (loaded and self-tested as the server does)")
	cacheDir := fs.String("cache-dir", defaultRuleCache(), "compilation cache directory for -wasm ('' = none)")
	rf := addReplayFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		usageErrorf("decode: unexpected argument %q (frames are read from stdin)", fs.Arg(0))
		return 2
	}
	var dec plugins.Decoder
	switch {
	case *proto != "" && *wasmPath != "":
		usageErrorf("decode: -protocol and -wasm exclude each other")
		return 2
	case *wasmPath != "":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		w, err := loadWASM(ctx, *wasmPath, *cacheDir)
		if err != nil {
			return errorf("decode: %v", err)
		}
		defer w.close(context.Background())
		dec = w.mod
	case *proto == "":
		usageErrorf("decode: -protocol or -wasm is required (known protocols: %s)", joinNames())
		return 2
	default:
		d, ok := plugins.Decoders.Lookup(*proto)
		if !ok {
			usageErrorf("decode: unknown protocol %q (known: %s)", *proto, joinNames())
			return 2
		}
		dec = d
	}
	o, err := rf.replayOptions(dec)
	if err != nil {
		usageErrorf("decode: %v", err)
		return 2
	}
	w := bufio.NewWriter(os.Stdout)
	sum, err := replay.Decode(dec, os.Stdin, w, o)
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing output: %w", ferr)
	}
	switch {
	case err != nil:
		return errorf("decode: %v", err)
	case sum.Frames == 0:
		return errorf("decode: no frame in the input")
	case sum.Rejected > 0:
		return errorf("decode: %d of %d frames rejected", sum.Rejected, sum.Frames)
	}
	return 0
}

func joinNames() string {
	s := ""
	for i, n := range plugins.Decoders.Names() {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}
