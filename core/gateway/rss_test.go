package gateway_test

import (
	"bytes"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/protocols/osmand"
)

// vmRSS is the process's resident set in bytes, read after a GC that
// returns freed memory to the OS.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// TestMeasurePartialHeadersRSS reproduces the slow-sender report: 2,000
// connections each send 60 KB of an HTTP header that never ends. It runs
// only with FLEETCORE_MEASURE_RSS=1 (it opens 4,000 sockets) and logs the
// RSS growth with the default buffer budget and with a budget so large
// that it does not bind (the gateway before the budget).
func TestMeasurePartialHeadersRSS(t *testing.T) {
	if os.Getenv("FLEETCORE_MEASURE_RSS") != "1" {
		t.Skip("set FLEETCORE_MEASURE_RSS=1 to measure")
	}
	const conns = 2000
	header := append([]byte("GET /?id=1 HTTP/1.1\r\nX-Pad: "), bytes.Repeat([]byte("a"), 60<<10)...)
	for _, tc := range []struct {
		name   string
		budget int64
	}{
		{"default_budget", 0},
		{"unbounded", 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, addrs, _ := serve(t, &osmand.Decoder{}, []gateway.Option{gateway.WithLimits(gateway.Limits{MaxBufferedBytes: tc.budget})},
				gateway.ListenerConfig{MaxConnectionsPerIP: 2 * conns})
			st := g.Stats()
			before := vmRSS(t)
			var cs []net.Conn
			for range conns {
				c, err := net.Dial("tcp", addrs[0])
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				c.Write(header) //nolint:errcheck // a connection closed over the budget resets
			}
			// Every connection is either holding its 60 KB or closed.
			deadline := time.Now().Add(30 * time.Second)
			held := func() int64 { return st.Buffered.Load()/(64<<10-2048) + int64(st.BufferBudgetClosed.Load()) }
			for held() < conns && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			after := vmRSS(t)
			t.Logf("%d partial 60 KB headers: RSS %.1f MB -> %.1f MB (+%.1f MB); buffered %.1f MB; closed over the budget %d; open %d",
				conns, float64(before)/1e6, float64(after)/1e6, float64(after-before)/1e6,
				float64(st.Buffered.Load())/1e6, st.BufferBudgetClosed.Load(), st.Open.Load())
			for _, c := range cs {
				c.Close()
			}
		})
	}
}
