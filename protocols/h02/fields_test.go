package h02

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// TestFieldsThatDoNotParse: a message whose fields do not parse is
// malformed, refused with a reason that names the field, never stored with
// the field left out or the server's time.
func TestFieldsThatDoNotParse(t *testing.T) {
	tests := []struct {
		name   string
		frame  string
		reason string
	}{
		{"the issue's frame", "*HQ,9001000002,V1,99,Z,abc,N,xyz,E,?,?,999999,ZZ#", "validity"},
		{"time", "*HQ,9001000002,V1,99,A,3542.2043,N,38.6508,W,0.00,170,221025,FBFFF9FF#", "time"},
		{"date", "*HQ,9001000002,V1,213945,A,3542.2043,N,38.6508,W,0.00,170,22102,FBFFF9FF#", ""},
		{"validity", "*HQ,9001000002,V1,213945,Z,3542.2043,N,38.6508,W,0.00,170,221025,FBFFF9FF#", "validity"},
		{"latitude", "*HQ,9001000002,V1,213945,A,abc,N,38.6508,W,0.00,170,221025,FBFFF9FF#", "latitude"},
		{"latitude hemisphere", "*HQ,9001000002,V1,213945,A,3542.2043,Q,38.6508,W,0.00,170,221025,FBFFF9FF#", "latitude"},
		{"latitude beyond 90", "*HQ,9001000002,V1,213945,A,9542.2043,N,38.6508,W,0.00,170,221025,FBFFF9FF#", "latitude"},
		{"longitude", "*HQ,9001000002,V1,213945,A,3542.2043,N,xyz,E,0.00,170,221025,FBFFF9FF#", "longitude"},
		{"longitude beyond 180", "*HQ,9001000002,V1,213945,A,3542.2043,N,19038.6508,W,0.00,170,221025,FBFFF9FF#", "longitude"},
		{"latitude without longitude", "*HQ,9001000002,V1,213945,A,3542.2043,N,,E,0.00,170,221025,FBFFF9FF#", "latitude or a longitude"},
		{"speed", "*HQ,9001000002,V1,213945,A,3542.2043,N,38.6508,W,?,170,221025,FBFFF9FF#", "speed"},
		{"course", "*HQ,9001000002,V1,213945,A,3542.2043,N,38.6508,W,0.00,?,221025,FBFFF9FF#", "course"},
		{"battery", "*HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,x,080918,EEE7FBDF#", "battery_level"},
		{"NBR time", "*HQ,7401004662,NBR,16045,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#", "time"},
		{"NBR mcc", "*HQ,7401004662,NBR,160453,2x4,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#", "mcc"},
		{"LINK satellites", "*HQ,1700086468,LINK,180902,15,x,84,0,0,240517,FFFFFBFF#", "satellites"},
		{"LINK battery", "*HQ,1700086468,LINK,180902,15,0,8x,0,0,240517,FFFFFBFF#", "battery_level"},
		{"V3 battery", "*HQ,353111080001055,V3,044855,28403,01,001450,011473,158,-62,zz,0,X,030817,FFFFFBFF#", "battery"},
		{"V3 rssi", "*HQ,353111080001055,V3,044855,28403,01,001450,011473,158,x,0292,0,X,030817,FFFFFBFF#", "rssi"},
		{"V3 mcc", "*HQ,353111080001055,V3,044855,2840x,01,001450,011473,158,-62,0292,0,X,030817,FFFFFBFF#", "mcc"},
		{"VP1 speed", "*hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,?,0.0000,080917#", "speed"},
		{"VP1 mcc", "*hq,356327081001239,VP1,V,4x0,002,92,3565,0Y92,19433,30#", "mcc"},
		{"device id of 6000 bytes", "*HQ," + strings.Repeat("7", 6000) + ",V1,213945,A,3542.2043,N,38.6508,W,0.00,170,221025,FBFFF9FF#", "device id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 64 << 10, Logger: hclog.NewNullLogger()})
			frame := []byte(tt.frame)
			n, err := s.Frame(frame)
			if err != nil || n != len(frame) {
				t.Fatalf("Frame = %d, %v; want the whole message", n, err)
			}
			res, err := s.Decode(frame, recv)
			if !errors.Is(err, plugins.ErrMalformed) {
				t.Fatalf("error = %v, want ErrMalformed (signals %d)", err, len(res.Signals))
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not name the field (%q)", err, tt.reason)
			}
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("refused message produced %d signals, ack %q", len(res.Signals), res.Ack)
			}
		})
	}
}

// TestServerTimedResend: a message without a device time gets the same key
// when it is sent again on a new connection (another session of the same
// decoder), and a different message gets another key.
func TestServerTimedResend(t *testing.T) {
	d := &Decoder{}
	newSess := func() plugins.Session {
		return d.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, Logger: hclog.NewNullLogger()})
	}
	tests := []struct{ name, first, other string }{
		{"heartbeat", "*HQ,135790246811220,HTBT,100#", "*HQ,135790246811220,HTBT,99#"},
		{"V1 without time", "*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#", "*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c7#"},
		{"V1 with an all-zero time", "*HQ,353588020068342,V1,000000,V,0.0000,0,0.0000,0,0.00,0.00,000000,ffffffff,000106,000002,000203,004c87,16#", ""},
		{"NBR with seconds past 59", "*HQ,1400046168,NBR,160169,460,0,1,4,9338,3692,150,9338,3691,145,9338,3690,140,9338,3692,139,180813,FFFFFBFF#", ""},
		{"VP1", "*hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,0.48,0.0000,080917#", "*hq,356327080425330,VP1,A,2702.7215,S,15251.9309,E,0.62,0.0000,050917#"},
		{"XT", "*HQ,356327080425330,XT,1,100#", "*HQ,356327080425330,XT,1,101#"},
		{"SMS", "*HQ,5226073533,SMS,VOLT:12.9V#", "*HQ,5226073533,SMS,VOLT:12.8V#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := decodeSignal(t, newSess(), tt.first, recv)
			// The ack was lost: the device resends on a new connection 90 s
			// later (with a line end this time).
			again := decodeSignal(t, newSess(), tt.first+"\r\n", recv.Add(90*time.Second))
			if first.Key() != again.Key() {
				t.Errorf("resend key %+v, first %+v", again.Key(), first.Key())
			}
			if tt.other != "" {
				other := decodeSignal(t, newSess(), tt.other, recv.Add(91*time.Second))
				if other.Key() == first.Key() {
					t.Errorf("a new message got the first one's key %+v", first.Key())
				}
			}
			// After the resend window the same bytes are a new message.
			late := decodeSignal(t, newSess(), tt.first, recv.Add(plugins.DefaultResendWindow+time.Minute))
			if late.Key() == first.Key() {
				t.Errorf("the same message after the resend window got the first one's key")
			}
		})
	}
}

func decodeSignal(t *testing.T, s plugins.Session, frame string, at time.Time) signal.Signal {
	t.Helper()
	res, err := s.Decode([]byte(frame), at)
	if err != nil || len(res.Signals) != 1 {
		t.Fatalf("Decode(%q) = %d signals, %v", frame, len(res.Signals), err)
	}
	return res.Signals[0]
}
