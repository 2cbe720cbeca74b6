package main

import (
	"bufio"
	"fmt"
	"os"

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
line held a frame, or reading failed; 2 on a usage error (a bad flag, a
missing or unknown -protocol).`

func decodeCmd(args []string) int {
	fs := newFlagSetNote("decode", "decode -protocol NAME [-hex] [-udp] < frames", decodeExitCodes)
	proto := fs.String("protocol", "", "decoder name ("+joinNames()+")")
	hexIn := fs.Bool("hex", false, "each line is a frame in hex")
	udp := fs.Bool("udp", false, "each line is one UDP datagram")
	maxFrame := fs.Int("max-frame", 64<<10, "cap on a frame's length in bytes")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *proto == "" {
		usageErrorf("decode: -protocol is required (known: %s)", joinNames())
		return 2
	}
	dec, ok := plugins.Decoders.Lookup(*proto)
	if !ok {
		usageErrorf("decode: unknown protocol %q (known: %s)", *proto, joinNames())
		return 2
	}
	tr := plugins.TCP
	if *udp {
		tr = plugins.UDP
	}
	w := bufio.NewWriter(os.Stdout)
	sum, err := replay.Decode(dec, os.Stdin, w, replay.Options{Hex: *hexIn, Transport: tr, MaxFrame: *maxFrame})
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
