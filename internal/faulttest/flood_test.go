package faulttest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/protocols/freematics"
	"github.com/fleetcore/fleetcore/protocols/teltonika"
)

// Floods from one source next to a good device on another: the good
// device must keep being acked and stored.

// ledger is a good UDP device's accounting: records sent, acked (with the
// time from first send to ack).
type ledger struct {
	mu    sync.Mutex
	dev   string
	sent  map[int64]bool // device time, ms
	acked map[int64]bool
	lat   []time.Duration
	tries int
}

func newLedger(dev string) *ledger {
	return &ledger{dev: dev, sent: map[int64]bool{}, acked: map[int64]bool{}}
}

func (l *ledger) send(ms int64) { l.mu.Lock(); l.sent[ms] = true; l.mu.Unlock() }
func (l *ledger) ack(ms int64, d time.Duration) {
	l.mu.Lock()
	l.acked[ms] = true
	l.lat = append(l.lat, d)
	l.mu.Unlock()
}

// p99 returns the 99th percentile and the maximum ack latency.
func (l *ledger) p99() (p99, worst time.Duration) {
	l.mu.Lock()
	ds := append([]time.Duration(nil), l.lat...)
	l.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(0.99*float64(len(ds))+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))], ds[len(ds)-1]
}

// check waits (up to timeout) until every acked record of the device is
// stored, then reports and fails on lost or duplicated records.
func (l *ledger) check(t *testing.T, dbURL string, timeout time.Duration) report {
	t.Helper()
	l.mu.Lock()
	acked := make(map[int64]bool, len(l.acked))
	for k := range l.acked {
		acked[k] = true
	}
	sent := len(l.sent)
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connecting to check results: %v", err)
	}
	defer c.Close(context.Background())
	var got map[int64]int
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		got = map[int64]int{}
		rows, err := c.Query(ctx, `SELECT (extract(epoch from ts) * 1000)::bigint, count(*) FROM signals WHERE device_id = $1 GROUP BY 1`, l.dev)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var ms int64
			var n int
			if err := rows.Scan(&ms, &n); err != nil {
				t.Fatal(err)
			}
			got[ms] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		missing := 0
		for k := range acked {
			if got[k] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	r := report{Acked: len(acked), Sent: sent}
	for _, n := range got {
		r.Stored++
		r.Duplicates += n - 1
	}
	for k := range acked {
		if got[k] == 0 {
			r.Lost++
		}
	}
	r.P99, _ = l.p99()
	if r.Lost != 0 || r.Duplicates != 0 {
		t.Errorf("good device %s: %d acked records lost, %d duplicates", l.dev, r.Lost, r.Duplicates)
	}
	return r
}

// udpFrom opens a UDP socket on a local address of choice (127.0.0.2 is
// another source than the 127.0.0.1 of the flood) connected to target.
func udpFrom(t *testing.T, local, target string) *net.UDPConn {
	t.Helper()
	la, err := net.ResolveUDPAddr("udp", local+":0")
	if err != nil {
		t.Fatal(err)
	}
	ra, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", la, ra)
	if err != nil {
		t.Fatalf("binding a UDP client to %s: %v", local, err)
	}
	return c
}

