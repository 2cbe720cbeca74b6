package faulttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/plugins"
	_ "github.com/fleetcore/fleetcore/protocols/teltonika"
)

const (
	devices  = 6
	perFrame = 4
	pace     = 10 * time.Millisecond
)

// nodeConfig is the config the in-process faults run: fast probes and
// replay so a test takes seconds.
func nodeConfig(t *testing.T, dbURL, amqpURL string) *config.Config {
	t.Helper()
	return nodeConfigWith(t, dbURL, amqpURL, `batch_max_age = "2ms"`, "")
}

// nodeConfigWith is nodeConfig with other ingest settings and more
// listeners (HCL blocks next to the teltonika one).
func nodeConfigWith(t *testing.T, dbURL, amqpURL, ingest, listeners string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("fault.hcl", []byte(`
ingest {
  `+ingest+`
  breaker_probe = "200ms"
}
organizer { replay_interval = "200ms" }
rules { enabled = false }
listener "teltonika" {
  address = "127.0.0.1:0"
}
`+listeners))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = dbURL
	cfg.Database.WriteTimeout = "1s"
	cfg.Database.ConnectTimeout = "1s"
	cfg.AMQP.URL = amqpURL
	cfg.AMQP.ConfirmTimeout = "2s"
	cfg.AMQP.ReconnectMax = "300ms"
	cfg.Spool.Dir = t.TempDir()
	cfg.API.Address = "127.0.0.1:0"
	return cfg
}

// running is a node under fault (see testnode.Start: it stops at cleanup,
// and fails the test at once if it stops on its own).
type running struct {
	n *node.Node
}

func runNode(t *testing.T, cfg *config.Config, opt node.Option) *running {
	t.Helper()
	return runNodeWith(t, cfg, plugins.Decoders, opt)
}

// runNodeWith is runNode with another decoder registry.
func runNodeWith(t *testing.T, cfg *config.Config, reg *plugins.Registry, opt node.Option) *running {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t},
		// One line per refused frame is the gateway's business (floods
		// send thousands); the suite counts those itself.
		Exclude: func(_ hclog.Level, msg string, _ ...any) bool {
			return strings.HasPrefix(msg, "frame not durable") || strings.HasPrefix(msg, "rejected frame")
		}})
	n := node.New(cfg, reg, log, opt)
	testnode.Start(t, n)
	return &running{n: n}
}

func (r *running) addr() string { return r.n.Addr("teltonika").String() }

type testWriter struct{ t *testing.T }

var logMu sync.Mutex

func (w testWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// backlogEmpty waits until the node has nothing left to replay.
func (r *running) backlogEmpty(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := r.n.Replayer().Stats()
		if (st.FailoverBacklog <= 0) && st.SpoolBacklog == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog not replayed after %v: %+v", timeout, st)
		}
		r.n.Organizer().Trigger("replay.failover")
		r.n.Organizer().Trigger("replay.spool")
		time.Sleep(100 * time.Millisecond)
	}
}

// Fault 1: Postgres unreachable, RabbitMQ up: batches fail over to the
// queue, then replay into Postgres.
func TestIntegrationFaultPostgresDownRabbitUp(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	cfg := nodeConfig(t, testenv.WithHost(db, pgProxy.Addr()), testenv.VHost(t))
	r := runNode(t, cfg, nil)
	l := startLoad(t, r.addr, devices, perFrame, pace)
	l.waitAcks(200, 20*time.Second)

	from := time.Now()
	pgProxy.Cut()
	l.hold(3*time.Second, 400) // acked while Postgres is down
	to := time.Now()
	pgProxy.Restore()
	l.waitAcks(200, 20*time.Second)
	l.stop()
	r.backlogEmpty(t, 60*time.Second)
	rep := l.settle(t, "postgres down, rabbitmq up", db, 60*time.Second, from, to)
	if rep.Paths["failover"] == 0 {
		t.Errorf("no record took the failover path: %v", rep.Paths)
	}
	fs := r.n.Failover().Stats()
	t.Logf("failover stats: %+v", fs)
	if fs.Published == 0 || fs.Replayed == 0 || fs.DeadLettered != 0 {
		t.Errorf("failover stats %+v", fs)
	}
}

