package freematics

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// udpSession is a session for one UDP source ip:port.
func udpSession(d *Decoder, ip string, port int, opts map[string]string) plugins.Session {
	return d.NewSession(plugins.SessionConfig{
		Transport:  plugins.UDP,
		RemoteAddr: &net.UDPAddr{IP: net.ParseIP(ip), Port: port},
		MaxFrame:   64 << 10,
		Options:    plugins.MustDecodeOptions(d, opts),
		Logger:     hclog.NewNullLogger(),
	})
}

func decodeMsg(t *testing.T, s plugins.Session, msg string, at time.Time) (plugins.Result, error) {
	t.Helper()
	return s.Decode(withChecksum(msg), at)
}

// TestFeedFloodFromOneSource: a flood of logins with new ids from one
// address (more than there are feed ids) must not refuse, or take the feed
// id of, a device behind another address.
func TestFeedFloodFromOneSource(t *testing.T) {
	d := &Decoder{}
	// A good device logs in before the flood, from its own address.
	good := udpSession(d, "198.51.100.7", 4000, nil)
	res, err := decodeMsg(t, good, "0#EV=1,TS=1000,ID=GOOD0001", recv)
	if err != nil {
		t.Fatal(err)
	}
	goodFeed := feedOf(t, res.Ack)

	// The flood: pings with a fresh id each, from one address, each from
	// a new source port (a new session).
	const flood = 66000
	for i := range flood {
		s := udpSession(d, "203.0.113.9", 1024+i%60000, nil)
		if _, err := decodeMsg(t, s, fmt.Sprintf("0#EV=7,TS=%d,ID=FLOOD%06d", i, i), recv); err != nil {
			t.Fatalf("flood ping %d: %v", i, err)
		}
	}
	if n := d.feeds.len(); n > MaxFeedsPerSource+1 {
		t.Errorf("the feed table holds %d devices after a flood from one address, bound %d per address", n, MaxFeedsPerSource)
	}

	// A new good device from another address logs in and is served.
	other := udpSession(d, "198.51.100.8", 4000, nil)
	if _, err := decodeMsg(t, other, "0#EV=1,TS=1000,ID=GOOD0002", recv); err != nil {
		t.Fatalf("a device behind another address was refused after the flood: %v", err)
	}
	// The first good device kept its feed id: its data from a new UDP port
	// of its address is still recognised by it.
	moved := udpSession(d, "198.51.100.7", 4001, nil)
	res, err = decodeMsg(t, moved, fmt.Sprintf("%X#0:2000,24:1250", goodFeed), recv.Add(time.Second))
	if err != nil {
		t.Fatalf("data by feed id after the flood: %v", err)
	}
	if len(res.Signals) != 1 || res.Signals[0].DeviceID != "GOOD0001" {
		t.Fatalf("data by feed id %X went to %+v, want GOOD0001", goodFeed, res.Signals)
	}
}

// TestFeedIDOfAnotherAddress: a feed id names its device only for senders
// from the address that logged in; anyone else naming it gets ErrNoDevice.
func TestFeedIDOfAnotherAddress(t *testing.T) {
	d := &Decoder{}
	res, err := decodeMsg(t, udpSession(d, "198.51.100.7", 4000, nil), "0#EV=1,TS=1000,ID=GOOD0001", recv)
	if err != nil {
		t.Fatal(err)
	}
	feed := feedOf(t, res.Ack)
	_, err = decodeMsg(t, udpSession(d, "203.0.113.9", 4000, nil), fmt.Sprintf("%X#0:2000,24:1250", feed), recv)
	if !errors.Is(err, plugins.ErrNoDevice) {
		t.Errorf("data naming another address's feed id: %v, want ErrNoDevice", err)
	}
}

func feedOf(t *testing.T, ack []byte) uint16 {
	t.Helper()
	var feed uint16
	if _, err := fmt.Sscanf(string(ack), "%X#", &feed); err != nil {
		t.Fatalf("reply %q has no feed id: %v", ack, err)
	}
	return feed
}

func TestDeviceIDCap(t *testing.T) {
	long := strings.Repeat("X", 50<<10)
	for _, msg := range []string{
		"0#EV=1,TS=1000,ID=" + long,
		"0#EV=4,TS=1000,VIN=" + long,
		long + "#0:2000,24:1250",
	} {
		d := &Decoder{}
		_, err := decodeMsg(t, udpSession(d, "198.51.100.7", 4000, nil), msg, recv)
		if !errors.Is(err, plugins.ErrMalformed) || !strings.Contains(err.Error(), "device id") {
			t.Errorf("%.20s…: %v, want ErrMalformed naming the device id", msg, err)
		}
		if n := d.feeds.len(); n != 0 {
			t.Errorf("a refused id holds %d feed entries", n)
		}
	}
	// 128 bytes is still an id.
	if _, err := decodeMsg(t, udpSession(&Decoder{}, "198.51.100.7", 4000, nil), "0#EV=1,TS=1000,ID="+strings.Repeat("X", MaxDeviceID), recv); err != nil {
		t.Errorf("id of %d bytes: %v", MaxDeviceID, err)
	}
}