// exchange writes a datagram and waits up to wait for a reply that ok
// accepts.
func exchange(c *net.UDPConn, msg []byte, wait time.Duration, ok func([]byte) bool) ([]byte, bool) {
	if _, err := c.Write(msg); err != nil {
		return nil, false
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(wait)
	for {
		c.SetReadDeadline(deadline) //nolint:errcheck
		n, err := c.Read(buf)
		if err != nil {
			return nil, false
		}
		if ok(buf[:n]) {
			return append([]byte(nil), buf[:n]...), true
		}
	}
}

// Fault 10: a Freematics id flood: one source sends tens of thousands of
// pings, each with a fresh device id (filling the feed-id table), while a
// good Freematics device on another source address logs in and sends data
// (a fresh UDP session for each record, as after a modem reconnect).
func TestIntegrationFaultFreematicsIDFlood(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg := nodeConfigWith(t, db, "", `batch_max_age = "2ms"`, `
listener "freematics" {
  transport = "udp"
  address = "127.0.0.1:0"
}
`)
	r := runNode(t, cfg, nil)
	target := r.n.Addr("freematics").String()

	// More than the 65,279 feed ids a server can assign before the good
	// device starts, and more while it runs.
	const fillIDs, floodIDs = 68000, 90000
	var floodSent, floodAnswered atomic.Int64
	fctx, fcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer fcancel()
	var fwg sync.WaitGroup
	run := alnum(4)
	const workers = 4
	for w := 0; w < workers; w++ {
		c := udpFrom(t, "127.0.0.1", target)
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			defer c.Close()
			buf := make([]byte, 512)
			const window = 16 // in flight per worker: no drop at the socket buffer
			for i := w; i < floodIDs && fctx.Err() == nil; {
				n := 0
				for ; n < window && i < floodIDs; n++ {
					msg := freematics.AppendChecksum(fmt.Appendf(nil, "0#EV=7,TS=%d,ID=FLOOD%s%06d", 1000+i, run, i))
					c.Write(msg) //nolint:errcheck // datagram
					floodSent.Add(1)
					i += workers
				}
				deadline := time.Now().Add(50 * time.Millisecond)
				for got := 0; got < n; got++ {
					c.SetReadDeadline(deadline) //nolint:errcheck
					if _, err := c.Read(buf); err != nil {
						break
					}
					floodAnswered.Add(1)
				}
			}
		}()
	}
	stopFlood := func() { fcancel(); fwg.Wait() }
	defer stopFlood()
	// Let the flood fill the table (today: all feed ids in use), then start
	// the good device while the rest of the flood keeps coming.
	for deadline := time.Now().Add(60 * time.Second); floodSent.Load() < fillIDs; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("flood sent only %d pings in 60 s", floodSent.Load())
		}
	}
	floodBefore := floodSent.Load()

	const dev = "GOODFM" + "0000000001"
	good := newLedger(dev)
	base := time.Now().UTC().Truncate(time.Second).Add(-3 * time.Hour)
	const records = 40
	loginsRefused, unackedInARow := 0, 0
	deadline := time.Now().Add(40 * time.Second)
	for i := 0; i < records && unackedInARow < 5 && time.Now().Before(deadline); i++ {
		ts := base.Add(time.Duration(i) * time.Second)
		good.send(ts.UnixMilli())
		first := time.Now()
		unackedInARow++
		for attempt := 0; attempt < 3; attempt++ {
			ok, refused := goodFreematicsRecord(t, target, dev, ts, i)
			if refused {
				loginsRefused++
			}
			if ok {
				good.ack(ts.UnixMilli(), time.Since(first))
				unackedInARow = 0
				break
			}
		}
	}
	floodDuring := floodSent.Load() - floodBefore
	stopFlood()
	rep := good.check(t, db, 30*time.Second)
	p99, worst := good.p99()
	line := fmt.Sprintf("freematics id flood: good acked=%d/%d stored=%d lost=%d duplicates=%d p99=%v max=%v logins_refused=%d | flood: pings=%d (during the good device: %d) answered=%d",
		rep.Acked, records, rep.Stored, rep.Lost, rep.Duplicates, p99.Round(time.Millisecond), worst.Round(time.Millisecond), loginsRefused,
		floodSent.Load(), floodDuring, floodAnswered.Load())
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
	t.Logf("FAULT %s", line)
	if rep.Acked != records {
		t.Errorf("good Freematics device: %d of %d records acked during the id flood (%d logins refused)", rep.Acked, records, loginsRefused)
	}
	if rep.Stored != records {
		t.Errorf("good Freematics device: %d of %d records stored", rep.Stored, records)
	}
}

// goodFreematicsRecord sends one record of the good device the way the
// firmware does after a reconnect: from a fresh source port a login
// (EV=1, answered with the feed id), then a data message under that feed
// id from another fresh port, answered (first data of that session) by a
// sync once durable. It
// reports whether the record was acked and whether the login got no
// answer.
func goodFreematicsRecord(t *testing.T, target, dev string, ts time.Time, i int) (acked, loginRefused bool) {
	c := udpFrom(t, "127.0.0.2", target)
	defer c.Close()
	login := freematics.AppendChecksum(fmt.Appendf(nil, "0#EV=1,TS=%d,ID=%s", 5000+i*1000, dev))
	reply, ok := exchange(c, login, time.Second, func(b []byte) bool { return strings.Contains(string(b), "#EV=1,") })
	if !ok {
		return false, true
	}
	feed, _, _ := strings.Cut(string(reply), "#")
	if _, err := strconv.ParseUint(feed, 16, 16); err != nil {
		t.Errorf("login reply %q carries no feed id", reply)
		return false, false
	}
	// A login sets the session's last sync: the data goes from another
	// source port (a new session, known by the feed id), whose first data
	// message is answered by a sync.
	d := udpFrom(t, "127.0.0.2", target)
	defer d.Close()
	data := freematics.AppendChecksum(fmt.Appendf(nil, "%s#0:%d,11:%s,10:%s00,A:54.690000,B:25.280000,C:120,D:%d,E:90,F:9",
		feed, 6000+i*1000, ts.Format("020106"), ts.Format("150405"), 30+i%20))
	_, ok = exchange(d, data, 2*time.Second, func(b []byte) bool { return strings.Contains(string(b), "#EV=3,") })
	return ok, false
}

