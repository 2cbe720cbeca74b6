package faulttest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/internal/testenv"
)

// The rules every node of the cluster runs (two checks of one interval,
// so one job and one lease per batch for both): fault.fast fails the
// records the devices send at over 100 km/h (4 frames in 30),
// fault.fix never fails (8 satellites); both judge every record.
var clusterRules = map[string]string{
	"fault.fast.check.hcl": `check "fault.fast" {
  dimension = "validity"
  fail_if   = "speed > 100"
  reason    = "speed {speed} km/h"
}
`,
	"fault.fix.check.hcl": `check "fault.fix" {
  dimension = "validity"
  fail_if   = "sats < 3"
}
`,
}

// clusterNode is one fleetcore process of the cluster, behind HAProxy.
type clusterNode struct {
	id      string
	bin     string
	cfgPath string
	listen  string // its Teltonika listener (PROXY protocol), HAProxy's backend
	api     string // its API, for /readyz and /metrics
	procs   []*process
}

// clusterNodeConfig is node id's configuration: the multi-host Postgres
// URL, the three RabbitMQ nodes, its own spool and compile cache, the
// shared rules folder, and fast probes, replay and rule runs so a fault
// takes seconds.
func clusterNodeConfig(id, dbURL string, amqpURLs []string, spoolDir, rulesDir, cacheDir, api, listen string) string {
	urls := make([]string, len(amqpURLs))
	for i, u := range amqpURLs {
		urls[i] = fmt.Sprintf("%q", u)
	}
	return fmt.Sprintf(`log_level = "info"
node_id   = %q
database {
  url             = %q
  max_conns       = 6
  create_database = false
  write_timeout   = "1s"
  connect_timeout = "1s"
}
amqp {
  urls            = [%s]
  queue_type      = "quorum"
  confirm_timeout = "2s"
  reconnect_max   = "300ms"
}
spool { dir = %q }
ingest {
  batch_max_age = "2ms"
  breaker_probe = "200ms"
}
organizer { replay_interval = "200ms" }
rules {
  dir            = %q
  cache_dir      = %q
  interval       = "250ms"
  batch_size     = 256
  max_batch_size = 1024
}
api { address = %q }
listener "teltonika" {
  address        = %q
  proxy_protocol = true
}
`, id, dbURL, strings.Join(urls, ", "), spoolDir, rulesDir, cacheDir, api, listen)
}

// start runs the node's process and waits until /readyz answers 200.
func (c *clusterNode) start(t *testing.T) {
	t.Helper()
	p := startProcessReady(t, c.bin, c.cfgPath, func() bool { return ready(c.api) })
	c.procs = append(c.procs, p)
}

func (c *clusterNode) kill(t *testing.T) { c.procs[len(c.procs)-1].kill(t) }

