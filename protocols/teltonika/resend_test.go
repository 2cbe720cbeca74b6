package teltonika

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// TestServerTimedResend: a codec 12 reply (no device time) sent again on a
// new connection gets the same key; over UDP the next datagram (next
// packet id) gets another even with the same text.
func TestServerTimedResend(t *testing.T) {
	d := &Decoder{}
	recv := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := func(tr plugins.Transport, frames [][]byte, at time.Time) signal.Key {
		t.Helper()
		s := d.NewSession(plugins.SessionConfig{Transport: tr})
		var res plugins.Result
		var err error
		for _, f := range frames {
			if res, err = s.Decode(f, at); err != nil {
				t.Fatalf("%x: %v", f, err)
			}
		}
		if len(res.Signals) != 1 {
			t.Fatalf("%d signals", len(res.Signals))
		}
		return res.Signals[0].Key()
	}
	reply := gprsData(Codec12, msgResponse, []byte("DOUT1:1 \r\n"))
	tcp := [][]byte{loginFrame(testIMEI), tcpFrame(reply)}
	first := key(plugins.TCP, tcp, recv)
	if again := key(plugins.TCP, tcp, recv.Add(90*time.Second)); again != first {
		t.Errorf("TCP resend key %+v, first %+v", again, first)
	}
	other := [][]byte{loginFrame(testIMEI), tcpFrame(gprsData(Codec12, msgResponse, []byte("DOUT1:0 \r\n")))}
	if k := key(plugins.TCP, other, recv.Add(91*time.Second)); k == first {
		t.Errorf("another reply got the first one's key")
	}

	udp1 := [][]byte{udpDatagram(7, 1, testIMEI, reply)}
	firstUDP := key(plugins.UDP, udp1, recv)
	if again := key(plugins.UDP, udp1, recv.Add(30*time.Second)); again != firstUDP {
		t.Errorf("UDP resend key %+v, first %+v", again, firstUDP)
	}
	if k := key(plugins.UDP, [][]byte{udpDatagram(8, 2, testIMEI, reply)}, recv.Add(31*time.Second)); k == firstUDP {
		t.Errorf("the next datagram (packet id 8) got the first one's key")
	}
}

// TestRecordTimestampBeyond9999: a record time that no clock can hold is
// refused, not stored.
func TestRecordTimestampBeyond9999(t *testing.T) {
	bad := sampleRecord
	bad.ts = maxAVLMillis + 1
	s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP})
	if _, err := s.Decode(loginFrame(testIMEI), time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := s.Decode(tcpFrame(avlData(Codec8, []rec{bad})), time.Now())
	if !errors.Is(err, plugins.ErrMalformed) || !strings.Contains(err.Error(), "timestamp") {
		t.Fatalf("error = %v, want ErrMalformed naming the timestamp", err)
	}
	if len(res.Signals) != 0 || res.Ack != nil {
		t.Errorf("refused frame: %d signals, ack %x", len(res.Signals), res.Ack)
	}
}