// Fault 11: a UDP garbage flood (datagrams that are no Teltonika packet,
// each refused and quarantined) from one source next to a good Teltonika
// UDP device on another: the good device's records are all acked and
// stored and its ack latency stays bounded.
func TestIntegrationFaultUDPGarbageFlood(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	cfg := nodeConfigWith(t, db, "", `batch_max_age = "2ms"`, `
listener "teltonika-udp" {
  protocol = "teltonika"
  transport = "udp"
  address = "127.0.0.1:0"
}
`)
	r := runNode(t, cfg, nil)
	target := r.n.Addr("teltonika-udp").String()

	// The flood: ~2,000 garbage datagrams/s from 127.0.0.1.
	fctx, fcancel := context.WithCancel(context.Background())
	var fwg sync.WaitGroup
	var garbage atomic.Int64
	for w := 0; w < 2; w++ {
		c := udpFrom(t, "127.0.0.1", target)
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			defer c.Close()
			junk := make([]byte, 200)
			tk := time.NewTicker(10 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-fctx.Done():
					return
				case <-tk.C:
				}
				for i := 0; i < 10; i++ {
					rand.Read(junk) //nolint:errcheck
					c.Write(junk)   //nolint:errcheck // datagram
					garbage.Add(1)
				}
			}
		}()
	}
	stopFlood := func() { fcancel(); fwg.Wait() }
	defer stopFlood()
	// The flood is on before the good device starts.
	for deadline := time.Now().Add(10 * time.Second); garbage.Load() < 2000; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("flood sent only %d datagrams in 10 s", garbage.Load())
		}
	}
	floodFrom := time.Now()

	const imei = "356307042488888"
	good := newLedger(imei)
	c := udpFrom(t, "127.0.0.2", target)
	defer c.Close()
	base := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	const records = 100
	deadline := time.Now().Add(45 * time.Second)
	for i := 0; i < records && time.Now().Before(deadline); i++ {
		ts := base.Add(time.Duration(i) * time.Second)
		good.send(ts.UnixMilli())
		dgram := teltonikaUDP(uint16(i), byte(i), imei, teltonika.Record{Time: ts, Lat: 54.6 + float64(i)/1e4, Lon: 25.2, Alt: 100, Sats: 8, Speed: 40, IO: map[uint8]uint8{239: 1}})
		first := time.Now()
		for time.Now().Before(deadline) {
			_, ok := exchange(c, dgram, time.Second, func(b []byte) bool {
				return len(b) == 7 && binary.BigEndian.Uint16(b[2:]) == uint16(i) && b[5] == byte(i)
			})
			good.tries++
			if ok {
				good.ack(ts.UnixMilli(), time.Since(first))
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // the device's own pace
	}
	floodSecs := time.Since(floodFrom).Seconds()
	stopFlood()
	rep := good.check(t, db, 30*time.Second)
	p99, worst := good.p99()
	line := fmt.Sprintf("udp garbage flood: good acked=%d/%d stored=%d lost=%d duplicates=%d ack p99=%v max=%v sends=%d | garbage datagrams=%d (%.0f/s)",
		rep.Acked, records, rep.Stored, rep.Lost, rep.Duplicates, p99.Round(time.Millisecond), worst.Round(time.Millisecond), good.tries,
		garbage.Load(), float64(garbage.Load())/max(floodSecs, 1))
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
	t.Logf("FAULT %s", line)
	if rep.Acked != records || rep.Stored != records {
		t.Errorf("good UDP device: %d acked, %d stored of %d records during the garbage flood", rep.Acked, rep.Stored, records)
	}
	if p99 > 500*time.Millisecond {
		t.Errorf("good UDP device's ack p99 %v during the garbage flood, want ≤ 500ms (max %v)", p99, worst)
	}
}

// teltonikaUDP builds a Teltonika UDP datagram: length, packet id, 0x01,
// AVL packet id, IMEI, and the codec 8 data of Codec8Frame (without the
// TCP preamble, length and CRC).
func teltonikaUDP(packetID uint16, avlID byte, imei string, recs ...teltonika.Record) []byte {
	tcp := teltonika.Codec8Frame(recs...)
	data := tcp[8 : len(tcp)-4]
	body := binary.BigEndian.AppendUint16(nil, packetID)
	body = append(body, 0x01, avlID)
	body = binary.BigEndian.AppendUint16(body, uint16(len(imei)))
	body = append(body, imei...)
	body = append(body, data...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}
