package faulttest

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/protocols/teltonika"
)

// recKey identifies one generated record: device and device time (each
// device sends strictly increasing times, so this is unique).
type recKey struct {
	dev string
	ms  int64
}

type sample struct {
	sent time.Time // first attempt
	d    time.Duration
}

// loadOptions varies a fleet of simulated devices.
type loadOptions struct {
	// first is the index of the fleet's first device (the last digits of
	// its IMEI), so that fleets started one after another in one database
	// never share a device.
	first int
	// sourceIPs makes device i dial from its own loopback address
	// (127.0.5.10+i), as devices behind a load balancer come from many.
	sourceIPs bool
}

// load is a fleet of simulated devices. Each sends a codec 8 frame and
// resends it (reconnecting as needed) until it is acked, then moves on.
type load struct {
	t        *testing.T
	addr     func() string
	perFrame int
	pace     time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	acked   map[recKey]time.Time
	sent    map[recKey]struct{}
	lat     []sample
	resends int
	devs    map[string]bool // the simulated devices' ids
	// gaps is each device's longest wait for an ack: from its start, or
	// its previous ack, to the next ack.
	gaps map[string]time.Duration
	last map[string]time.Time // each device's last ack
}

func startLoad(t *testing.T, addr func() string, devices, perFrame int, pace time.Duration) *load {
	return startLoadWith(t, addr, devices, perFrame, pace, loadOptions{})
}

