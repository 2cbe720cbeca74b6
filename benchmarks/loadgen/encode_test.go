package loadgen

import (
	"bufio"
	"bytes"
	"math"
	"net"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	_ "github.com/fleetcore/fleetcore/protocols/all"
	"github.com/fleetcore/fleetcore/signal"
)

// decodeAll feeds stream through a fresh session of the registered
// decoder, frame by frame, and returns the signals, the concatenated acks
// and the first error.
func decodeAll(t *testing.T, sess plugins.Session, stream []byte) ([]signal.Signal, []byte, error) {
	t.Helper()
	var sigs []signal.Signal
	var acks []byte
	recv := time.Now().UTC()
	for len(stream) > 0 {
		n, err := sess.Frame(stream)
		if err != nil {
			return sigs, acks, err
		}
		if n == 0 {
			t.Fatalf("decoder wants more bytes than the encoder wrote (%d left: %q)", len(stream), stream)
		}
		res, err := sess.Decode(stream[:n], recv)
		if err != nil {
			return sigs, acks, err
		}
		sigs = append(sigs, res.Signals...)
		acks = append(acks, res.Ack...)
		stream = stream[n:]
	}
	return sigs, acks, nil
}

func newSession(t *testing.T, proto string) plugins.Session {
	t.Helper()
	dec, ok := plugins.Decoders.Lookup(proto)
	if !ok {
		t.Fatalf("protocol %s has a load generator codec but no registered decoder (registered: %v)", proto, plugins.Decoders.Names())
	}
	return dec.NewSession(plugins.SessionConfig{
		Transport: plugins.TCP, RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, MaxFrame: 64 << 10,
	})
}

func testRecords(codec Codec, n int) []Record {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{
			TS:  base.Add(time.Duration(i) * max(codec.Resolution(), 250*time.Millisecond)).Truncate(codec.Resolution()),
			Lat: 48.856613 + float64(i)*0.001, Lon: -2.352222 + float64(i)*0.002, Alt: 120,
			Speed: float64(40 + i), Heading: float64(90 + i), Sats: 9, Odo: 1234.5, Volt: 13.8,
		}
	}
	out[n-1].Lat, out[n-1].Lon, out[n-1].Sats, out[n-1].Speed = 0, 0, 0, 0 // a zero fix
	return out
}

func TestCodecRoundTrip(t *testing.T) {
	const imei = "356307042441013"
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			codec, _ := CodecFor(name)
			sess := newSession(t, name)
			if hello := codec.Hello(imei, 1); hello != nil {
				sigs, ack, err := decodeAll(t, sess, hello)
				if err != nil || len(sigs) != 0 {
					t.Fatalf("login: %d signals, error %v", len(sigs), err)
				}
				if err := codec.ReadHelloAck(bufio.NewReader(bytes.NewReader(ack))); err != nil {
					t.Fatalf("login reply % x: %v", ack, err)
				}
			}
			n := min(3, codec.MaxPerFrame())
			var stream []byte
			var want []Record
			for serial := uint16(2); len(want) < 3; serial++ {
				recs := testRecords(codec, 3)[len(want):][:n]
				if len(want)+n == 3 {
					recs = testRecords(codec, 3)[len(want):]
				}
				stream = codec.Encode(stream, imei, serial, recs, false)
				want = append(want, recs...)
			}
			sigs, acks, err := decodeAll(t, sess, stream)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			if len(sigs) != len(want) {
				t.Fatalf("got %d signals, want %d", len(sigs), len(want))
			}
			for i, s := range sigs {
				w := want[i]
				if s.DeviceID != imei || !s.TS.Equal(w.TS) {
					t.Errorf("signal %d: device %q ts %v, want %q %v", i, s.DeviceID, s.TS, imei, w.TS)
				}
				if math.Abs(s.Lat-w.Lat) > 1e-5 || math.Abs(s.Lon-w.Lon) > 1e-5 {
					t.Errorf("signal %d: position %v,%v, want %v,%v", i, s.Lat, s.Lon, w.Lat, w.Lon)
				}
				if math.Abs(s.Speed-w.Speed) > 1.5 {
					t.Errorf("signal %d: speed %v, want %v", i, s.Speed, w.Speed)
				}
			}
			r := bufio.NewReader(bytes.NewReader(acks))
			serial := uint16(2)
			for left := len(want); left > 0; left -= n {
				k := min(n, left)
				if err := codec.ReadAck(r, serial, k); err != nil {
					t.Fatalf("reading the decoder's ack % x as the device: %v", acks, err)
				}
				serial++
			}
			if r.Buffered() != 0 {
				t.Errorf("%d ack bytes left over", r.Buffered())
			}
			// The same records again (a resend) must hash the same.
			sess2 := newSession(t, name)
			if hello := codec.Hello(imei, 1); hello != nil {
				decodeAll(t, sess2, hello) //nolint:errcheck // checked above
			}
			again, _, err := decodeAll(t, sess2, stream)
			if err != nil || len(again) != len(sigs) {
				t.Fatalf("resend: %d signals, %v", len(again), err)
			}
			for i := range again {
				if again[i].Key() != sigs[i].Key() {
					t.Errorf("signal %d: resend key %v differs from %v", i, again[i].Key(), sigs[i].Key())
				}
			}
		})
	}
}

