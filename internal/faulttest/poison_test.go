package faulttest

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/internal/testenv"
	_ "github.com/fleetcore/fleetcore/protocols/freematics"
	_ "github.com/fleetcore/fleetcore/protocols/h02"
	_ "github.com/fleetcore/fleetcore/protocols/jsonl"
)

// Poison records: records that must never cost another device's acked
// data. Two kinds, each sent next to the usual Teltonika fleet and in three
// states of the durability chain (Postgres up, Postgres cut with RabbitMQ
// as the next tier, Postgres cut with only the spool):
//
//   - oversized device ids (≈6,000 random characters, beyond the btree key
//     size of the idempotency index) through jsonl and h02: the gateway
//     must refuse them (never acked) and quarantine the frame;
//   - records Postgres refuses although they pass every gateway check (a
//     CHECK constraint the test adds to its own database): the store must
//     isolate them by bisection, commit the rest of the batch, keep the
//     refused records in rejected_records, and the replay from RabbitMQ and
//     the spool must do the same instead of dead-lettering the batch.
//
// For the good devices the usual accounting holds (lost 0, duplicates 0);
// for every poison record the test reports where it ended up, and an acked
// one that is neither in signals nor in rejected_records is missing.

// poisonIDLen is the oversized device id's length: beyond the 2,704-byte
// btree key limit even after compression (random characters do not
// compress).
const poisonIDLen = 6000

// poisonListeners is the poison listeners' HCL (free ports: two
// listeners may not share an address, not even port 0).
func poisonListeners(t *testing.T) string {
	return fmt.Sprintf(`
listener "jsonl" {
  address = "127.0.0.1:%d"
}
listener "h02" {
  address = "127.0.0.1:%d"
}
`, testenv.FreePort(t), testenv.FreePort(t))
}

// poisonIngest batches for longer than the other faults so that a batch
// holds several devices' records: a poison record then shares its batch
// with good ones, which is what the test is about.
const poisonIngest = `batch_max_age = "10ms"`

// poisonRec is one poison record sent and what became of it.
type poisonRec struct {
	proto string // jsonl or h02
	tag   string // unique prefix of the device id (alphanumeric)
	dev   string
	ts    time.Time
	acked bool
	reply string // the server's answer: ok, error text, or closed
	// Where it ended up (filled by locate).
	inSignals  int
	inFrames   int // rejected_frames rows naming it
	inRecords  int // rejected_records rows
	recordsAck int // of those, rows with acked = true
}

// alnum returns n random alphanumeric characters.
func alnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// poisonSender sends poison records, one per connection (a refused one
// closes it), and keeps what it sent.
type poisonSender struct {
	t       *testing.T
	jsonl   string
	h02     string
	mkID    func(i int) (tag, dev string)
	protos  []string
	mu      sync.Mutex
	sent    []*poisonRec
	base    time.Time
	timeout time.Duration
}

func newPoisonSender(t *testing.T, r *running, protos []string, mkID func(i int) (tag, dev string)) *poisonSender {
	return &poisonSender{t: t, jsonl: r.n.Addr("jsonl").String(), h02: r.n.Addr("h02").String(), mkID: mkID, protos: protos,
		base: time.Now().UTC().Truncate(time.Second).Add(-12 * time.Hour), timeout: 15 * time.Second}
}

// oversizedID is a ≈6,000-character random device id with a 16-character
// tag in front that finds it again (also in truncated or escaped copies).
func oversizedID(int) (string, string) {
	tag := "P" + alnum(15)
	return tag, tag + alnum(poisonIDLen-len(tag))
}

// run sends n poison records, one every gap (or until ctx ends), and
// returns when every answer is in.
func (p *poisonSender) run(ctx context.Context, n int, gap time.Duration) {
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		tag, dev := p.mkID(i)
		rec := &poisonRec{proto: p.protos[i%len(p.protos)], tag: tag, dev: dev, ts: p.base.Add(time.Duration(len(p.sent)) * time.Second)}
		p.mu.Lock()
		p.sent = append(p.sent, rec)
		p.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.send(ctx, rec)
		}()
		pause(ctx, gap)
	}
	wg.Wait()
}

