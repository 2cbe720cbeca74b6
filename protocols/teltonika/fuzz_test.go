package teltonika

import (
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

// fuzzSeeds are the Traccar captures plus hand-built frames.
func fuzzSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		for _, b := range readHex(f, name) {
			f.Add(b)
		}
	}
	f.Add(loginFrame(testIMEI))
	f.Add([]byte{0xFF})
	f.Add(tcpFrame(avlData(Codec8, []rec{sampleRecord})))
	f.Add(tcpFrame(avlData(Codec8E, []rec{sampleRecord})))
	f.Add(tcpFrame(avlData(Codec16, []rec{sampleRecord})))
	f.Add(tcpFrame(gprsData(Codec12, msgResponse, []byte("ok"))))
}

// FuzzFrame checks the framer never panics, never frames past the input and
// is consistent: a framed prefix frames the same on a longer buffer.
func FuzzFrame(f *testing.F) {
	fuzzSeeds(f, "testdata/traccar-tcp.hex", "testdata/traccar-photo.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096})
		n, err := s.Frame(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("Frame returned %d with error %v", n, err)
			}
			return
		}
		if n < 0 || n > len(b) || n > 4096 {
			t.Fatalf("Frame returned %d for %d bytes", n, len(b))
		}
		if n > 0 {
			m, err := s.Frame(append(append([]byte(nil), b...), 0, 1, 2))
			if m != n || err != nil {
				t.Fatalf("Frame on a longer buffer = %d, %v; want %d", m, err, n)
			}
		}
	})
}

// FuzzDecode decodes arbitrary frames after a login: no panic, and every
// signal carries the IMEI and a frame copy; an ack only with signals or a
// GPRS-free AVL frame.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f, "testdata/traccar-tcp.hex", "testdata/traccar-photo.hex")
	recv := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 1 << 16})
		if _, err := s.Decode(loginFrame(testIMEI), recv); err != nil {
			t.Fatal(err)
		}
		res, err := s.Decode(b, recv)
		if err != nil {
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Fatalf("error %v with %d signals and ack %x", err, len(res.Signals), res.Ack)
			}
			return
		}
		for _, sig := range res.Signals {
			if sig.DeviceID == "" || sig.Protocol != Name || len(sig.Frame) != len(b) {
				t.Fatalf("signal device %q protocol %q frame %d bytes", sig.DeviceID, sig.Protocol, len(sig.Frame))
			}
		}
	})
}

// FuzzDecodeUDP decodes arbitrary datagrams.
func FuzzDecodeUDP(f *testing.F) {
	fuzzSeeds(f, "testdata/traccar-udp.hex")
	f.Add(udpDatagram(1, 2, testIMEI, avlData(Codec8E, []rec{sampleRecord})))
	recv := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.UDP, MaxFrame: 1 << 16})
		res, err := s.Decode(b, recv)
		if err != nil && (len(res.Signals) != 0 || res.Ack != nil) {
			t.Fatalf("error %v with %d signals and ack %x", err, len(res.Signals), res.Ack)
		}
		if err == nil && len(res.Signals) > 0 && len(res.Ack) != 7 {
			t.Fatalf("signals acked with %x", res.Ack)
		}
	})
}