// Fault 2: Postgres and RabbitMQ both unreachable: batches go to the
// spool, then replay once both are back.
func TestIntegrationFaultPostgresAndRabbitDown(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	vh := testenv.VHost(t)
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	mqProxy := testenv.NewProxy(t, testenv.HostPort(vh))
	cfg := nodeConfig(t, testenv.WithHost(db, pgProxy.Addr()), testenv.WithHost(vh, mqProxy.Addr()))
	r := runNode(t, cfg, nil)
	l := startLoad(t, r.addr, devices, perFrame, pace)
	l.waitAcks(200, 20*time.Second)

	from := time.Now()
	pgProxy.Cut()
	mqProxy.Cut()
	l.hold(3*time.Second, 400)
	to := time.Now()
	if st := r.n.Spool().Stats(); st.Writes == 0 {
		t.Errorf("spool not used while both services were down: %+v", st)
	}
	mqProxy.Restore()
	pgProxy.Restore()
	l.waitAcks(200, 20*time.Second)
	l.stop()
	r.backlogEmpty(t, 60*time.Second)
	rep := l.settle(t, "postgres and rabbitmq down", db, 60*time.Second, from, to)
	if rep.Paths["spool"] == 0 {
		t.Errorf("no record took the spool path: %v", rep.Paths)
	}
	t.Logf("spool stats: %+v", r.n.Spool().Stats())
}

// Fault 3: a private Postgres cluster killed with pg_ctl stop -m
// immediate mid-load (mid-COMMIT for some batches) and restarted.
func TestIntegrationFaultPostgresKilled(t *testing.T) {
	testenv.Integration(t)
	pg := privateCluster(t)
	db := pg.database(t)
	cfg := nodeConfig(t, db, testenv.VHost(t))
	r := runNode(t, cfg, nil)
	l := startLoad(t, r.addr, devices, perFrame, pace)
	l.waitAcks(300, 20*time.Second)

	from := time.Now()
	pg.ctl(t, "stop", "-m", "immediate")
	l.hold(3*time.Second, 300)
	pg.ctl(t, "start", "-w")
	to := time.Now()
	l.waitAcks(300, 30*time.Second)
	l.stop()
	r.backlogEmpty(t, 60*time.Second)
	rep := l.settle(t, "postgres killed -m immediate", db, 60*time.Second, from, to)
	if rep.Paths["failover"]+rep.Paths["spool"] == 0 {
		t.Errorf("nothing failed over while Postgres was down: %v", rep.Paths)
	}
}

