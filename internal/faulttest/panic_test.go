package faulttest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/teltonika"
)

// panicIMEI is the device whose data frames make the decoder panic.
const panicIMEI = "356307042499999"

// panicDecoder is Teltonika with a bug: it panics on every data frame of
// one device (after that device's login), as a decoder with an unchecked
// index would on one tracker's odd firmware.
type panicDecoder struct {
	plugins.Decoder
	imei string
}

func (d panicDecoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	return &panicSession{Session: d.Decoder.NewSession(cfg), imei: d.imei}
}

type panicSession struct {
	plugins.Session
	imei string
	bad  bool
}

func (s *panicSession) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if s.bad {
		panic(fmt.Sprintf("faulttest: decoder bug on a frame of device %s", s.imei))
	}
	res, err := s.Session.Decode(frame, recv)
	if res.DeviceID == s.imei || bytes.Contains(frame, []byte(s.imei)) {
		s.bad = true
	}
	return res, err
}

// DeviceID keeps the wrapped session's capability (the quarantine row
// names the device).
func (s *panicSession) DeviceID() string {
	if di, ok := s.Session.(plugins.DeviceIdentifier); ok {
		return di.DeviceID()
	}
	return ""
}

// childEnv marks the child process that runs the panic scenario;
// childDBEnv passes it the database the parent created (and drops, even
// when the child dies).
const (
	childEnv   = "FLEETCORE_FAULTTEST_CHILD"
	childDBEnv = "FLEETCORE_FAULTTEST_DB"
)

// Fault 9: a decoder that panics on one device's frames while the fleet
// sends. The scenario runs in a child process (this test binary again) so
// that a panic that takes the process down (today's code) is reported here
// as a failure with what the child printed, not as the death of the whole
// suite.
func TestIntegrationFaultDecoderPanic(t *testing.T) {
	testenv.Integration(t)
	if os.Getenv(childEnv) == "panic" {
		decoderPanicScenario(t, os.Getenv(childDBEnv))
		return
	}
	db := testenv.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestIntegrationFaultDecoderPanic$", "-test.v", "-test.count", "1")
	cmd.Env = append(os.Environ(), childEnv+"=panic", childDBEnv+"="+db)
	out, err := cmd.CombinedOutput()
	text := string(out)
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "FAULT "); i >= 0 {
			summaryMu.Lock()
			summary = append(summary, strings.TrimSpace(line[i+len("FAULT "):]))
			summaryMu.Unlock()
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("the child did not finish in 4 minutes; output:\n%s", tail(text, 80))
	}
	if err != nil {
		if i := strings.Index(text, "\npanic: "); i >= 0 {
			t.Fatalf("the node process died of the decoder's panic (%v): every connection went with it; the panic:\n%s", err, tail(text[i:], 30))
		}
		t.Fatalf("the panic scenario failed (%v):\n%s", err, tail(text, 120))
	}
	t.Log(tail(text, 40))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func decoderPanicScenario(t *testing.T, db string) {
	cfg := nodeConfig(t, db, "")
	reg := plugins.NewRegistry()
	tel, ok := plugins.Decoders.Lookup("teltonika")
	if !ok {
		t.Fatal("teltonika not registered")
	}
	reg.Register(panicDecoder{Decoder: tel, imei: panicIMEI})
	r := runNodeWith(t, cfg, reg, nil)
	l := startLoad(t, r.addr, devices, perFrame, pace)
	l.waitAcks(200, 20*time.Second)

	from := time.Now()
	const attempts = 20
	acked, closed := 0, 0
	base := time.Now().UTC().Truncate(time.Second).Add(-6 * time.Hour)
	for i := 0; i < attempts; i++ {
		a, c, err := sendPanicFrame(r.addr(), base.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Errorf("panicking device, attempt %d: %v", i, err)
			continue
		}
		if a {
			acked++
		}
		if c {
			closed++
		}
	}
	// The fleet carries on after the panics.
	l.waitAcks(200, 20*time.Second)
	to := time.Now()
	l.stop()
	rep := l.settle(t, "decoder panics on one device", db, 60*time.Second, from, to)

	// The panicking frames are quarantined with the panic as the reason
	// (rate-limited per source: at least one row).
	var quarantined int
	deadline := time.Now().Add(15 * time.Second)
	for {
		quarantined = countRejected(t, db, `device_id = $1 AND reason ILIKE '%panic%'`, panicIMEI)
		if quarantined > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	line := fmt.Sprintf("decoder panic: good acked=%d stored=%d lost=%d duplicates=%d | panicking device: frames=%d acked=%d closed=%d quarantined=%d",
		rep.Acked, rep.Stored, rep.Lost, rep.Duplicates, attempts, acked, closed, quarantined)
	t.Logf("FAULT %s", line)
	if acked != 0 {
		t.Errorf("%d frames acked although their decoder panicked", acked)
	}
	if closed != attempts {
		t.Errorf("%d of %d connections of the panicking device closed", closed, attempts)
	}
	if quarantined == 0 {
		t.Errorf("no rejected_frames row for %s with the panic as the reason", panicIMEI)
	}
	if n, ok := r.metric(t, "fleetcore_decoder_panics_total"); !ok || n < attempts {
		t.Errorf("fleetcore_decoder_panics_total = %v (exposed: %v), want at least %d", n, ok, attempts)
	}
}

// sendPanicFrame logs in as panicIMEI, sends one data frame and reports
// whether it was acked and whether the server closed the connection
// (within 10 s).
func sendPanicFrame(addr string, ts time.Time) (acked, closed bool, err error) {
	d, err := dialDevice(context.Background(), addr, panicIMEI)
	if err != nil {
		return false, false, fmt.Errorf("login: %w", err)
	}
	defer d.close()
	d.c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	frame := teltonika.Codec8Frame(teltonika.Record{Time: ts, Lat: 54.6, Lon: 25.2, Sats: 8, IO: map[uint8]uint8{239: 1}})
	if _, err := d.c.Write(frame); err != nil {
		return false, true, nil
	}
	var ack [4]byte
	_, err = io.ReadFull(d.r, ack[:])
	switch {
	case err == nil:
		return binary.BigEndian.Uint32(ack[:]) == 1, false, nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
		return false, true, nil
	default:
		return false, false, fmt.Errorf("no ack and no close after 10 s: %w", err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// countRejected counts rejected_frames rows matching where (with args).
func countRejected(t *testing.T, dbURL, where string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM rejected_frames WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