// TestServerKeyOnEveryMessage: with server_key set, every event must carry
// it, and data is accepted only for a device an event with the key
// identified.
func TestServerKeyOnEveryMessage(t *testing.T) {
	key := map[string]string{"server_key": "secret"}
	tests := []struct {
		name  string
		setup []string // accepted first, in the same session
		msg   string
		err   error
	}{
		{"login without key", nil, "0#EV=1,TS=1000,ID=DEVICE1", plugins.ErrUnauthorized},
		{"login with key", nil, "0#EV=1,TS=1000,ID=DEVICE1,SK=secret", nil},
		{"reconnect without key", nil, "DEVICE1#EV=4,TS=1000,ID=DEVICE1,SSI=-79", plugins.ErrUnauthorized},
		{"reconnect with a wrong key", nil, "DEVICE1#EV=4,TS=1000,ID=DEVICE1,SK=guess,SSI=-79", plugins.ErrUnauthorized},
		{"reconnect with key", nil, "DEVICE1#EV=4,TS=1000,ID=DEVICE1,SK=secret,SSI=-79", nil},
		{"ping without key after a keyed login", []string{"0#EV=1,TS=1000,ID=DEVICE1,SK=secret"}, "100#EV=7,TS=2000", plugins.ErrUnauthorized},
		{"data with a device id header and no login", nil, "DEVICE1#0:2000,24:1250", plugins.ErrUnauthorized},
		{"data with a device id header after a login without key elsewhere", nil, "DEVICE1#0:2000,24:1250", plugins.ErrUnauthorized},
		{"data after a keyed login", []string{"0#EV=1,TS=1000,ID=DEVICE1,SK=secret"}, "100#0:2000,24:1250", nil},
		{"data with the id header after a keyed login", []string{"0#EV=1,TS=1000,ID=DEVICE1,SK=secret"}, "DEVICE1#0:2000,24:1250", nil},
		{"data for another device after a keyed login", []string{"0#EV=1,TS=1000,ID=DEVICE1,SK=secret"}, "DEVICE2#0:2000,24:1250", plugins.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := udpSession(&Decoder{}, "198.51.100.7", 4000, key)
			for _, m := range tt.setup {
				if _, err := decodeMsg(t, s, m, recv); err != nil {
					t.Fatalf("setup %q: %v", m, err)
				}
			}
			res, err := decodeMsg(t, s, tt.msg, recv.Add(time.Second))
			if tt.err == nil {
				if err != nil {
					t.Fatalf("%q: %v", tt.msg, err)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("%q: %v, want %v", tt.msg, err, tt.err)
			}
			if len(res.Signals) != 0 {
				t.Errorf("refused message produced %d signals", len(res.Signals))
			}
		})
	}
	t.Run("feed id of a login on a listener without the key", func(t *testing.T) {
		d := &Decoder{}
		open := udpSession(d, "198.51.100.7", 4000, nil)
		res, err := decodeMsg(t, open, "0#EV=1,TS=1000,ID=DEVICE1", recv)
		if err != nil {
			t.Fatal(err)
		}
		keyed := udpSession(d, "198.51.100.7", 4001, key)
		_, err = decodeMsg(t, keyed, fmt.Sprintf("%X#0:2000,24:1250", feedOf(t, res.Ack)), recv)
		if err == nil {
			t.Fatal("data on a keyed listener accepted by the feed id of a login without the key")
		}
	})
	t.Run("feed id of a keyed login, from a new port", func(t *testing.T) {
		d := &Decoder{}
		res, err := decodeMsg(t, udpSession(d, "198.51.100.7", 4000, key), "0#EV=1,TS=1000,ID=DEVICE1,SK=secret", recv)
		if err != nil {
			t.Fatal(err)
		}
		res, err = decodeMsg(t, udpSession(d, "198.51.100.7", 4001, key), fmt.Sprintf("%X#0:2000,24:1250", feedOf(t, res.Ack)), recv)
		if err != nil || len(res.Signals) != 1 || res.Signals[0].DeviceID != "DEVICE1" {
			t.Fatalf("data by the keyed feed id from a new port: %+v, %v", res.Signals, err)
		}
	})
}