func TestCodecCorruptFramesAreRejected(t *testing.T) {
	const imei = "356307042441013"
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			codec, _ := CodecFor(name)
			sess := newSession(t, name)
			if hello := codec.Hello(imei, 1); hello != nil {
				if _, _, err := decodeAll(t, sess, hello); err != nil {
					t.Fatalf("login: %v", err)
				}
			}
			frame := codec.Encode(nil, imei, 2, testRecords(codec, 1), true)
			sigs, acks, err := decodeAll(t, sess, frame)
			if err == nil {
				t.Fatalf("corrupted frame %q accepted: %d signals, ack %q", frame, len(sigs), acks)
			}
		})
	}
}

func TestCodecAckMismatch(t *testing.T) {
	tests := []struct {
		proto string
		ack   []byte
	}{
		{"teltonika", []byte{0, 0, 0, 2}},              // wrong count
		{"gt06", gt06Packet(nil, 0x10, nil, 9, false)}, // wrong serial
		{"gl200", []byte("+SACK:0009$")},               // wrong count
		{"jsonl", []byte(`{"error": "x"}` + "\n")},
		{"jt808", jt808Message(nil, 0x8001, "356307042441013", 0, []byte{0, 9, 2, 0, 0}, false)}, // wrong serial
		{"osmand", []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")},
		{"meitrack", meitrackEnvelope(nil, '@', meitrackFlag(3), []byte(",356307042441013,CCC,2"))}, // wrong count
		{"meitrack", meitrackEnvelope(nil, '@', meitrackFlag(4), []byte(",356307042441013,CCC,1"))}, // another frame's flag
	}
	for _, tc := range tests {
		t.Run(tc.proto, func(t *testing.T) {
			codec, err := CodecFor(tc.proto)
			if err != nil {
				t.Fatal(err)
			}
			if err := codec.ReadAck(bufio.NewReader(bytes.NewReader(tc.ack)), 3, 1); err == nil {
				t.Fatalf("ack %q accepted", tc.ack)
			}
		})
	}
}

// Known check values of the two CRCs ("123456789").
func TestCRCCheckValues(t *testing.T) {
	if got := teltonikaCRC([]byte("123456789")); got != 0xBB3D {
		t.Errorf("CRC-16/IBM check = %#04x, want 0xbb3d", got)
	}
	if got := gt06CRC([]byte("123456789")); got != 0x906E {
		t.Errorf("CRC-16/X-25 check = %#04x, want 0x906e", got)
	}
}
