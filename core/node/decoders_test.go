package node_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	"github.com/fleetcore/fleetcore/protocols/acme"
)

// acmeWAT is the host's WAT example decoder (ACME AT-1 in WebAssembly).
const acmeWAT = "../../protocols/wasm/examples/wat/acme.wat"

var (
	metaData = regexp.MustCompile(`\(data \(i32\.const 1024\) "((?:[^"\\]|\\.)*)"\)`)
	metaLen  = regexp.MustCompile(`\(i64\.const 1024\) \(i64\.const 32\)\) \(i64\.const \d+\)\)`)
)

// acmeVariant assembles the WAT example with its fc_meta changed by edit
// (the JSON as a map) and, with trap set, fc_frame and fc_decode that
// trap on every call (the original functions kept, unexported).
func acmeVariant(t *testing.T, edit func(meta map[string]any), trap bool) []byte {
	t.Helper()
	src, err := os.ReadFile(acmeWAT)
	if err != nil {
		t.Fatal(err)
	}
	m := metaData.FindSubmatchIndex(src)
	if m == nil || !metaLen.Match(src) {
		t.Fatalf("%s: no fc_meta data segment at 1024 and length constant to edit", acmeWAT)
	}
	raw := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(string(src[m[2]:m[3]]))
	var meta map[string]any
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		t.Fatalf("%s: fc_meta: %v", acmeWAT, err)
	}
	edit(meta)
	js, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(string(js))
	out := string(src[:m[2]]) + esc + string(src[m[3]:])
	out = metaLen.ReplaceAllString(out, fmt.Sprintf("(i64.const 1024) (i64.const 32)) (i64.const %d))", len(js)))
	if trap {
		out = strings.Replace(out, `(func (export "fc_frame")`, `(func $orig_frame`, 1)
		out = strings.Replace(out, `(func (export "fc_decode")`, `(func $orig_decode`, 1)
		i := strings.LastIndex(out, ")")
		out = out[:i] + `
  (func (export "fc_frame") (param i32 i32) (result i32) unreachable)
  (func (export "fc_decode") (param i32 i32) (result i64) unreachable)
)` + out[i+1:]
	}
	return wasmfixture.WAT(t, out)
}

// version sets the meta version and serves both transports.
func version(v string) func(map[string]any) {
	return func(m map[string]any) {
		m["version"] = v
		m["transports"] = []string{"tcp", "udp"}
	}
}

// acmeDevice is an ACME AT-1 device over one connection.
type acmeDevice struct {
	t    *testing.T
	imei string
	c    net.Conn
	seq  uint16
}

func dialACME(t *testing.T, network string, addr net.Addr, imei string) *acmeDevice {
	t.Helper()
	c, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &acmeDevice{t: t, imei: imei, c: c}
}

// send writes a frame and returns the ack read back, or the error that
// ended the read (io.EOF: the server closed the connection).
func (d *acmeDevice) send(frame []byte, ackLen int) ([]byte, error) {
	if _, err := d.c.Write(frame); err != nil {
		return nil, err
	}
	d.c.SetReadDeadline(time.Now().Add(20 * time.Second)) //nolint:errcheck
	ack := make([]byte, ackLen)
	if _, ok := d.c.(*net.UDPConn); ok {
		n, err := d.c.Read(ack)
		return ack[:n], err
	}
	_, err := io.ReadFull(d.c, ack)
	return ack, err
}

func (d *acmeDevice) hello() error {
	d.t.Helper()
	got, err := d.send(acme.AppendFrame(nil, acme.TypeHello, []byte(d.imei)), 8)
	if err != nil {
		return err
	}
	if want := acme.AppendFrame(nil, acme.TypeHello|0x80, nil); !bytes.Equal(got, want) {
		d.t.Fatalf("%s hello ack % x, want % x", d.imei, got, want)
	}
	return nil
}