func TestMalformedFields(t *testing.T) {
	tests := []struct{ name, msg, reason string }{
		{"GPS date", "DEVICE1#0:2000,11:ab,10:8445000", "GPS date"},
		{"GPS date out of range", "DEVICE1#0:2000,11:320221,10:8445000", "GPS date"},
		{"GPS time", "DEVICE1#0:2000,11:140221,10:99999999", "GPS time"},
		{"GPS date and time of 31 February", "DEVICE1#0:2000,11:310221,10:8445000", "make no time"},
		{"latitude", "DEVICE1#0:2000,A:north", "A:north"},
		{"event tick", "DEVICE1#EV=4,TS=soon,ID=DEVICE1,SSI=-79", "TS"},
		{"event signal strength", "DEVICE1#EV=4,TS=1000,ID=DEVICE1,SSI=strong", "SSI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeMsg(t, udpSession(&Decoder{}, "198.51.100.7", 4000, nil), tt.msg, recv)
			if !errors.Is(err, plugins.ErrMalformed) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("%q: %v, want ErrMalformed naming %q", tt.msg, err, tt.reason)
			}
		})
	}
}

// TestServerTimedResend: records without a device time keep their key when
// the message is sent again on a new session; another message gets another.
func TestServerTimedResend(t *testing.T) {
	tests := []struct{ name, msg, other string }{
		{"event with data", "DEVICE1#EV=4,TS=373624,ID=DEVICE1,SSI=-79,VIN=WAUZZZ8K9CA123456", "DEVICE1#EV=4,TS=373999,ID=DEVICE1,SSI=-79,VIN=WAUZZZ8K9CA123456"},
		{"data without a tick base", "DEVICE1#0:33770,24:300,82:53,0:34770,24:301", "DEVICE1#0:34770,24:300,82:53,0:35770,24:301"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Decoder{}
			keys := func(msg string, port int, at time.Time) []signal.Key {
				res, err := decodeMsg(t, udpSession(d, "198.51.100.7", port, nil), msg, at)
				if err != nil || len(res.Signals) == 0 {
					t.Fatalf("%q: %d signals, %v", msg, len(res.Signals), err)
				}
				var out []signal.Key
				for i := range res.Signals {
					out = append(out, res.Signals[i].Key())
				}
				return out
			}
			first := keys(tt.msg, 4000, recv)
			again := keys(tt.msg, 4001, recv.Add(90*time.Second))
			if fmt.Sprint(first) != fmt.Sprint(again) {
				t.Errorf("resend keys %v, first %v", again, first)
			}
			other := keys(tt.other, 4002, recv.Add(91*time.Second))
			for _, k := range other {
				for _, f := range first {
					if k == f {
						t.Errorf("a new message reproduced key %+v", k)
					}
				}
			}
		})
	}
}

// TestTickTimedResendAfterRelogin: records timed by their tick against a
// base learned at login keep their keys when the device logs in again on a
// new session (its base estimate off by the network delay) and resends
// them; after a reboot (the tick restarts) the base is learned afresh.
func TestTickTimedResendAfterRelogin(t *testing.T) {
	d := &Decoder{}
	send := func(port int, at time.Time, msgs ...string) plugins.Result {
		t.Helper()
		s := udpSession(d, "198.51.100.7", port, nil)
		var res plugins.Result
		for _, m := range msgs {
			var err error
			if res, err = decodeMsg(t, s, m, at); err != nil {
				t.Fatalf("%q: %v", m, err)
			}
		}
		return res
	}
	first := send(4000, recv, "0#EV=1,TS=1000,ID=DEVICE1", "DEVICE1#0:85000,24:1250")
	// 90 s later, a new login whose tick says 0.3 s more delay, then the
	// same data again (a gateway's retransmission).
	again := send(4001, recv.Add(90*time.Second), "0#EV=1,TS=91300,ID=DEVICE1", "DEVICE1#0:85000,24:1250")
	if len(first.Signals) != 1 || len(again.Signals) != 1 {
		t.Fatalf("signals %d, %d", len(first.Signals), len(again.Signals))
	}
	if a, b := first.Signals[0].Key(), again.Signals[0].Key(); a != b {
		t.Errorf("resend after a new login: key %+v, first %+v", b, a)
	}
	if want := recv.Add(84 * time.Second); !first.Signals[0].TS.Equal(want) {
		t.Errorf("ts = %v, want %v", first.Signals[0].TS, want)
	}
	// Rebooted: the tick restarted, so the base is new.
	rebooted := send(4002, recv.Add(100*time.Second), "0#EV=1,TS=500,ID=DEVICE1", "DEVICE1#0:5000,24:1250")
	if want := recv.Add(104500 * time.Millisecond); !rebooted.Signals[0].TS.Equal(want) {
		t.Errorf("after a reboot ts = %v, want %v", rebooted.Signals[0].TS, want)
	}
}
