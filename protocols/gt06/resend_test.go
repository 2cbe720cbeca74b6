package gt06

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/plugins"
)

// TestHeartbeatResend: a heartbeat (no device time) sent again on a new
// connection, with the same serial number, gets the same key; the next
// heartbeat (next serial, same content) gets another.
func TestHeartbeatResend(t *testing.T) {
	d := &Decoder{}
	login, _ := hex.DecodeString("78780d01012345678901234500018cdd0d0a")
	content := []byte{0xc4, 0x06, 0x04, 0x00, 0x02}
	recv := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := func(frame []byte, at time.Time) signal.Key {
		t.Helper()
		s := d.NewSession(plugins.SessionConfig{Transport: plugins.TCP})
		if _, err := s.Decode(login, at); err != nil {
			t.Fatal(err)
		}
		res, err := s.Decode(frame, at)
		if err != nil || len(res.Signals) != 1 {
			t.Fatalf("heartbeat %x: %d signals, %v", frame, len(res.Signals), err)
		}
		return res.Signals[0].Key()
	}
	first := key(Response(false, msgHeartbeat, content, 0x0129), recv)
	if again := key(Response(false, msgHeartbeat, content, 0x0129), recv.Add(40*time.Second)); again != first {
		t.Errorf("resend key %+v, first %+v", again, first)
	}
	if next := key(Response(false, msgHeartbeat, content, 0x012A), recv.Add(41*time.Second)); next == first {
		t.Errorf("the next heartbeat (serial 0x012A) got the first one's key %+v", first)
	}
}

// TestInfoTimeMalformed: a 0x94 door-status packet whose device time is not
// a date is refused, not stored at the server's time.
func TestInfoTimeMalformed(t *testing.T) {
	login, _ := hex.DecodeString("78780d01012345678901234500018cdd0d0a")
	s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP})
	if _, err := s.Decode(login, time.Now()); err != nil {
		t.Fatal(err)
	}
	bad := Response(true, msgInfo, []byte{0x05, 0x18, 0x0D, 0x01, 0x00, 0x00, 0x00, 0x01}, 7) // month 13
	res, err := s.Decode(bad, time.Now())
	if !errors.Is(err, plugins.ErrMalformed) || !strings.Contains(err.Error(), "device time") {
		t.Fatalf("error = %v, want ErrMalformed naming the device time", err)
	}
	if len(res.Signals) != 0 {
		t.Errorf("refused packet produced %d signals", len(res.Signals))
	}
	good := Response(true, msgInfo, []byte{0x05, 0x18, 0x0C, 0x01, 0x00, 0x00, 0x00, 0x01}, 8)
	if res, err := s.Decode(good, time.Now()); err != nil || len(res.Signals) != 1 {
		t.Fatalf("valid packet: %d signals, %v", len(res.Signals), err)
	}
}