// records sends one record of device time ts and checks its ack.
func (d *acmeDevice) records(ts time.Time) error {
	d.t.Helper()
	d.seq++
	rec := binary.BigEndian.AppendUint32(nil, uint32(ts.Unix()))
	rec = binary.BigEndian.AppendUint32(rec, uint32(int32(525230000)))
	rec = binary.BigEndian.AppendUint32(rec, uint32(int32(134100000)))
	rec = binary.BigEndian.AppendUint16(rec, 36)
	rec = binary.BigEndian.AppendUint16(rec, 500)
	rec = binary.BigEndian.AppendUint16(rec, 900)
	rec = binary.BigEndian.AppendUint16(append(rec, 7, 1), 0xFFFF)
	p := append(binary.BigEndian.AppendUint16(nil, d.seq), 1)
	got, err := d.send(acme.AppendFrame(nil, acme.TypeRecords, append(p, rec...)), 10)
	if err != nil {
		return err
	}
	if want := acme.AppendFrame(nil, acme.TypeRecords|0x80, binary.BigEndian.AppendUint16(nil, d.seq)); !bytes.Equal(got, want) {
		d.t.Fatalf("%s records ack % x, want % x", d.imei, got, want)
	}
	return nil
}

func (d *acmeDevice) heartbeat() error {
	got, err := d.send(acme.AppendFrame(nil, acme.TypeHeartbeat, nil), 8)
	if err == nil && !bytes.Equal(got, acme.AppendFrame(nil, acme.TypeHeartbeat|0x80, nil)) {
		d.t.Fatalf("%s heartbeat ack % x", d.imei, got)
	}
	return err
}

// closed expects the server to close the connection without an ack.
func (d *acmeDevice) closed(frame []byte) {
	d.t.Helper()
	got, err := d.send(frame, 8)
	if !errors.Is(err, io.EOF) && !isReset(err) {
		d.t.Fatalf("%s: after % x got % x, %v; want the connection closed without ack", d.imei, frame, got, err)
	}
}