// send writes one poison record on a fresh connection and reads the answer
// (bounded by p.timeout).
func (p *poisonSender) send(ctx context.Context, rec *poisonRec) {
	addr, frame := p.jsonl, []byte(fmt.Sprintf(`{"device_id":%q,"ts":%q,"lat":54.7,"lon":25.3,"speed":12}`+"\n", rec.dev, rec.ts.Format(time.RFC3339)))
	if rec.proto == "h02" {
		ts := rec.ts
		addr, frame = p.h02, []byte(fmt.Sprintf("*HQ,%s,V1,%s,A,5441.9800,N,02518.0000,E,12.00,90,%s,FFFFFBFF#",
			rec.dev, ts.Format("150405"), ts.Format("020106")))
	}
	dl := net.Dialer{Timeout: 2 * time.Second}
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		rec.reply = "dial: " + err.Error()
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(p.timeout)) //nolint:errcheck
	if _, err := c.Write(frame); err != nil {
		rec.reply = "closed before the frame was written: " + err.Error()
		return
	}
	br := bufio.NewReader(c)
	var ans string
	if rec.proto == "h02" {
		ans, err = br.ReadString('#')
	} else {
		ans, err = br.ReadString('\n')
	}
	ans = strings.TrimSpace(ans)
	switch {
	case rec.proto == "jsonl" && strings.HasPrefix(ans, `{"ok"`),
		rec.proto == "h02" && strings.HasPrefix(ans, "*HQ,") && strings.HasSuffix(ans, "#"):
		rec.acked, rec.reply = true, "ok"
	case ans != "":
		rec.reply = ans
	case errors.Is(err, io.EOF):
		rec.reply = "closed"
	default:
		rec.reply = fmt.Sprintf("no answer: %v", err)
	}
}

func (p *poisonSender) records() []*poisonRec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*poisonRec(nil), p.sent...)
}

// poisonReport counts where the poison records ended up.
type poisonReport struct {
	Sent, Acked, Stored, Quarantined, InRejectedRecords, Missing int
	RejectedRecordsTable                                         bool
}

