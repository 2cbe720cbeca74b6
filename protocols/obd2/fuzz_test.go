package obd2

import (
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

func FuzzDecode(f *testing.F) {
	f.Add(byte(0x0C), []byte{0x1A, 0xF8})
	f.Add(byte(0xA6), []byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add(byte(0x42), []byte{0x31})
	f.Add(byte(0xFE), []byte{})
	f.Fuzz(func(t *testing.T, pid byte, data []byte) {
		v, err := Decode(pid, data)
		if err != nil {
			return
		}
		s := signal.New("dev", time.Unix(0, 0))
		v.Apply(&s)
		if v.Known && v.HasNumber && (v.Number != v.Number) {
			t.Fatalf("NaN from PID %02X", pid)
		}
		if _, err := DTCs(data); err != nil && len(data)%2 == 0 {
			t.Fatalf("DTCs(%x): %v", data, err)
		}
	})
}
