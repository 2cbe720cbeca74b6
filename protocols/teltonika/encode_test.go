package teltonika

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
)

func TestCodec8FrameDecodes(t *testing.T) {
	s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096})
	login := LoginFrame("356307042441013")
	if n, err := s.Frame(login); err != nil || n != len(login) {
		t.Fatalf("login framed %d, %v", n, err)
	}
	if _, err := s.Decode(login, time.Now()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	recs := []Record{
		{Time: t0, Lat: 54.6872, Lon: 25.2797, Alt: 120, Angle: 90, Sats: 9, Speed: 50, IO: map[uint8]uint8{239: 1, 1: 0}},
		{Time: t0.Add(time.Second), Lat: -33.5, Lon: -70.25, Sats: 4},
	}
	f := Codec8Frame(recs...)
	if n, err := s.Frame(f); err != nil || n != len(f) {
		t.Fatalf("framed %d of %d: %v", n, len(f), err)
	}
	res, err := s.Decode(f, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(res.Ack); got != 2 || len(res.Signals) != 2 {
		t.Fatalf("ack %d, %d signals", got, len(res.Signals))
	}
	for i, r := range recs {
		sig := res.Signals[i]
		if !sig.TS.Equal(r.Time) || math.Abs(sig.Lat-r.Lat) > 1e-6 || math.Abs(sig.Lon-r.Lon) > 1e-6 || sig.DeviceID != "356307042441013" {
			t.Errorf("record %d decoded as %+v", i, sig)
		}
	}
}