// isReset: closed with our bytes unread (a reset) or while writing.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// logBuffer keeps the node's log for a failing test's report.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestIntegrationDropInDecoderWithoutRestart runs a node whose TCP and UDP
// listeners name a WASM decoder that is not in its decoder folder yet, then
// drops versions of the host's WAT example into the folder while devices
// are connected: served within seconds, acks after the records are in
// Postgres, a bad frame quarantined closing only its connection, a new
// version taking over at a frame boundary, a version failing its self-test
// refused, and a version trapping on every call disabled with the previous
// one restored, while another device keeps getting acks. No restart.
func TestIntegrationDropInDecoderWithoutRestart(t *testing.T) {
	testenv.Integration(t)
	folder := t.TempDir()
	db := testenv.Database(t)
	cfg, err := config.Parse("node.hcl", []byte(`
rules { enabled = false }
api { address = "127.0.0.1:0" }
spool { enabled = false }
organizer { health_interval = "200ms" }
decoders {
  dir          = "`+folder+`"
  cache_dir    = "`+filepath.Join(t.TempDir(), "cache")+`"
  poll         = "100ms"
  max_failures = 3
}
listener "acme_tcp" {
  protocol = "acme_wat"
  address  = "127.0.0.1:0"
}
listener "acme_udp" {
  protocol  = "acme_wat"
  transport = "udp"
  address   = "127.0.0.1:0"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = db
	if err := node.Check(cfg, plugins.NewRegistry()); err != nil {
		t.Fatalf("validate accepts listeners naming a decoder the folder will serve: %v", err)
	}
	logs := &logBuffer{}
	n, ctx := testnode.Run(t, cfg, plugins.NewRegistry(), hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node log:\n%s", logs.String())
		}
	})
	tcp, udp := n.Addr("acme_tcp"), n.Addr("acme_udp")
	pool := n.Store().Pool()
	dir := n.Decoders()

	v1 := acmeVariant(t, version("1.0.0"), false)
	v2 := acmeVariant(t, version("1.1.0"), false)
	badTest := acmeVariant(t, func(m map[string]any) {
		version("1.2.0")(m)
		first := m["tests"].([]any)[0].(map[string]any)["frames"].([]any)[0].(map[string]any)["want"].(map[string]any)
		first["ack_hex"] = "ac3e01810000ffff"
	}, false)
	trapping := acmeVariant(t, func(m map[string]any) {
		version("2.0.0")(m)
		m["state_version"] = 2
		delete(m, "tests")
	}, true)

	drop := func(wasm []byte) {
		t.Helper()
		tmp := filepath.Join(folder, ".acme.wasm.tmp") // not *.wasm: never scanned half-written
		if err := os.WriteFile(tmp, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(folder, "acme.wasm")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %v: %s; decoders %+v", within, what, dir.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	row := func(state string) (wasmdecoder.Status, bool) {
		for _, s := range dir.Status() {
			if s.Name == "acme_wat" && s.State == state {
				return s, true
			}
		}
		return wasmdecoder.Status{}, false
	}
	live := func(v string) func() bool {
		return func() bool { r, ok := row(wasmdecoder.StateLive); return ok && strings.HasPrefix(r.Version, v+"+") }
	}
	stored := func(imei string) int {
		t.Helper()
		var c int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM signals WHERE device_id = $1 AND protocol = 'acme_wat'`, imei).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	rejected := func(like string) int {
		t.Helper()
		var c int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM rejected_frames WHERE protocol = 'acme_wat' AND reason LIKE $1`, like).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

	// Nothing in the folder yet: the listeners are up, a connection is
	// closed at once, nothing is quarantined.
	early := dialACME(t, "tcp", tcp, "356307042440000")
	early.closed(acme.AppendFrame(nil, acme.TypeHello, []byte(early.imei)))
	if r, ok := row(wasmdecoder.StateMissing); !ok || r.Error == "" {
		t.Errorf("no missing row saying why: %+v", dir.Status())
	}
	if got := n.Gateway().Stats().Unavailable.Load(); got == 0 {
		t.Error("the refused connection is not counted in Unavailable")
	}

	// Dropped in: live within seconds.
	drop(v1)
	waitFor("1.0.0 live", 10*time.Second, live("1.0.0"))

	a := dialACME(t, "tcp", tcp, "356307042441001")
	if err := a.hello(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := a.records(base.Add(time.Duration(i) * time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got := stored(a.imei); got != i+1 {
			t.Fatalf("acked %d records, %d in Postgres at the ack", i+1, got)
		}
	}

	// UDP: each datagram a frame, the session per source.
	u := dialACME(t, "udp", udp, "356307042441002")
	if err := u.hello(); err != nil {
		t.Fatal(err)
	}
	if err := u.records(base); err != nil {
		t.Fatal(err)
	}
	if got := stored(u.imei); got != 1 {
		t.Fatalf("UDP record acked, %d in Postgres", got)
	}

	// A bad frame: quarantined, its connection closed, the others serve.
	c := dialACME(t, "tcp", tcp, "356307042441003")
	if err := c.hello(); err != nil {
		t.Fatal(err)
	}
	bad := acme.AppendFrame(nil, acme.TypeHeartbeat, nil)
	bad[len(bad)-1] ^= 0xFF
	c.closed(bad)
	waitFor("the bad CRC quarantined", 20*time.Second, func() bool { return rejected("%checksum%") == 1 })
	if err := a.heartbeat(); err != nil {
		t.Fatalf("another device after the bad frame: %v", err)
	}

	// A new version of the same state_version takes over at the next frame
	// of the open connection, with its login state.
	drop(v2)
	waitFor("1.1.0 live", 10*time.Second, live("1.1.0"))
	if err := a.records(base.Add(time.Hour)); err != nil {
		t.Fatalf("open connection after the new version: %v", err)
	}
	if got := stored(a.imei); got != 4 {
		t.Fatalf("%d records of %s stored, want 4", got, a.imei)
	}
	r2, _ := row(wasmdecoder.StateLive)
	r1, _ := row(wasmdecoder.StatePrevious)
	if r2.Sessions != 1 || r1.Sessions != 1 {
		t.Fatalf("sessions on 1.1.0: %d, on 1.0.0: %d; want the TCP session moved, the UDP one not yet", r2.Sessions, r1.Sessions)
	}
	if err := u.records(base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r1, _ := row(wasmdecoder.StatePrevious); r1.Sessions != 0 {
		t.Fatalf("UDP session still on 1.0.0 after its next datagram: %+v", r1)
	}

	// A version that fails its self-test is refused; 1.1.0 keeps serving.
	drop(badTest)
	waitFor("1.2.0 refused", 10*time.Second, func() bool {
		r, ok := row(wasmdecoder.StateRefused)
		return ok && strings.Contains(r.Error, "ack")
	})
	if !live("1.1.0")() {
		t.Fatalf("1.1.0 not live after a refused version: %+v", dir.Status())
	}
	if err := a.heartbeat(); err != nil {
		t.Fatal(err)
	}

	// A version that traps on every call (another state_version: the open
	// connection keeps 1.1.0): each new connection costs its frame and
	// itself; the third failure in a row disables it and 1.1.0 serves
	// again; the other device gets acks throughout.
	drop(trapping)
	waitFor("2.0.0 live", 10*time.Second, live("2.0.0"))
	for i := range 3 {
		d := dialACME(t, "tcp", tcp, "35630704244200"+strconv.Itoa(i))
		d.closed(acme.AppendFrame(nil, acme.TypeHello, []byte(d.imei)))
		if err := a.heartbeat(); err != nil {
			t.Fatalf("other device after trap %d: %v", i+1, err)
		}
	}
	waitFor("1.1.0 restored", 10*time.Second, live("1.1.0"))
	if r, ok := row(wasmdecoder.StateDisabled); !ok || !strings.HasPrefix(r.Version, "2.0.0+") || !strings.Contains(r.Error, "3 consecutive") {
		t.Fatalf("disabled row = %+v (%v)", r, ok)
	}
	waitFor("the traps quarantined", 20*time.Second, func() bool { return rejected("%trap%") == 3 })
	if err := a.records(base.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	e := dialACME(t, "tcp", tcp, "356307042441005")
	if err := e.hello(); err != nil {
		t.Fatalf("new connection after the restore: %v", err)
	}
	if err := e.records(base); err != nil || stored(e.imei) != 1 {
		t.Fatalf("new device after the restore: %v, %d stored", err, stored(e.imei))
	}
	waitFor("decoder_disabled alert", 20*time.Second, func() bool {
		var c int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE device_id = 'decoder:acme_wat'
			AND kind = 'decoder_disabled' AND state = 'open' AND reason LIKE '%2.0.0+%serving 1.1.0+%'`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c == 1
	})

	// A fixed file clears the alert.
	drop(acmeVariant(t, version("2.0.1"), false))
	waitFor("2.0.1 live", 10*time.Second, live("2.0.1"))
	if err := n.Organizer().RunNow(context.Background(), node.JobDecoderAlerts); err != nil {
		t.Fatal(err)
	}
	var open int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE device_id = 'decoder:acme_wat' AND state = 'open'`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Fatal("decoder_disabled alert still open after the file changed")
	}
}

// Check (what `fleetcore validate` runs) plans listeners against the
// decoder folder: a loaded decoder's transports and options are checked
// like a built-in's, each problem at its line; a name the folder does not
// serve yet is accepted (serve starts the listener and waits); without a
// folder it is an unknown protocol.
func TestCheckDropInDecoders(t *testing.T) {
	folder := t.TempDir()
	if err := os.WriteFile(filepath.Join(folder, "acme.wasm"), wasmfixture.WATFile(t, acmeWAT), 0o644); err != nil {
		t.Fatal(err)
	}
	decoders := `decoders {
  dir       = "` + folder + `"
  cache_dir = "` + filepath.Join(t.TempDir(), "cache") + `"
}
`
	cases := []struct {
		name, src string
		problems  []string // substrings, each of one problem line; none = valid
	}{
		{"loaded, tcp", decoders + `listener "acme_wat" { address = "127.0.0.1:0" }`, nil},
		{"not there yet", decoders + `listener "later" {
  protocol = "acme_v2"
  address  = "127.0.0.1:0"
}`, nil},
		{"transport the version does not serve", decoders + `listener "acme_udp" {
  protocol  = "acme_wat"
  transport = "udp"
  address   = "127.0.0.1:0"
}`, []string{`node.hcl:7: listener "acme_udp": decoder acme_wat 1.0.0+sha256:`, "does not support transport udp (it supports tcp)"}},
		{"bad option", decoders + `listener "acme_wat" {
  address = "127.0.0.1:0"
  options = {
    ack = "maybe"
  }
}`, []string{`node.hcl:8: listener "acme_wat": option "ack": "maybe" is not true or false`}},
		{"unknown option", decoders + `listener "acme_wat" {
  address = "127.0.0.1:0"
  options = { speed = "1" }
}`, []string{`option "speed": unknown option (acme_wat takes ack)`}},
		{"not a decoder name", decoders + `listener "x" {
  protocol = "Acme-WAT"
  address  = "127.0.0.1:0"
}`, []string{`unknown protocol "Acme-WAT"`, "a drop-in decoder of " + folder + " is named [a-z0-9_]"}},
		{"no folder", `listener "acme_wat" { address = "127.0.0.1:0" }`, []string{`unknown protocol "acme_wat"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.ParseUnvalidated("node.hcl", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			err = node.Check(cfg, plugins.NewRegistry())
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepts it; want %q", tc.problems)
			}
			for _, p := range tc.problems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("Check: %v\nwant a problem with %q", err, p)
				}
			}
		})
	}
}
