package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGBin is where Debian's PostgreSQL 15 server programs are.
const PGBin = "/usr/lib/postgresql/15/bin"

// PGPair is a private PostgreSQL primary with a synchronous standby
// (initdb, pg_basebackup -R, synchronous_standby_names), each on a free
// port of 127.0.0.1, run as the user postgres with trust authentication.
// The shared server on 5432 is not touched. Both are stopped when the
// test ends.
type PGPair struct {
	// Ports are the primary's (0) and the standby's (1).
	Ports [2]int
	dirs  [2]string
	t     testing.TB
	cred  *syscall.Credential
}

// StartPGPair initialises the primary, clones the standby from it and
// waits until the standby streams synchronously.
func StartPGPair(t testing.TB) *PGPair {
	t.Helper()
	Integration(t)
	if _, err := os.Stat(filepath.Join(PGBin, "initdb")); err != nil {
		missing(t, "PostgreSQL 15 server programs", err)
	}
	p := &PGPair{t: t}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "the user postgres", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	root, err := os.MkdirTemp("", "fcpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if p.cred != nil {
		if err := os.Chown(root, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		p.Ports[i] = FreePort(t)
		p.dirs[i] = filepath.Join(root, []string{"primary", "standby"}[i])
	}
	p.run("initdb", "-D", p.dirs[0], "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = replica
max_wal_senders = 5
hot_standby = on
synchronous_standby_names = 'standby'
synchronous_commit = on
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 60
`, p.Ports[0], root)
	p.appendConf(0, conf)
	if err := os.WriteFile(filepath.Join(p.dirs[0], "pg_hba.conf"),
		[]byte("local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.chown(filepath.Join(p.dirs[0], "pg_hba.conf"))
	t.Cleanup(func() { p.stop(0); p.stop(1) })
	p.Start(0)
	p.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Ports[0]), "-U", "postgres", "-D", p.dirs[1], "-R", "-X", "stream", "--no-sync")
	// postgresql.auto.conf (where -R wrote primary_conninfo) wins over
	// postgresql.conf: the standby's settings go there, after it.
	p.appendConfFile(1, "postgresql.auto.conf", fmt.Sprintf("port = %d\ncluster_name = 'standby'\nprimary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=standby'\n", p.Ports[1], p.Ports[0]))
	p.Start(1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state string
		err := p.query(0, "SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'), '')", &state)
		if err == nil && state == "sync" {
			return p
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.dirs[1] + ".log")
			t.Fatalf("standby not streaming synchronously after 30 s (state %q, %v); its log:\n%s", state, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is a libpq URL of database db on node i (0 primary, 1 standby).
func (p *PGPair) URL(i int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Ports[i], db)
}

// MultiHostURL names both servers, for a client that must find the one
// that accepts writes (target_session_attrs=read-write).
func (p *PGPair) MultiHostURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		p.Ports[0], p.Ports[1], db)
}

// Exec runs sql on database postgres of node i.
func (p *PGPair) Exec(i int, sql string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL(i, "postgres"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		p.t.Fatalf("%s: %v", sql, err)
	}
}

func (p *PGPair) query(i int, sql string, dst ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL(i, "postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.QueryRow(ctx, sql).Scan(dst...)
}

// Start starts node i (pg_ctl start -w).
func (p *PGPair) Start(i int) {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.dirs[i], "-l", p.dirs[i]+".log", "-w", "-t", "60", "start")
}

// Kill ends node i at once (SIGKILL to the postmaster; its backends exit
// when they notice), as a machine that dies.
func (p *PGPair) Kill(i int) {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dirs[i], "postmaster.pid"))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if pid > 0 {
		// Its backends notice the postmaster's death and exit.
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // may have exited
	}
}

// Promote makes the standby the primary (pg_ctl promote -w) and, as a
// failover manager does, clears synchronous_standby_names on it: it has
// no standby of its own, and every commit would wait for one forever.
func (p *PGPair) Promote() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.dirs[1], "-w", "-t", "60", "promote")
	p.Exec(1, "ALTER SYSTEM SET synchronous_standby_names = ''")
	p.Exec(1, "SELECT pg_reload_conf()")
}

func (p *PGPair) stop(i int) {
	cmd := p.cmd("pg_ctl", "-D", p.dirs[i], "-m", "immediate", "-w", "stop")
	cmd.Run() //nolint:errcheck // not running is fine
}

func (p *PGPair) appendConf(i int, conf string) {
	p.t.Helper()
	p.appendConfFile(i, "postgresql.conf", conf)
}

func (p *PGPair) appendConfFile(i int, name, conf string) {
	p.t.Helper()
	f, err := os.OpenFile(filepath.Join(p.dirs[i], name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + conf); err != nil {
		p.t.Fatal(err)
	}
}

func (p *PGPair) chown(path string) {
	if p.cred != nil {
		os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)) //nolint:errcheck // a failure shows when postgres reads it
	}
}

func (p *PGPair) cmd(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(PGBin, prog), args...)
	cmd.Dir = os.TempDir()
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Env = append(os.Environ(), "PGAPPNAME=fleetcore-test")
	return cmd
}

func (p *PGPair) run(prog string, args ...string) {
	p.t.Helper()
	if out, err := p.cmd(prog, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}
