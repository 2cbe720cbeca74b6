package signal_test

import (
	"math"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

func goldenSignals() []signal.Signal {
	a := signal.New("356307042441013", time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC))
	a.Lat, a.Lon, a.Alt, a.Speed, a.Heading, a.Sats = 54.687157, 25.279652, 112, 42.5, 271, 11
	a.Valid = signal.True
	a.Protocol = "teltonika"
	a.SetAttr("io239", int64(1))
	a.SetAttr("io66", 12.734)
	a.SetAttr("note", "žiedas")
	a.SetAttr("ign", true)
	b := signal.New("dev-2", time.Date(1999, 12, 31, 23, 59, 59, 0, time.FixedZone("x", 3600)))
	b.RPM, b.Coolant, b.Odometer = 812, -40, math.Inf(1)
	b.DTCs = []string{"P0300", "U0100"}
	b.Valid = signal.False
	b.Protocol = "jsonl"
	c := signal.New("", time.Unix(0, 0))
	c.Protocol = "osmand"
	c.Recv, c.Path, c.Frame = time.Now(), signal.PathSpool, []byte("not hashed")
	return []signal.Signal{a, b, c}
}

// TestRecordHashGolden pins the record hash: it is the idempotency key
// stored in every row (and in failover messages and spool segments), so a
// change would let a resend of an already stored record be stored again.
// Receive time, path, raw frame and decoder version are not part of it.
func TestRecordHashGolden(t *testing.T) {
	want := []int64{-4299221456472929624, 4961361689329863790, -7185518940640381525}
	for i, s := range goldenSignals() {
		if got := s.RecordHash(); got != want[i] {
			t.Errorf("signal %d: RecordHash() = %d, want %d", i, got, want[i])
		}
		s.Recv, s.Path, s.Frame = time.Time{}, "", nil
		if got := s.RecordHash(); got != want[i] {
			t.Errorf("signal %d without receive time, path and frame: RecordHash() = %d, want %d", i, got, want[i])
		}
		// A resend decoded by another decoder version is the same record.
		s.DecoderVersion = "2.0.0+sha256:0123456789ab"
		if got := s.RecordHash(); got != want[i] {
			t.Errorf("signal %d with a decoder version: RecordHash() = %d, want %d", i, got, want[i])
		}
	}
	// Attribute order and an int attr that a JSON round trip turns into a
	// float hash alike.
	a := goldenSignals()[0]
	b := signal.New(a.DeviceID, a.TS)
	b.Lat, b.Lon, b.Alt, b.Speed, b.Heading, b.Sats, b.Valid, b.Protocol = a.Lat, a.Lon, a.Alt, a.Speed, a.Heading, a.Sats, a.Valid, a.Protocol
	b.SetAttr("ign", true)
	b.SetAttr("note", "žiedas")
	b.SetAttr("io66", 12.734)
	b.SetAttr("io239", 1.0)
	if b.RecordHash() != want[0] {
		t.Errorf("same record, attrs set in another order and io239 as a float: %d, want %d", b.RecordHash(), want[0])
	}
}
