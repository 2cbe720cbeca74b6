package obd2_test

import (
	"fmt"
	"time"

	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

func ExampleDecode() {
	sig := signal.New("dev-1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, r := range []struct {
		pid  byte
		data []byte
	}{{0x0C, []byte{0x1A, 0xF8}}, {0x05, []byte{0x82}}, {0x0B, []byte{0x64}}, {0xFE, []byte{0xAB}}} {
		v, err := obd2.Decode(r.pid, r.data)
		if err != nil {
			fmt.Println(err)
			continue
		}
		v.Apply(&sig)
	}
	fmt.Println(sig.RPM, sig.Coolant, sig.Attrs["obd_0b_map_kpa"], sig.Attrs["obd_fe_raw"])
	// Output: 1726 90 100 ab
}

func ExampleDTCs() {
	codes, _ := obd2.DTCs([]byte{0x01, 0x43, 0x00, 0x00, 0xC1, 0x00})
	fmt.Println(codes)
	// Output: [P0143 U0100]
}
