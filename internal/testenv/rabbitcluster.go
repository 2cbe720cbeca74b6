package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RabbitCluster is a private RabbitMQ cluster: n nodes of the machine's
// rabbitmq-server, each with its own node name, AMQP and distribution
// ports, data and log folders, config file (no plugins, so no management
// port), and one Erlang cookie in a private HOME; joined with rabbitmqctl
// join_cluster. The shared node (rabbit@localhost on 5672) is never
// touched. The nodes are killed when the test ends.
type RabbitCluster struct {
	// URLs are the nodes' AMQP URLs (guest/guest, vhost /), in node order.
	URLs []string
	// Nodes are the Erlang node names.
	Nodes []string

	t    testing.TB
	home string
	dir  string
	dist []string // distribution ports
	mu   sync.Mutex
	cmds []*exec.Cmd
	done []chan struct{}
	logs []*strings.Builder
}

const rabbitBin = "/usr/lib/rabbitmq/bin"

// StartRabbitCluster boots n clustered nodes (about 10 s each on a busy
// machine, started in parallel).
func StartRabbitCluster(t testing.TB, n int) *RabbitCluster {
	t.Helper()
	Integration(t)
	if _, err := os.Stat(filepath.Join(rabbitBin, "rabbitmq-server")); err != nil {
		missing(t, "rabbitmq-server", err)
	}
	dir := t.TempDir()
	rc := &RabbitCluster{t: t, dir: dir, home: filepath.Join(dir, "home")}
	if err := os.MkdirAll(rc.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rc.home, ".erlang.cookie"), []byte(Unique("cookie")), 0o400); err != nil {
		t.Fatal(err)
	}
	prefix := strings.ReplaceAll(Unique("fc"), "_", "")
	for i := range n {
		rc.Nodes = append(rc.Nodes, fmt.Sprintf("%s%d@localhost", prefix, i))
		port := FreePort(t)
		rc.URLs = append(rc.URLs, fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port))
		rc.dist = append(rc.dist, fmt.Sprint(FreePort(t)))
		rc.cmds = append(rc.cmds, nil)
		rc.done = append(rc.done, nil)
		rc.logs = append(rc.logs, nil)
		nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
		for _, sub := range []string{"mnesia", "log"} {
			if err := os.MkdirAll(filepath.Join(nd, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		conf := fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\nloopback_users = none\n", port)
		if err := os.WriteFile(filepath.Join(nd, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nd, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nd, "rabbitmq-env.conf"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(rc.stopAll)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		rc.start(i)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = rc.await(i) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rabbitmq node %s did not start: %v\n%s", rc.Nodes[i], err, rc.log(i))
		}
	}
	for i := 1; i < n; i++ {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", rc.Nodes[0]}, {"start_app"}} {
			if err := rc.ctl(i, 60*time.Second, args...); err != nil {
				t.Fatalf("clustering %s: rabbitmqctl %s: %v", rc.Nodes[i], strings.Join(args, " "), err)
			}
		}
	}
	return rc
}

// env is the environment of node i's server and of rabbitmqctl for it.
func (rc *RabbitCluster) env(i int) []string {
	nd := filepath.Join(rc.dir, fmt.Sprintf("node%d", i))
	port := strings.TrimSuffix(strings.TrimPrefix(rc.URLs[i], "amqp://guest:guest@127.0.0.1:"), "/")
	return append(os.Environ(),
		"HOME="+rc.home,
		"RABBITMQ_NODENAME="+rc.Nodes[i],
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+port,
		"RABBITMQ_DIST_PORT="+rc.dist[i],
		"RABBITMQ_MNESIA_BASE="+filepath.Join(nd, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(nd, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(nd, "rabbitmq.conf"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(nd, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(nd, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(nd, "pid"),
		"RABBITMQ_LOGS=-", // to the captured stdout
		"ERL_EPMD_ADDRESS=127.0.0.1",
	)
}

func (rc *RabbitCluster) start(i int) {
	cmd := exec.Command(filepath.Join(rabbitBin, "rabbitmq-server"))
	cmd.Env = rc.env(i)
	cmd.Dir = rc.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		rc.t.Fatalf("starting rabbitmq-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // the exit shows in done
	rc.mu.Lock()
	rc.cmds[i], rc.done[i], rc.logs[i] = cmd, done, log
	rc.mu.Unlock()
}

func (rc *RabbitCluster) log(i int) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	select {
	case <-rc.done[i]:
		return rc.logs[i].String()
	default:
		return "(node running)"
	}
}

// await waits until node i has written its pid file and its
// application runs (rabbitmqctl wait).
func (rc *RabbitCluster) await(i int) error {
	pid := filepath.Join(rc.dir, fmt.Sprintf("node%d", i), "pid")
	return rc.ctl(i, 100*time.Second, "wait", "--timeout", "90", pid)
}

// ctl runs rabbitmqctl against node i.
func (rc *RabbitCluster) ctl(i int, timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(rabbitBin, "rabbitmqctl"), append([]string{"-n", rc.Nodes[i]}, args...)...)
	cmd.Env = rc.env(i)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Ctl runs rabbitmqctl against node i and fails the test on an error.
func (rc *RabbitCluster) Ctl(i int, args ...string) {
	rc.t.Helper()
	if err := rc.ctl(i, 60*time.Second, args...); err != nil {
		rc.t.Fatalf("rabbitmqctl -n %s %s: %v", rc.Nodes[i], strings.Join(args, " "), err)
	}
}

// Kill ends node i at once (SIGKILL to its process group: the Erlang VM
// and its port programs), as a machine that dies.
func (rc *RabbitCluster) Kill(i int) {
	rc.mu.Lock()
	cmd, done := rc.cmds[i], rc.done[i]
	rc.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // may have exited
	<-done
}

// Restart starts a killed node i again (it rejoins the cluster from its
// own data) and waits until it runs.
func (rc *RabbitCluster) Restart(i int) {
	rc.t.Helper()
	rc.start(i)
	if err := rc.await(i); err != nil {
		rc.t.Fatalf("restarting %s: %v\n%s", rc.Nodes[i], err, rc.log(i))
	}
}

func (rc *RabbitCluster) stopAll() {
	for i := range rc.cmds {
		rc.Kill(i)
	}
}

// CtlOut runs rabbitmqctl against node i and returns its output (and the
// error, if any, in the text).
func (rc *RabbitCluster) CtlOut(i int, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(rabbitBin, "rabbitmqctl"), append([]string{"-n", rc.Nodes[i]}, args...)...)
	cmd.Env = rc.env(i)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s\n(error: %v)", out, err)
	}
	return string(out)
}