// locate finds each poison record in signals, rejected_frames and
// rejected_records (when that table exists).
func locate(t *testing.T, dbURL string, recs []*poisonRec) poisonReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connecting to locate poison records: %v", err)
	}
	defer c.Close(context.Background())
	var hasRecords bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('rejected_records') IS NOT NULL").Scan(&hasRecords); err != nil {
		t.Fatal(err)
	}
	rep := poisonReport{Sent: len(recs), RejectedRecordsTable: hasRecords}
	for _, r := range recs {
		prefix := r.tag + "%"
		if err := c.QueryRow(ctx, `SELECT count(*) FROM signals WHERE device_id LIKE $1`, prefix).Scan(&r.inSignals); err != nil {
			t.Fatalf("counting poison %s in signals: %v", r.tag, err)
		}
		if err := c.QueryRow(ctx, `SELECT count(*) FROM rejected_frames WHERE device_id LIKE $1 OR position($2::bytea in raw) > 0`,
			prefix, []byte(r.tag)).Scan(&r.inFrames); err != nil {
			t.Fatalf("counting poison %s in rejected_frames: %v", r.tag, err)
		}
		if hasRecords {
			if err := c.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE acked) FROM rejected_records
				WHERE device_id LIKE $1 OR position($2::bytea in record) > 0`, prefix, []byte(r.tag)).Scan(&r.inRecords, &r.recordsAck); err != nil {
				t.Errorf("reading rejected_records (columns device_id, acked, record as the issue names them): %v", err)
				hasRecords = false
			}
		}
		if r.acked {
			rep.Acked++
		}
		if r.inSignals > 0 {
			rep.Stored++
		}
		if r.inFrames > 0 {
			rep.Quarantined++
		}
		if r.inRecords > 0 {
			rep.InRejectedRecords++
		}
		// An acked record must be stored or kept as an acked refused one.
		if r.acked && r.inSignals == 0 && r.recordsAck == 0 {
			rep.Missing++
		}
	}
	return rep
}

// logPoison logs and summarises one poison run (the line for the failover
// README's fault table).
func logPoison(t *testing.T, name string, good report, p poisonReport) {
	t.Helper()
	line := fmt.Sprintf("%-34s good: acked=%d stored=%d lost=%d duplicates=%d | poison: sent=%d acked=%d stored=%d rejected_frames=%d rejected_records=%d missing=%d",
		name, good.Acked, good.Stored, good.Lost, good.Duplicates, p.Sent, p.Acked, p.Stored, p.Quarantined, p.InRejectedRecords, p.Missing)
	if !p.RejectedRecordsTable {
		line += " (no rejected_records table)"
	}
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
	t.Logf("POISON %s", line)
}

// poisonTier is one state of the durability chain a poison run happens in.
type poisonTier struct {
	name string
	cut  bool // Postgres cut while the poison records are sent
	amqp bool // RabbitMQ configured as the next tier
}

var poisonTiers = []poisonTier{
	{"postgres up", false, true},
	{"postgres cut, rabbitmq", true, true},
	{"postgres cut, spool only", true, false},
}

// poisonRun is what one poison run needs and found.
type poisonRun struct {
	r      *running
	db     string
	spool  string
	good   report
	poison []*poisonRec
	rep    poisonReport
}

// runPoison runs the fleet and poisonSender in tier; prepare (may be nil)
// runs on the migrated database before the load starts.
func runPoison(t *testing.T, name string, tier poisonTier, protos []string, mkID func(int) (string, string), prepare func(t *testing.T, dbURL string)) *poisonRun {
	db := testenv.Database(t)
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	amqp := ""
	if tier.amqp {
		amqp = testenv.VHost(t)
	}
	cfg := nodeConfigWith(t, testenv.WithHost(db, pgProxy.Addr()), amqp, poisonIngest, poisonListeners(t))
	r := runNode(t, cfg, nil)
	if prepare != nil {
		prepare(t, db)
	}
	l := startLoad(t, r.addr, 12, perFrame, pace)
	l.waitAcks(200, 20*time.Second)
	ps := newPoisonSender(t, r, protos, mkID)

	from := time.Now()
	if tier.cut {
		pgProxy.Cut()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { ps.run(ctx, 12, 200*time.Millisecond); close(done) }()
	l.hold(3*time.Second, 200) // the fleet keeps being acked meanwhile
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		cancel()
		<-done
		t.Errorf("poison senders still waiting for answers after 45 s")
	}
	to := time.Now()
	if tier.cut {
		pgProxy.Restore()
	}
	l.waitAcks(200, 30*time.Second)
	l.stop()
	r.backlogEmpty(t, 60*time.Second)
	good := l.settle(t, "poison "+name+", "+tier.name, db, 30*time.Second, from, to)
	recs := ps.records()
	// Quarantine rows are written asynchronously: give them a moment.
	var rep poisonReport
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rep = locate(t, db, recs)
		if rep.Missing == 0 && rep.Quarantined+rep.InRejectedRecords > 0 || time.Now().After(deadline) {
			break
		}
	}
	logPoison(t, name+", "+tier.name, good, rep)
	for _, p := range recs {
		t.Logf("poison %s %s…: acked=%v reply=%q signals=%d rejected_frames=%d rejected_records=%d (acked %d)",
			p.proto, p.tag, p.acked, truncateReply(p.reply), p.inSignals, p.inFrames, p.inRecords, p.recordsAck)
	}
	if rep.Missing != 0 {
		t.Errorf("%d acked poison records are neither stored nor in rejected_records", rep.Missing)
	}
	pr := &poisonRun{r: r, db: db, spool: cfg.Spool.Dir, good: good, poison: recs, rep: rep}
	pr.checkNothingDead(t)
	return pr
}

func truncateReply(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// checkNothingDead fails when a batch or a segment was dead-lettered: the
// poison records must be isolated, never buried with good data.
func (p *poisonRun) checkNothingDead(t *testing.T) {
	t.Helper()
	if fo := p.r.n.Failover(); fo != nil {
		fs := fo.Stats()
		if fs.DeadLettered != 0 || fs.DeadLetterBacklog > 0 {
			t.Errorf("failover dead-lettered %d messages (dead-letter queue holds %d)", fs.DeadLettered, fs.DeadLetterBacklog)
		}
	}
	dead, _ := filepath.Glob(filepath.Join(p.spool, "dead", "*"))
	if len(dead) != 0 {
		t.Errorf("spool moved %d segments to dead/: %v", len(dead), dead)
	}
	if st := p.r.n.Spool(); st != nil {
		if s := st.Stats(); s.DeadSegments != 0 {
			t.Errorf("spool dead segments: %d", s.DeadSegments)
		}
	}
}

// Fault 7: device ids of ≈6,000 random characters through jsonl and h02,
// next to the fleet. The gateway refuses them (no ack) and quarantines the
// frames; nothing of the fleet is lost.
func TestIntegrationFaultPoisonOversizedID(t *testing.T) {
	testenv.Integration(t)
	for _, tier := range poisonTiers {
		t.Run(tier.name, func(t *testing.T) {
			p := runPoison(t, "oversized device id", tier, []string{"jsonl", "h02"}, oversizedID, nil)
			if p.rep.Acked != 0 {
				t.Errorf("%d of %d records with a %d-character device id were acked; want every one refused at the gateway", p.rep.Acked, p.rep.Sent, poisonIDLen)
			}
			if !tier.cut && p.rep.Quarantined == 0 {
				t.Errorf("none of the %d refused frames is in rejected_frames", p.rep.Sent)
			}
		})
	}
}

// Fault 8: records that pass the gateway's checks but that Postgres
// refuses (a CHECK constraint on device ids starting with "poison"),
// next to the fleet. With Postgres up the store isolates them and they are
// not acked; during a cut they are acked through RabbitMQ or the spool and
// the replay isolates them: each one is in rejected_records, acked ones
// with acked = true, and no batch or segment is dead-lettered.
func TestIntegrationFaultPoisonRefusedByPostgres(t *testing.T) {
	testenv.Integration(t)
	addCheck := func(t *testing.T, dbURL string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, `ALTER TABLE signals ADD CONSTRAINT poison CHECK (device_id NOT LIKE 'poison%')`); err != nil {
			t.Fatalf("adding the poison constraint: %v", err)
		}
	}
	for _, tier := range poisonTiers {
		t.Run(tier.name, func(t *testing.T) {
			run := alnum(6)
			mkID := func(i int) (string, string) {
				id := fmt.Sprintf("poison-%s-%02d", run, i)
				return id, id
			}
			p := runPoison(t, "refused by postgres", tier, []string{"jsonl"}, mkID, addCheck)
			if !p.rep.RejectedRecordsTable {
				t.Fatalf("no rejected_records table: records Postgres refused are kept nowhere")
			}
			for _, r := range p.poison {
				switch {
				case r.inSignals != 0:
					t.Errorf("poison %s stored in signals despite the constraint", r.dev)
				case r.acked && r.recordsAck == 0:
					t.Errorf("poison %s acked (through a failover tier) but not in rejected_records with acked = true", r.dev)
				case !r.acked && r.inRecords == 0 && r.inFrames == 0 && !tier.cut:
					t.Errorf("poison %s refused by Postgres on the direct path but kept nowhere (reply %q)", r.dev, truncateReply(r.reply))
				case !r.acked && r.recordsAck != 0:
					t.Errorf("poison %s: rejected_records says acked but the device never saw an ack", r.dev)
				}
			}
			if tier.cut && p.rep.Acked == 0 {
				t.Errorf("no poison record was acked during the cut: the failover path was not exercised")
			}
			// Refused records are counted by whether the device had been
			// acked (through a failover tier) or not.
			acked, unacked := 0, 0
			for _, r := range p.poison {
				if r.acked {
					acked++
				} else if r.inRecords > 0 {
					unacked++
				}
			}
			for _, c := range []struct {
				label string
				want  int
			}{{`acked="true"`, acked}, {`acked="false"`, unacked}} {
				if c.want == 0 {
					continue
				}
				if n, ok := p.r.metric(t, "fleetcore_store_records_refused_total", c.label); !ok || n < float64(c.want) {
					t.Errorf("fleetcore_store_records_refused_total{%s} = %v (exposed: %v), want at least %d", c.label, n, ok, c.want)
				}
			}
		})
	}
}
