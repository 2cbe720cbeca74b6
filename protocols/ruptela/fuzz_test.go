package ruptela

import (
	"encoding/binary"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
)

// FuzzSession feeds arbitrary bytes through a session's framer and
// decoder, seeded with the conversation: nothing may panic, Frame never
// claims more bytes than it got, and every signal is complete.
func FuzzSession(f *testing.F) {
	for _, c := range conversation(f) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096})
		for len(data) > 0 {
			n, err := s.Frame(data)
			if err != nil || n == 0 {
				break
			}
			if n > len(data) {
				t.Fatalf("Frame = %d for %d bytes", n, len(data))
			}
			res, err := s.Decode(data[:n], recv)
			if err == nil {
				for _, sg := range res.Signals {
					if sg.DeviceID == "" || sg.Protocol != Name || len(sg.Frame) != n || sg.TS.IsZero() {
						t.Fatalf("incomplete signal %+v", sg)
					}
				}
			}
			data = data[n:]
		}
	})
}

// FuzzPayload wraps arbitrary command data in a valid packet (length,
// IMEI, CRC) of each command the decoder interprets, so the fuzzer reaches
// the record, DTC and reply decoders rather than the checksum.
func FuzzPayload(f *testing.F) {
	for _, c := range conversation(f) {
		f.Add(c[10], c[11:len(c)-2])
	}
	f.Fuzz(func(t *testing.T, cmd byte, data []byte) {
		if len(data) > 2000 {
			data = data[:2000]
		}
		for _, cmd := range []byte{cmd, CmdRecords, CmdExtendedRecords, CmdDTCs, CmdSMSResponse, CmdSetIO} {
			p := packet(binary.BigEndian.Uint64([]byte{0, 3, 0x11, 0x5c, 0x88, 0x5f, 0xa8, 0xc6}), cmd, data)
			res, err := (&Decoder{}).NewSession(plugins.SessionConfig{}).Decode(p, recv)
			if err != nil {
				continue
			}
			_ = plugins.CheckSignals(res.Signals)
			for _, sg := range res.Signals {
				if sg.DeviceID == "" || sg.TS.IsZero() {
					t.Fatalf("incomplete signal %+v", sg)
				}
			}
		}
	})
}