// Fault 4: fleetcore itself SIGKILLed mid-load (while spooling, with a torn
// record appended to the spool as a crash mid-write would leave) and
// restarted; devices resend unacked frames.
func TestIntegrationFaultFleetcoreKilled(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	bin := buildFleetcore(t)
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfgPath := filepath.Join(dir, "fleetcore.hcl")
	cfgText := fmt.Sprintf(`
log_level = "info"
database {
  url = %q
  write_timeout = "1s"
  connect_timeout = "1s"
}
spool { dir = %q }
ingest {
  batch_max_age = "2ms"
  breaker_probe = "200ms"
}
organizer { replay_interval = "200ms" }
rules { enabled = false }
api {
  enabled = false
  address = "127.0.0.1:%d"
}
listener "teltonika" { address = %q }
`, testenv.WithHost(db, pgProxy.Addr()), spoolDir, testenv.FreePort(t), addr)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, bin, cfgPath, addr)
	l := startLoad(t, func() string { return addr }, devices, perFrame, pace)
	l.waitAcks(200, 20*time.Second)

	from := time.Now()
	pgProxy.Cut() // batches now go to the spool
	l.hold(2*time.Second, 300)
	p.kill(t)
	// A crash in the middle of an append leaves part of a record.
	segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no spool segment after spooling")
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3}) // length 256, 3 bytes of payload
	f.Close()
	pgProxy.Restore()
	p = startProcess(t, bin, cfgPath, addr)
	to := time.Now()
	l.waitAcks(300, 30*time.Second)
	l.stop()
	rep := l.settle(t, "fleetcore SIGKILL + torn spool", db, 60*time.Second, from, to)
	if rep.Paths["spool"] == 0 {
		t.Errorf("no record replayed from the recovered spool: %v", rep.Paths)
	}
	if !strings.Contains(p.output(), "torn or corrupt tail") {
		t.Errorf("restarted fleetcore did not report the torn spool record; log:\n%s", p.output())
	}
	// Everything replayed: segments deleted.
	deadline := time.Now().Add(30 * time.Second)
	for {
		segs, _ = filepath.Glob(filepath.Join(spoolDir, "*.seg"))
		if len(segs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool segments left after replay: %v", segs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop(t)
}

// Fault 5: the spool's disk is full (injected ENOSPC) while Postgres is
// unreachable and there is no RabbitMQ: no tier can take a batch, so
// nothing is acked (backpressure) and devices resend until Postgres is
// back.
func TestIntegrationFaultSpoolDiskFull(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	cfg := nodeConfig(t, testenv.WithHost(db, pgProxy.Addr()), "")
	ffs := &fullFS{}
	r := runNode(t, cfg, node.WithSpoolFS(ffs))
	l := startLoad(t, r.addr, devices, perFrame, pace)
	l.waitAcks(200, 20*time.Second)

	ffs.set(true)
	pgProxy.Cut()
	from := time.Now()
	// Let the devices try for a while: every frame stays unacked.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	to := time.Now()
	// Frames in flight when the fault began may have been acked just
	// after; allow one frame per device.
	if n := l.ackedBetween(from.Add(500*time.Millisecond), to); n != 0 {
		t.Errorf("%d records acked while no tier could store them", n)
	}
	if st := r.n.Spool().Stats(); st.WriteFailures == 0 {
		t.Errorf("spool never refused a write: %+v", st)
	}
	ffs.set(false)
	pgProxy.Restore()
	l.waitAcks(300, 30*time.Second)
	l.stop()
	r.backlogEmpty(t, 60*time.Second)
	rep := l.settle(t, "spool disk full (ENOSPC)", db, 60*time.Second, from, to)
	if rep.Resends == 0 {
		t.Errorf("no device had to resend during the outage")
	}
}

// fullFS fails every segment write with ENOSPC while full is set.
type fullFS struct {
	spool.OS
	mu   sync.Mutex
	full bool
}

func (f *fullFS) set(v bool) { f.mu.Lock(); f.full = v; f.mu.Unlock() }
func (f *fullFS) isFull() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.full
}

func (f *fullFS) Create(name string) (spool.File, error) {
	if f.isFull() {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	file, err := f.OS.Create(name)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: file, fs: f}, nil
}

type fullFile struct {
	spool.File
	fs *fullFS
}

