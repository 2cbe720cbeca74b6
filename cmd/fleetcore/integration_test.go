package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/teltonika"
)

// codec8 builds a Teltonika codec 8 TCP frame with one record per
// timestamp (a GPS fix and two IO elements).
func codec8(ts ...time.Time) []byte {
	var data []byte
	data = append(data, 0x08, byte(len(ts)))
	for i, t := range ts {
		data = binary.BigEndian.AppendUint64(data, uint64(t.UnixMilli()))
		data = append(data, 0)                                                 // priority
		data = binary.BigEndian.AppendUint32(data, uint32(int32(252000000+i))) // lon 25.2
		data = binary.BigEndian.AppendUint32(data, uint32(int32(546800000+i))) // lat 54.68
		data = binary.BigEndian.AppendUint16(data, 120)                        // alt
		data = binary.BigEndian.AppendUint16(data, 90)                         // angle
		data = append(data, 9)                                                 // sats
		data = binary.BigEndian.AppendUint16(data, 50)                         // speed
		// IO: event id 0, 1 element in all: one 1-byte element (io239=1), no 2/4/8-byte ones.
		data = append(data, 0, 1, 1, 239, 1, 0, 0, 0)
	}
	data = append(data, byte(len(ts)))
	frame := make([]byte, 8, 8+len(data)+4)
	binary.BigEndian.PutUint32(frame[4:], uint32(len(data)))
	frame = append(frame, data...)
	return binary.BigEndian.AppendUint32(frame, uint32(teltonika.CRC16(data)))
}

func login(imei string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(imei)))
	return append(b, imei...)
}

type harness struct {
	t      *testing.T
	dbURL  string
	addr   string
	cancel context.CancelFunc
	done   chan error
	n      *node.Node
}

