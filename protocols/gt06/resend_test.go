package gt06

import (
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
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

// TestCurrentPositionText: a "Current position!" reply whose course or
// speed does not parse is not a fix with the field left out: the text is
// kept as the reply.
func TestCurrentPositionText(t *testing.T) {
	login, _ := hex.DecodeString("78780d01012345678901234500018cdd0d0a")
	tests := []struct {
		name, text string
		fix        bool
	}{
		{"valid", "Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.00,DateTime:2019-03-12 10:31:12", true},
		{"course not a number", "Current position!Lat:N54.739332,Lon:E25.273270,Course:abc,Speed:0.00,DateTime:2019-03-12 10:31:12", false},
		{"speed not a number", "Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:fast,DateTime:2019-03-12 10:31:12", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP})
			if _, err := s.Decode(login, time.Now()); err != nil {
				t.Fatal(err)
			}
			content := append([]byte{0, 0, 0, 0, 1}, tt.text...)
			res, err := s.Decode(Response(true, msgStringInfo, content, 9), time.Now())
			if err != nil || len(res.Signals) != 1 {
				t.Fatalf("%d signals, %v", len(res.Signals), err)
			}
			sg := res.Signals[0]
			if fix := !math.IsNaN(sg.Lat); fix != tt.fix {
				t.Errorf("fix = %v (lat %v, heading %v, speed %v), want %v", fix, sg.Lat, sg.Heading, sg.Speed, tt.fix)
			}
			if !tt.fix && sg.Attrs["result"] != tt.text {
				t.Errorf("result = %v, want the text", sg.Attrs["result"])
			}
		})
	}
}