func ready(api string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// phase is one fault of the cluster test: a fleet of its own (devices no
// other phase uses) and what the rule watermarks saw meanwhile.
type phase struct {
	name  string
	l     *load
	rules *rulePoller
}

// phaseRow is one line of the test's table.
type phaseRow struct {
	name            string
	rep             report
	gap             time.Duration
	fault           time.Duration
	batches         int64
	nodes           []string
	failover, spool int
	rulesOnce       bool
}

// TestIntegrationFaultCluster is issue 19's combined fault test: three
// fleetcore processes behind HAProxy (PROXY protocol v2), a three-node
// RabbitMQ cluster with the quorum failover queue, a Postgres primary with
// a synchronous standby (multi-host URL, target_session_attrs=read-write;
// the nodes reach both servers through fault proxies so Postgres can be
// cut), and Teltonika devices, each from its own address, resending until
// acked. In turn: (1) one fleetcore node is SIGKILLed and restarted, (2)
// one RabbitMQ node is killed while Postgres is cut off, (3) the Postgres
// primary is killed and the standby promoted. After each: every acked
// record stored once (lost 0, duplicates 0), the longest wait a device had
// for an ack, and every rule version's batches evaluated exactly once
// across the nodes (no batch twice, none skipped). The table it logs is
// in core/failover/README.md.
func TestIntegrationFaultCluster(t *testing.T) {
	testenv.Integration(t)
	begin := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fleetcore")
	// Build while the clusters start; the temp dir outlives the build.
	var buildErr error
	built := make(chan struct{})
	go func() { defer close(built); buildErr = goBuildFleetcore(bin) }()
	t.Cleanup(func() { <-built })

	pg := testenv.StartPGPair(t)
	pg.Exec(0, "CREATE DATABASE fleetcore")
	pgProxies := []*testenv.Proxy{
		testenv.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", pg.Ports[0])),
		testenv.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", pg.Ports[1])),
	}
	nodeDB := fmt.Sprintf("postgres://postgres@%s,%s/fleetcore?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		pgProxies[0].Addr(), pgProxies[1].Addr())
	checkDB := pg.MultiHostURL("fleetcore") // the test's own view, never cut
	rc := testenv.StartRabbitCluster(t, 3)
	<-built
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range clusterRules {
		if err := os.WriteFile(filepath.Join(rulesDir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nodes := make([]*clusterNode, 3)
	var backends []string
	for i := range nodes {
		nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
		n := &clusterNode{id: fmt.Sprintf("node%d", i), bin: bin, cfgPath: filepath.Join(nd, "fleetcore.hcl"),
			listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), api: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
		if err := os.MkdirAll(nd, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := clusterNodeConfig(n.id, nodeDB, rc.URLs, filepath.Join(nd, "spool"), rulesDir, filepath.Join(nd, "wasm-cache"), n.api, n.listen)
		if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		backends = append(backends, n.listen)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range nodes {
			for i, p := range n.procs {
				t.Logf("%s, process %d, log:\n%s", n.id, i+1, tail(p.output(), 60))
			}
		}
	})
	for _, n := range nodes {
		n.start(t)
	}
	lb := testenv.StartHAProxy(t, backends...)
	check, err := pgxpool.New(context.Background(), checkDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(check.Close)
	setup := time.Since(begin)
	addr := func() string { return lb.Addr }
	var rows []phaseRow

	newPhase := func(name string, first int) *phase {
		return &phase{name: name, rules: startRulePoller(t, check),
			l: startLoadWith(t, addr, devices, perFrame, pace, loadOptions{first: first, sourceIPs: true})}
	}
	// finish settles the phase: the load stopped, every acked record
	// stored once, every record judged once by each rule.
	finish := func(ph *phase, from, to time.Time) phaseRow {
		t.Helper()
		// Every device, wherever its connection was, is served again.
		deadline := time.Now().Add(30 * time.Second)
		for ph.l.devicesAckedSince(to) < devices {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d of %d devices acked after the fault", ph.name, ph.l.devicesAckedSince(to), devices)
			}
			time.Sleep(20 * time.Millisecond)
		}
		ph.l.stop()
		rep := ph.l.settle(t, ph.name, checkDB, 60*time.Second, from, to)
		gap, dev := ph.l.longestGap()
		t.Logf("%s: longest ack gap %v (device %s)", ph.name, gap.Round(time.Millisecond), dev)
		batches, nodeIDs, once := ph.rules.stop(t)
		paths := devicePaths(t, check, ph.l)
		row := phaseRow{name: ph.name, rep: rep, gap: gap, fault: to.Sub(from), batches: batches,
			nodes: nodeIDs, failover: paths["failover"], spool: paths["spool"], rulesOnce: once}
		rows = append(rows, row)
		return row
	}

	// 1. A fleetcore node SIGKILLed: its devices reconnect through the
	// balancer to another node and resend what was not acked; the node
	// comes back (its own spool, empty here: Postgres was up).
	ph := newPhase("fleetcore node SIGKILL", 0)
	ph.l.waitAcks(200, 30*time.Second)
	if open, _ := metricAt(t, nodes[1].api, "fleetcore_connections_open"); open < 1 {
		t.Fatalf("node1 serves no device before it is killed (open connections %v)", open)
	}
	from := time.Now()
	nodes[1].kill(t)
	ph.l.hold(2*time.Second, 200)
	nodes[1].start(t)
	to := time.Now()
	ph.l.waitAcks(200, 30*time.Second)
	if r := finish(ph, from, to); r.rep.Resends == 0 {
		t.Errorf("%s: no device resent a frame: the kill hit no device", r.name)
	}

	// 2. A RabbitMQ node killed during a Postgres cut: batches fail over
	// to the quorum queue, the node every link uses dies, the links go
	// on through another node; Postgres comes back and the queue is
	// replayed.
	ph = newPhase("RabbitMQ node killed during a Postgres cut", 100)
	ph.l.waitAcks(200, 30*time.Second)
	from = time.Now()
	for _, p := range pgProxies {
		p.Cut()
	}
	ph.l.hold(2*time.Second, 200)
	rc.Kill(0)
	ph.l.hold(3*time.Second, 200)
	for _, p := range pgProxies {
		p.Restore()
	}
	to = time.Now()
	ph.l.waitAcks(200, 30*time.Second)
	if r := finish(ph, from, to); r.failover == 0 {
		t.Errorf("%s: no record took the failover path (spool %d)", r.name, r.spool)
	}
	rc.Restart(0) // one machine at a time: the broker node is back for phase 3

	// 3. The Postgres primary killed and the standby promoted: batches
	// go to RabbitMQ while no server takes writes, then the nodes find
	// the new primary through the multi-host URL.
	ph = newPhase("Postgres primary killed, standby promoted", 200)
	ph.l.waitAcks(200, 30*time.Second)
	from = time.Now()
	pg.Kill(0)
	ph.l.hold(2*time.Second, 100)
	pg.Promote()
	to = time.Now()
	ph.l.waitAcks(200, 60*time.Second)
	if r := finish(ph, from, to); r.failover+r.spool == 0 {
		t.Errorf("%s: no record took a failover tier while there was no primary", r.name)
	}
	// Each node's store noticed the new server and forgot the keys it
	// remembered as stored on the old one.
	for _, n := range nodes {
		if out := n.procs[len(n.procs)-1].output(); !strings.Contains(out, "connected to another Postgres server than before") {
			t.Errorf("%s did not report the promoted standby as another server (its recent-key cache was kept)", n.id)
		}
	}

	// Across the phases: still nothing stored twice, and no node refused
	// a connection from the balancer (health checks send LOCAL headers).
	got, _ := stored(t, checkDB)
	for k, n := range got {
		if n > 1 {
			t.Errorf("record %v stored %d times", k, n)
		}
	}
	for _, n := range nodes {
		if v, ok := metricAt(t, n.api, "fleetcore_proxy_header_refused_total"); !ok || v != 0 {
			t.Errorf("%s: fleetcore_proxy_header_refused_total %v (exposed %v), want 0", n.id, v, ok)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "combined fault test: %d devices per phase behind HAProxy, 3 fleetcore nodes, 3 RabbitMQ nodes, Postgres primary + synchronous standby (setup %v, total %v)\n",
		devices, setup.Round(time.Second), time.Since(begin).Round(time.Second))
	b.WriteString("| fault | fault window | acked | stored | lost | duplicates | via failover / spool | resends | longest ack gap | rule batches (nodes committing) | each batch once |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %v | %d | %d | %d | %d | %d / %d | %d | %v | %d (%s) | %s |\n",
			r.name, r.fault.Round(100*time.Millisecond), r.rep.Acked, r.rep.Stored, r.rep.Lost, r.rep.Duplicates,
			r.failover, r.spool, r.rep.Resends, r.gap.Round(time.Millisecond), r.batches, strings.Join(r.nodes, ", "),
			yes(r.rulesOnce))
	}
	t.Log("\n" + b.String())
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// devicePaths counts the stored records of l's devices by path.
func devicePaths(t *testing.T, pool *pgxpool.Pool, l *load) map[string]int {
	t.Helper()
	var devs []string
	for d := range l.devs {
		devs = append(devs, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT path, count(*) FROM signals WHERE device_id = ANY($1) GROUP BY 1`, devs)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	paths := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		paths[p] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return paths
}

// watermark is a rule version's rule_watermarks row.
type watermark struct {
	rule, version                                string
	startID, lastID, evaluated, sampled, batches int64
	updatedBy                                    string
}

func watermarks(ctx context.Context, pool *pgxpool.Pool) (map[[2]string]watermark, error) {
	rows, err := pool.Query(ctx, `SELECT rule, rule_version, start_id, last_id, evaluated, sampled_out, batches, updated_by FROM rule_watermarks`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ws := map[[2]string]watermark{}
	for rows.Next() {
		var w watermark
		if err := rows.Scan(&w.rule, &w.version, &w.startID, &w.lastID, &w.evaluated, &w.sampled, &w.batches, &w.updatedBy); err != nil {
			return nil, err
		}
		ws[[2]string{w.rule, w.version}] = w
	}
	return ws, rows.Err()
}

// rulePoller watches the rule watermarks during a phase and notes which
// nodes commit batches (the node that advanced a watermark last, read
// every 50 ms: a node that committed twice between two reads is seen
// once, so the names are who took part, not a count per node).
type rulePoller struct {
	pool   *pgxpool.Pool
	cancel context.CancelFunc
	done   chan struct{}
	first  map[[2]string]watermark

	mu    sync.Mutex
	nodes map[string]bool
}

func startRulePoller(t *testing.T, pool *pgxpool.Pool) *rulePoller {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	first, err := watermarks(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	p := &rulePoller{pool: pool, cancel: cancel, done: make(chan struct{}), first: first, nodes: map[string]bool{}}
	go func() {
		defer close(p.done)
		last := first
		for ctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
			ws, err := watermarks(qctx, pool)
			qcancel()
			if err == nil { // Postgres may be down: try again
				for k, w := range ws {
					if w.batches > last[k].batches {
						p.mu.Lock()
						p.nodes[w.updatedBy] = true
						p.mu.Unlock()
					}
				}
				last = ws
			}
			pause(ctx, 50*time.Millisecond)
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *rulePoller) halt() {
	p.cancel()
	<-p.done
}

// stop waits until every rule version has judged every stored signal,
// checks that each did so exactly once, and returns the batches committed
// since the poller started (all versions), the nodes seen committing and
// whether every check held.
func (p *rulePoller) stop(t *testing.T) (int64, []string, bool) {
	t.Helper()
	ws := rulesCaughtUp(t, p.pool, 60*time.Second)
	p.halt()
	once := checkRulesOnce(t, p.pool, ws)
	var batches int64
	for k, w := range ws {
		batches += w.batches - p.first[k].batches
	}
	var nodes []string
	for n := range p.nodes {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	return batches, nodes, once
}

// rulesCaughtUp waits until every rule of clusterRules has a watermark at
// or past the highest stored signal id.
func rulesCaughtUp(t *testing.T, pool *pgxpool.Pool, timeout time.Duration) map[[2]string]watermark {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var maxID int64
		err := pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM signals`).Scan(&maxID)
		var ws map[[2]string]watermark
		if err == nil {
			ws, err = watermarks(ctx, pool)
		}
		cancel()
		if err == nil && len(ws) == len(clusterRules) {
			behind := 0
			for _, w := range ws {
				if w.lastID < maxID {
					behind++
				}
			}
			if behind == 0 {
				return ws
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not caught up after %v: highest signal id %d, watermarks %+v (%v)", timeout, maxID, ws, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkRulesOnce checks, for every rule version, that the signals up to
// its watermark were each judged once: the watermark's count and the
// hourly statistics (which add up every batch's verdicts, so a batch
// evaluated twice counts twice) both equal the stored signals in its
// range, no batch failed, and fault.fast has a finding for every signal
// over 100 km/h in the range (none skipped). It reports whether all held.
func checkRulesOnce(t *testing.T, pool *pgxpool.Pool, ws map[[2]string]watermark) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		ok = false
		t.Errorf(format, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count := func(sql string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	for _, w := range ws {
		signals := count(`SELECT count(*) FROM signals WHERE id > $1 AND id <= $2`, w.startID, w.lastID)
		stats := count(`SELECT coalesce(sum(evaluated), 0) FROM rule_stats WHERE rule = $1 AND rule_version = $2`, w.rule, w.version)
		errs := count(`SELECT count(*) FROM rule_errors WHERE rule = $1 AND rule_version = $2`, w.rule, w.version)
		if w.evaluated+w.sampled != signals || w.sampled != 0 {
			fail("%s %s: watermark counts %d evaluated + %d sampled out, %d signals in its range: a batch skipped or evaluated twice",
				w.rule, w.version, w.evaluated, w.sampled, signals)
		}
		if stats != signals {
			fail("%s %s: rule_stats count %d evaluations of %d signals: a batch evaluated twice or lost", w.rule, w.version, stats, signals)
		}
		if errs != 0 {
			fail("%s %s: %d batches not evaluated (rule_errors)", w.rule, w.version, errs)
		}
		if w.rule == "fault.fast" {
			want := count(`SELECT count(*) FROM signals WHERE id > $1 AND id <= $2 AND speed > 100`, w.startID, w.lastID)
			got := count(`SELECT count(*) FROM findings WHERE rule = $1 AND rule_version = $2`, w.rule, w.version)
			if got != want || want == 0 {
				fail("fault.fast: %d findings, want %d (signals over 100 km/h up to its watermark)", got, want)
			}
		}
	}
	return ok
}