// startLoadWith is startLoad with options.
func startLoadWith(t *testing.T, addr func() string, devices, perFrame int, pace time.Duration, opt loadOptions) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{t: t, addr: addr, perFrame: perFrame, pace: pace, cancel: cancel,
		acked: map[recKey]time.Time{}, sent: map[recKey]struct{}{}, devs: map[string]bool{},
		gaps: map[string]time.Duration{}, last: map[string]time.Time{}}
	base := time.Now().UTC().Truncate(time.Second).Add(-24 * time.Hour)
	for i := 0; i < devices; i++ {
		imei := fmt.Sprintf("3563070424%05d", opt.first+i)
		var local net.Addr
		if opt.sourceIPs {
			local = &net.TCPAddr{IP: net.IPv4(127, 0, 5, byte(10+i))}
		}
		l.devs[imei] = true
		l.wg.Add(1)
		go l.device(ctx, imei, local, base)
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

type devConn struct {
	c    net.Conn
	r    *bufio.Reader
	stop func() bool
}

func (d *devConn) close() {
	d.stop()
	d.c.Close()
}

func dialDevice(ctx context.Context, addr, imei string) (*devConn, error) {
	return dialDeviceFrom(ctx, addr, imei, nil)
}

// dialDeviceFrom is dialDevice from the local address local (nil: any).
func dialDeviceFrom(ctx context.Context, addr, imei string, local net.Addr) (*devConn, error) {
	dl := net.Dialer{Timeout: 2 * time.Second, LocalAddr: local}
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	d := &devConn{c: c, r: bufio.NewReader(c)}
	d.stop = context.AfterFunc(ctx, func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(teltonika.LoginFrame(imei)); err != nil {
		d.close()
		return nil, err
	}
	b, err := d.r.ReadByte()
	if err != nil || b != 1 {
		d.close()
		return nil, fmt.Errorf("login refused: %x %v", b, err)
	}
	return d, nil
}

func (l *load) device(ctx context.Context, imei string, local net.Addr, base time.Time) {
	defer l.wg.Done()
	lastAck := time.Now()
	defer func() {
		// A wait the stop cut short counts too.
		l.mu.Lock()
		l.gaps[imei] = max(l.gaps[imei], time.Since(lastAck))
		l.mu.Unlock()
	}()
	var conn *devConn
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	seq := 0
	for ctx.Err() == nil {
		recs := make([]teltonika.Record, l.perFrame)
		keys := make([]recKey, l.perFrame)
		for i := range recs {
			ts := base.Add(time.Duration(seq+i) * time.Second)
			recs[i] = teltonika.Record{Time: ts, Lat: 54.6 + float64(seq%1000)/1e4, Lon: 25.2, Alt: 100, Angle: uint16(seq % 360),
				Sats: 8, Speed: uint16(seq % 120), IO: map[uint8]uint8{239: 1}}
			keys[i] = recKey{imei, ts.UnixMilli()}
		}
		frame := teltonika.Codec8Frame(recs...)
		l.mu.Lock()
		for _, k := range keys {
			l.sent[k] = struct{}{}
		}
		l.mu.Unlock()
		first := time.Now()
		attempts := 0
		for ctx.Err() == nil {
			if conn == nil {
				c, err := dialDeviceFrom(ctx, l.addr(), imei, local)
				if err != nil {
					pause(ctx, 50*time.Millisecond)
					continue
				}
				conn = c
			}
			attempts++
			conn.c.SetDeadline(time.Now().Add(30 * time.Second))
			var ack [4]byte
			_, err := conn.c.Write(frame)
			if err == nil {
				_, err = io.ReadFull(conn.r, ack[:])
			}
			if err != nil {
				conn.close()
				conn = nil
				pause(ctx, 20*time.Millisecond)
				continue
			}
			if n := binary.BigEndian.Uint32(ack[:]); n != uint32(l.perFrame) {
				l.t.Errorf("device %s: ack for %d records, sent %d", imei, n, l.perFrame)
			}
			now := time.Now()
			l.mu.Lock()
			for _, k := range keys {
				l.acked[k] = now
			}
			l.lat = append(l.lat, sample{first, now.Sub(first)})
			l.resends += attempts - 1
			l.gaps[imei] = max(l.gaps[imei], now.Sub(lastAck))
			l.last[imei] = now
			l.mu.Unlock()
			lastAck = now
			break
		}
		seq += l.perFrame
		pause(ctx, l.pace)
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// longestGap is the longest any device waited for an ack (from its start
// or its previous ack to the next), and which device it was.
func (l *load) longestGap() (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	var dev string
	for k, g := range l.gaps {
		if g > d {
			d, dev = g, k
		}
	}
	return d, dev
}

// devicesAckedSince counts the devices that got an ack at or after since.
func (l *load) devicesAckedSince(since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.last {
		if !at.Before(since) {
			n++
		}
	}
	return n
}

// ackCount returns how many records are acked so far.
func (l *load) ackCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcks waits until at least n more records than now are acked (the
// load is flowing), or fails after timeout.
func (l *load) waitAcks(n int, timeout time.Duration) {
	l.t.Helper()
	want := l.ackCount() + n
	deadline := time.Now().Add(timeout)
	for l.ackCount() < want {
		if time.Now().After(deadline) {
			l.t.Fatalf("only %d of %d acks after %v", l.ackCount(), want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hold keeps a fault in place for d while the load runs and then checks
// that at least minAcks records were acked meanwhile (when minAcks > 0).
func (l *load) hold(d time.Duration, minAcks int) {
	l.t.Helper()
	before := l.ackCount()
	t := time.NewTimer(d)
	<-t.C
	if got := l.ackCount() - before; got < minAcks {
		l.t.Fatalf("only %d records acked during the fault, want at least %d", got, minAcks)
	}
}

// latency returns p50 and p99 ack latency of frames first sent in [from, to).
func (l *load) latency(from, to time.Time) (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	var ds []time.Duration
	for _, s := range l.lat {
		if !s.sent.Before(from) && s.sent.Before(to) {
			ds = append(ds, s.d)
		}
	}
	l.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.5) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return q(0.50), q(0.99), len(ds)
}

// ackedBetween counts records whose ack arrived in [from, to).
func (l *load) ackedBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.acked {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}

var (
	summaryMu sync.Mutex
	summary   []string
)

// TestMain prints one summary line per fault after the suite (visible
// with -v, or when a test failed).
func TestMain(m *testing.M) {
	code := m.Run()
	if len(summary) > 0 {
		fmt.Println("fault suite summary (ack latency during the fault):")
		for _, line := range summary {
			fmt.Println("  " + line)
		}
	}
	os.Exit(code)
}

// report is what one fault run found.
type report struct {
	Acked, Sent, Stored, Duplicates, Lost, UnackedStored int
	Paths                                                map[string]int
	P50, P99                                             time.Duration
	FaultFrames                                          int
	Resends                                              int
}

// stored reads every (device, ts) in signals with its row count.
func stored(t *testing.T, dbURL string) (map[recKey]int, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connecting to check results: %v", err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT device_id, (extract(epoch from ts) * 1000)::bigint, count(*) FROM signals GROUP BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[recKey]int{}
	for rows.Next() {
		var k recKey
		var n int
		if err := rows.Scan(&k.dev, &k.ms, &n); err != nil {
			t.Fatal(err)
		}
		got[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	paths := map[string]int{}
	prow, err := c.Query(ctx, `SELECT path, count(*) FROM signals GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for prow.Next() {
		var p string
		var n int
		if err := prow.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		paths[p] = n
	}
	return got, paths
}

// settle waits until every acked record is in Postgres (replay done) or
// the timeout passes, then checks and reports. The load must be stopped.
func (l *load) settle(t *testing.T, name, dbURL string, timeout time.Duration, faultFrom, faultTo time.Time) report {
	t.Helper()
	l.mu.Lock()
	acked := make(map[recKey]time.Time, len(l.acked))
	for k, v := range l.acked {
		acked[k] = v
	}
	l.mu.Unlock()
	deadline := time.Now().Add(timeout)
	var got map[recKey]int
	var paths map[string]int
	for {
		got, paths = stored(t, dbURL)
		missing := 0
		for k := range acked {
			if got[k] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := report{Acked: len(acked), Sent: len(l.sent), Paths: paths, Resends: l.resends}
	for k, n := range got {
		if !l.devs[k.dev] {
			continue // another test's traffic (poison records): reported there
		}
		r.Stored++
		if n > 1 {
			r.Duplicates += n - 1
		}
		if _, ok := acked[k]; !ok {
			r.UnackedStored++
		}
		if _, ok := l.sent[k]; !ok {
			t.Errorf("%s: stored record %v was never sent", name, k)
		}
	}
	for k := range acked {
		if got[k] == 0 {
			r.Lost++
		}
	}
	r.P50, r.P99, r.FaultFrames = l.latency(faultFrom, faultTo)
	summaryMu.Lock()
	summary = append(summary, fmt.Sprintf("%-34s acked=%-6d stored=%-6d duplicates=%d lost=%d unacked_but_stored=%-3d p50=%-8v p99=%v",
		name, r.Acked, r.Stored, r.Duplicates, r.Lost, r.UnackedStored, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond)))
	summaryMu.Unlock()
	t.Logf("FAULT %-28s acked=%d stored=%d duplicates=%d lost=%d unacked_but_stored=%d sent=%d resends=%d paths=%v ack_latency_during_fault p50=%v p99=%v (%d frames)",
		name, r.Acked, r.Stored, r.Duplicates, r.Lost, r.UnackedStored, r.Sent, r.Resends, r.Paths,
		r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.FaultFrames)
	if r.Lost != 0 || r.Duplicates != 0 {
		t.Errorf("%s: %d acked records lost, %d duplicates", name, r.Lost, r.Duplicates)
	}
	if r.Acked == 0 {
		t.Errorf("%s: nothing was acked", name)
	}
	return r
}