func (f *fullFile) Write(p []byte) (int, error) {
	if f.fs.isFull() {
		return 0, &os.PathError{Op: "write", Path: "segment", Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

// --- private Postgres cluster ---

type cluster struct {
	bin, dir string
	port     int
}

func missing(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

func privateCluster(t *testing.T) *cluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		missing(t, "initdb under /usr/lib/postgresql/*/bin", os.ErrNotExist)
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		missing(t, "the postgres system user", err)
	}
	if os.Geteuid() != 0 {
		missing(t, "root (to run initdb as postgres)", os.ErrPermission)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	dir, err := os.MkdirTemp("", "fleetcore-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	c := &cluster{bin: filepath.Dir(bins[len(bins)-1]), dir: filepath.Join(dir, "data"), port: testenv.FreePort(t)}
	t.Cleanup(func() {
		c.run(t, "pg_ctl", "-D", c.dir, "stop", "-m", "immediate") //nolint:errcheck // may already be stopped
		os.RemoveAll(dir)
	})
	if out, err := c.run(t, "initdb", "-D", c.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.ctl(t, "start", "-w")
	return c
}

func (c *cluster) run(t *testing.T, prog string, args ...string) (string, error) {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, prog)}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) ctl(t *testing.T, args ...string) {
	t.Helper()
	full := []string{"-D", c.dir, "-l", filepath.Join(filepath.Dir(c.dir), "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, filepath.Dir(c.dir))}
	if out, err := c.run(t, "pg_ctl", append(full, args...)...); err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

func (c *cluster) database(t *testing.T) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/fleetcore?sslmode=disable", c.port)
}

// --- fleetcore as a subprocess ---

func buildFleetcore(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fleetcore")
	if err := goBuildFleetcore(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// goBuildFleetcore builds the fleetcore binary to bin (safe to call from
// any goroutine).
func goBuildFleetcore(bin string) error {
	cmd := exec.Command("go", "build", "-o", bin, "github.com/fleetcore/fleetcore/cmd/fleetcore")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building fleetcore: %v\n%s", err, out)
	}
	return nil
}

type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProcess(t *testing.T, bin, cfgPath, addr string) *process {
	t.Helper()
	return startProcessReady(t, bin, cfgPath, func() bool {
		c, err := dialDevice(context.Background(), addr, "356307042400000")
		if err == nil {
			c.close()
		}
		return err == nil
	})
}

// startProcessReady is startProcess for a node that is ready once ready
// returns true (tried every 50 ms for up to 60 s).
func startProcessReady(t *testing.T, bin, cfgPath string, ready func() bool) *process {
	t.Helper()
	p := &process{done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "-config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "FLEETCORE_") {
			env = append(env, e)
		}
	}
	p.cmd.Env = env
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }() //nolint:errcheck // killed on purpose
	t.Cleanup(func() { p.kill(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ready() {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("fleetcore exited:\n%s", p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleetcore not listening after 60s:\n%s", p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // may have exited
	<-p.done
}

func (p *process) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("fleetcore did not stop on SIGTERM")
		p.kill(t)
	}
}

// Fault 6: fleetcore starts while Postgres is unreachable. It starts
// anyway, acks through RabbitMQ, creates the schema once Postgres answers
// and replays: nothing acked is lost or duplicated.
func TestIntegrationFaultStartWithPostgresDown(t *testing.T) {
	testenv.Integration(t)
	t.Run("rabbitmq", func(t *testing.T) { startWithPostgresDown(t, testenv.VHost(t), "failover") })
	t.Run("spool only", func(t *testing.T) { startWithPostgresDown(t, "", "spool") })
}

func startWithPostgresDown(t *testing.T, amqpURL, path string) {
	db := testenv.Database(t) // created, not migrated
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	pgProxy.Cut()
	cfg := nodeConfig(t, testenv.WithHost(db, pgProxy.Addr()), amqpURL)
	// The rules on too (an empty folder: nothing to compile), as in the
	// default config: their start must not need Postgres either.
	on := true
	cfg.Rules.Enabled, cfg.Rules.Dir, cfg.Rules.Interval = &on, t.TempDir(), "200ms"
	r := runNode(t, cfg, nil)
	from := time.Now()
	l := startLoad(t, r.addr, devices, perFrame, pace)
	l.waitAcks(200, 20*time.Second)
	if tableExists(t, db, "signals") {
		t.Fatal("signals exists although fleetcore never reached Postgres")
	}
	to := time.Now()
	pgProxy.Restore()
	// The breaker's probe migrates the database, then batches go direct.
	for deadline := time.Now().Add(30 * time.Second); !r.n.Breaker().Available(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Postgres tier still down 30 s after Postgres came back")
		}
	}
	if !tableExists(t, db, "signals") {
		t.Fatal("the Postgres tier is up but signals does not exist")
	}
	l.waitAcks(200, 20*time.Second)
	l.stop()
	r.backlogEmpty(t, 60*time.Second)
	rep := l.settle(t, "started with postgres down, then "+path, db, 60*time.Second, from, to)
	if rep.Paths[path] == 0 || rep.Paths["direct"] == 0 {
		t.Errorf("want records on both the %s and the direct path: %v", path, rep.Paths)
	}
	if r.n.Failover() != nil {
		if fs := r.n.Failover().Stats(); fs.Replayed == 0 || fs.DeadLettered != 0 {
			t.Errorf("failover stats %+v", fs)
		}
	}
}

// Without a later tier (no RabbitMQ, no spool) a node that cannot reach
// Postgres refuses to start, as before: nothing could take a batch.
func TestIntegrationFaultStartWithPostgresDownAndNoOtherTier(t *testing.T) {
	testenv.Integration(t)
	db := testenv.Database(t)
	pgProxy := testenv.NewProxy(t, testenv.HostPort(db))
	pgProxy.Cut()
	cfg := nodeConfig(t, testenv.WithHost(db, pgProxy.Addr()), "")
	off := false
	cfg.Spool.Enabled = &off
	n := node.New(cfg, plugins.Decoders, hclog.NewNullLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Run(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Run with Postgres unreachable and no other tier: %v, want a start error", err)
	}
}

func tableExists(t *testing.T, dbURL, name string) bool {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
