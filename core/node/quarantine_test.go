package node_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/jsonl"
)

// TestIntegrationNodeQuarantinesRejectedFrames sends a node two frames it
// must refuse, a record whose device id holds a NUL (which Postgres cannot
// store as text) and a 70 KB line, and finds both in rejected_frames: the
// id escaped, the long line cut to quarantine.max_raw_bytes with its
// length kept.
func TestIntegrationNodeQuarantinesRejectedFrames(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg, err := config.Parse("node.hcl", []byte(`
rules { enabled = false }
api { address = "127.0.0.1:0" }
spool { enabled = false }
quarantine { max_raw_bytes = 1000 }
listener "jsonl" { address = "127.0.0.1:0" }
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	reg := plugins.NewRegistry()
	reg.Register(jsonl.Decoder{})
	n, _ := testnode.Run(t, cfg, reg, hclog.NewNullLogger())
	addr := n.Addr("jsonl").String()
	send := func(b []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(b) //nolint:errcheck // the node may close before reading it all
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c) //nolint:errcheck // until the node closes the connection
	}
	send([]byte(`{"device_id":"bad\u0000id","ts":"2026-12-01T10:00:00Z","lat":1,"lon":2}` + "\n"))
	long := bytes.Repeat([]byte("x"), 70<<10)
	send(long)

	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for n.Quarantine().Stats().Rows < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := n.Quarantine().Stats(); st.Rows != 2 {
		t.Fatalf("quarantine stats %+v, want both frames stored", st)
	}
	var dev string
	var rawLen, length int
	if err := n.Store().Pool().QueryRow(ctx, `SELECT device_id, length(raw), raw_length FROM rejected_frames WHERE device_id IS NOT NULL`).
		Scan(&dev, &rawLen, &length); err != nil {
		t.Fatal(err)
	}
	if dev != `bad\x00id` || rawLen != length {
		t.Fatalf("NUL id row: device_id %q, %d of %d raw bytes", dev, rawLen, length)
	}
	if err := n.Store().Pool().QueryRow(ctx, `SELECT length(raw), raw_length FROM rejected_frames WHERE device_id IS NULL`).
		Scan(&rawLen, &length); err != nil {
		t.Fatal(err)
	}
	if rawLen != 1000 || length < 64<<10 {
		t.Fatalf("long line row: %d raw bytes of %d, want 1000 of at least 65536", rawLen, length)
	}
	resp, err := http.Get("http://" + n.APIAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"fleetcore_quarantine_rows_total 2\n", `fleetcore_quarantine_dropped_total{reason="queue_full"} 0` + "\n",
		`fleetcore_quarantine_dropped_total{reason="rate_limited"} 0` + "\n", "fleetcore_quarantine_deleted_total 0\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