func startNode(t *testing.T, dbURL string, mutate func(*config.Config), opts ...node.Option) *harness {
	t.Helper()
	src := `
database { url = "` + dbURL + `" }
ingest {
  batch_max_age = "2ms"
}
listener "teltonika" {
  address = "127.0.0.1:0"
  max_frame = 4096
}
`
	cfg, err := config.Parse("test.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = dbURL // ignore FLEETCORE_DATABASE_URL from the environment
	cfg.Database.WriteTimeout = "2s"
	cfg.Spool.Dir = t.TempDir()
	cfg.API.Address = "127.0.0.1:0" // tests run nodes side by side
	if mutate != nil {
		mutate(cfg)
	}
	n := node.New(cfg, plugins.Decoders, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}), opts...)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, dbURL: dbURL, cancel: cancel, done: make(chan error, 1), n: n}
	go func() { h.done <- n.Run(ctx) }()
	for _, c := range []<-chan struct{}{n.Ready(), n.RulesLive(), n.DecodersLive()} {
		select {
		case <-c:
		case err := <-h.done:
			t.Fatalf("node stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("node not ready after 30s")
		}
	}
	h.addr = n.Addr("teltonika").String()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		h.t.Errorf("node run: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func query(t *testing.T, dbURL, q string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type device struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr, imei string) *device {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := &device{t: t, c: c, r: bufio.NewReader(c)}
	d.send(login(imei))
	if b := d.read(1); b[0] != 1 {
		t.Fatalf("login reply %x, want 01", b)
	}
	return d
}

func (d *device) send(b []byte) {
	d.t.Helper()
	if _, err := d.c.Write(b); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) read(n int) []byte {
	d.t.Helper()
	d.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// closed reports whether the server closed the connection (EOF) within d.
func (d *device) closed(wait time.Duration) bool {
	d.c.SetReadDeadline(time.Now().Add(wait))
	_, err := d.r.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (err != nil && strings.Contains(err.Error(), "reset"))
}

func TestIntegrationTeltonikaAckAfterCommitNoDuplicates(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	h := startNode(t, db, nil, node.WithBuildVersion("v1.2.3-test"))
	dev := dial(t, h.addr, "356307042441013")
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	frame := codec8(base, base.Add(time.Second), base.Add(2*time.Second))

	// Hold a lock on signals: the frame must not be acked while its rows
	// cannot be committed.
	ctx := context.Background()
	locker, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE signals IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	dev.send(frame)
	dev.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := dev.r.Read(make([]byte, 4)); n > 0 || !errors.Is(err, errorsDeadline()) {
		t.Fatalf("got %d ack bytes (%v) while the table was locked: acked before commit", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	ack := dev.read(4)
	if got := binary.BigEndian.Uint32(ack); got != 3 {
		t.Fatalf("ack count %d, want 3", got)
	}
	if n := query(t, db, "SELECT count(*) FROM signals WHERE device_id = '356307042441013'"); n != 3 {
		t.Fatalf("after ack %d rows, want 3", n)
	}

	// The device resends (it never saw the ack, say): acked again, no duplicates.
	dev.send(frame)
	if got := binary.BigEndian.Uint32(dev.read(4)); got != 3 {
		t.Fatalf("resend ack %d", got)
	}
	dev2 := dial(t, h.addr, "356307042441013")
	dev2.send(frame)
	dev2.read(4)
	if n := query(t, db, "SELECT count(*) FROM signals"); n != 3 {
		t.Fatalf("after resends %d rows, want 3", n)
	}
	if n := query(t, db, "SELECT count(*) FROM signals WHERE path = 'direct' AND lat BETWEEN 54.68 AND 54.69 AND (attrs->>'io239')::int = 1"); n != 3 {
		t.Fatalf("decoded columns not stored as expected: %d matching rows", n)
	}
	if n := query(t, db, "SELECT count(*) FROM signals WHERE frame IS NOT NULL"); n != 1 {
		t.Fatalf("raw frame stored %d times, want once", n)
	}
	// Every row records the built-in decoder's version: the build's
	// (node.WithBuildVersion, which serve passes; "dev" without it).
	if n := query(t, db, "SELECT count(*) FROM signals WHERE decoder_version = 'builtin:v1.2.3-test'"); n != 3 {
		t.Fatalf("%d rows with decoder_version builtin:v1.2.3-test, want 3", n)
	}
}

func errorsDeadline() error { return osErrDeadline }

func TestIntegrationTeltonikaRejectsBadFramesOnlyThatConnection(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	h := startNode(t, db, nil)
	good := dial(t, h.addr, "356307042441013")

	cases := []struct {
		name   string
		frame  func() []byte
		reason string
	}{
		{"bad crc", func() []byte {
			f := codec8(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
			f[len(f)-1] ^= 0xff
			return f
		}, "checksum"},
		{"oversized length", func() []byte {
			return []byte{0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 8, 1}
		}, "too large"},
		{"garbage", func() []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := dial(t, h.addr, "35630704244102"+string(rune('0'+i)))
			bad.send(tc.frame())
			if !bad.closed(10 * time.Second) {
				t.Fatal("connection not closed after a bad frame")
			}
			want := "%"
			if tc.reason != "" {
				want = "%" + tc.reason + "%"
			}
			// The quarantine stores off the read path: poll for the row.
			n, deadline := 0, time.Now().Add(10*time.Second)
			for n == 0 && time.Now().Before(deadline) {
				n = query(t, db, "SELECT count(*) FROM rejected_frames WHERE device_id = $1 AND reason ILIKE $2 AND length(raw) > 0",
					"35630704244102"+string(rune('0'+i)), want)
				if n == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if n != 1 {
				t.Fatalf("rejected_frames rows for this device with reason like %q: %d", want, n)
			}
		})
	}
	// The good connection is unaffected.
	good.send(codec8(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)))
	if got := binary.BigEndian.Uint32(good.read(4)); got != 1 {
		t.Fatalf("good connection ack %d", got)
	}
	if n := query(t, db, "SELECT count(*) FROM signals"); n != 1 {
		t.Fatalf("signals %d, want 1 (nothing from the bad frames)", n)
	}
}

func TestIntegrationNoAckWhenDatabaseWriteFails(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(db))
	h := startNode(t, testenv.WithHost(db, proxy.Addr()), func(c *config.Config) {
		c.Database.WriteTimeout = "1s"
		off := false
		c.Spool.Enabled = &off // Postgres is the only tier: nothing can take the batch
	})
	dev := dial(t, h.addr, "356307042441013")
	proxy.Cut()
	dev.send(codec8(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
	// No ack: the server closes the connection without one so the device
	// resends.
	dev.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(dev.r)
	if len(b) != 0 {
		t.Fatalf("got %x while the database was down", b)
	}
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v", err)
	}
	proxy.Restore()
	if n := query(t, db, "SELECT count(*) FROM signals"); n != 0 {
		t.Fatalf("%d rows stored from an unacked frame", n)
	}
	// After the database is back the device resends and is acked.
	dev = dial(t, h.addr, "356307042441013")
	dev.send(codec8(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
	if got := binary.BigEndian.Uint32(dev.read(4)); got != 1 {
		t.Fatalf("ack %d", got)
	}
	if n := query(t, db, "SELECT count(*) FROM signals"); n != 1 {
		t.Fatalf("%d rows after the resend, want 1", n)
	}
}
