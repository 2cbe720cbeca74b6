package wasmdecoder

import (
	"encoding/hex"
	"testing"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The ACME AT-1 trip of protocols/acme/testdata/trip.
const (
	helloHex     = "ac3e0101000f3335363330373034323434313031332898"
	batch1Hex    = "ac3e0102002f00010269259a401f4deac207fd6f040022000000000901313869259a5e1f4e11d207fdbd24002301b302640a03361ad33f"
	heartbeatHex = "ac3e01030000ab24"
	batch2Hex    = "ac3e0102001900020169259a7c1f4e5fb007fe3420002401f403840002ffff6927"
)

func TestConformanceWAT(t *testing.T) {
	m := load(t, newHost(t, Config{Budget: testBudget}), examplePath, exampleWasm(t))
	plugintest.Run(t, m, plugintest.Cases{
		Frames:    [][]byte{mustHex(t, helloHex), mustHex(t, batch1Hex), mustHex(t, heartbeatHex), mustHex(t, batch2Hex)},
		Oversized: [][]byte{{0xAC, 0x3E, 1, 2, 0xFF, 0xFF}},
	})
}

func TestExampleLoads(t *testing.T) {
	m := load(t, newHost(t, Config{Budget: testBudget}), examplePath, exampleWasm(t))
	if m.Name() != "acme_wat" || m.Info().Transports[0] != plugins.TCP {
		t.Fatalf("info %+v", m.Info())
	}
	t.Logf("version %s, %d pages, exports %v", m.Version(), m.MemoryPages(), m.Exports())
}
