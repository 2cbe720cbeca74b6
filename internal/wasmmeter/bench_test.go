package wasmmeter

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
)

// BenchmarkStartStop is the host's cost of metering one call, without and
// with the wall-clock backstop.
func BenchmarkStartStop(b *testing.B) {
	for _, wall := range []time.Duration{0, 500 * time.Millisecond} {
		b.Run("wall="+wall.String(), func(b *testing.B) {
			_, m := instanceB(b, wasmfixture.WAT(b, loops))
			for range b.N {
				m.Start(context.Background(), 1000, wall)
				m.Stop()
			}
		})
	}
}
