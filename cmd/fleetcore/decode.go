package main

import (
	"bufio"
	"os"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/replay"
)

func init() {
	commands["decode"] = command{"decode frames from stdin (one per line) and print signals as JSON", decodeCmd}
}

func decodeCmd(args []string) int {
	fs := newFlagSet("decode", "decode -protocol NAME [-hex] [-udp] < frames")
	proto := fs.String("protocol", "", "decoder name ("+joinNames()+")")
	hexIn := fs.Bool("hex", false, "each line is a frame in hex")
	udp := fs.Bool("udp", false, "each line is one UDP datagram")
	maxFrame := fs.Int("max-frame", 64<<10, "cap on a frame's length in bytes")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	dec, ok := plugins.Decoders.Lookup(*proto)
	if !ok {
		fs.Usage()
		return errorf("unknown protocol %q (known: %s)", *proto, joinNames())
	}
	tr := plugins.TCP
	if *udp {
		tr = plugins.UDP
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	if err := replay.Run(dec, os.Stdin, w, replay.Options{Hex: *hexIn, Transport: tr, MaxFrame: *maxFrame}); err != nil {
		w.Flush()
		return errorf("%v", err)
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
