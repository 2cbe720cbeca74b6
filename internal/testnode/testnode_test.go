package testnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/plugins"
)

// childEnv names the case TestChildStopsEarly runs when this test binary
// is started by TestRunFailsFastWhenTheNodeStopsEarly.
const childEnv = "FLEETCORE_TESTNODE_CHILD"

// childDeadline is how long a child may take: a hung harness would take
// until the test timeout, a working one well under a second.
const childDeadline = 60 * time.Second

// errFake is what the faulty start function returns.
var errFake = errors.New("fake node: listen tcp 127.0.0.1:5027: bind: address already in use")

// TestRunFailsFastWhenTheNodeStopsEarly runs, in a child test process (a
// failing harness must fail a test, and a hanging one must not hang this
// one), a node that stops before it is ready; the child must fail at once
// and print the node's error.
func TestRunFailsFastWhenTheNodeStopsEarly(t *testing.T) {
	cases := []struct {
		name string
		want string // in the child's output
	}{
		{"database refuses", "connection refused"},
		{"start function fails", errFake.Error()},
		{"start function returns nil", "node returned before the test ended"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), childDeadline)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildStopsEarly$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+tc.name)
			cmd.WaitDelay = 5 * time.Second
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			begin := time.Now()
			err := cmd.Run()
			took := time.Since(begin)
			if ctx.Err() != nil {
				t.Fatalf("the harness hung: the child was still running after %v (killed); output:\n%s", childDeadline, out.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("child: want a failing test (exit status 1), got %v; output:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "--- FAIL: TestChildStopsEarly") || !strings.Contains(out.String(), "node stopped") ||
				!strings.Contains(out.String(), tc.want) {
				t.Fatalf("child output does not fail TestChildStopsEarly with \"node stopped: …%s…\":\n%s", tc.want, out.String())
			}
			t.Logf("child failed after %v", took.Round(time.Millisecond))
		})
	}
}

// TestChildStopsEarly is TestRunFailsFastWhenTheNodeStopsEarly's child: it
// runs only in the process that test starts, and fails there.
func TestChildStopsEarly(t *testing.T) {
	which := os.Getenv(childEnv)
	switch which {
	case "":
		t.Skip("runs as TestRunFailsFastWhenTheNodeStopsEarly's child process")
	case "database refuses":
		Run(t, refusingConfig(t), plugins.NewRegistry(), hclog.NewNullLogger())
	case "start function fails":
		start(t, func(context.Context) error { return errFake }, make(chan struct{}), childDeadline)
	case "start function returns nil":
		start(t, func(context.Context) error { return nil }, make(chan struct{}), childDeadline)
	default:
		t.Fatalf("unknown case %q", which)
	}
	t.Fatal("testnode returned for a node that stopped before it was ready")
}

// TestStopsWhileTheTestRuns: a node that stops after it was ready fails
// the test and cancels the node's context with the node's error, so a
// test blocked on ctx returns.
func TestStopsWhileTheTestRuns(t *testing.T) {
	ready := make(chan struct{})
	die := make(chan struct{})
	ft := &fakeT{TB: t}
	ctx := start(ft, func(ctx context.Context) error {
		close(ready)
		select {
		case <-die:
			return errFake
		case <-ctx.Done():
			return nil
		}
	}, ready, childDeadline)
	close(die)
	select {
	case <-ctx.Done():
	case <-time.After(childDeadline):
		t.Fatal("the node's context is not cancelled after the node stopped")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errFake) {
		t.Errorf("context cause = %v, want the node's error", cause)
	}
	ft.runCleanups()
	if len(ft.errs) != 1 || !strings.Contains(ft.errs[0], errFake.Error()) {
		t.Errorf("reported %q, want one error with the node's", ft.errs)
	}
}

// TestCleanupStopsTheNode: at the end of the test the node is asked to
// stop and its error, if any, is reported.
func TestCleanupStopsTheNode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stopErr error
		want    int
	}{
		{"clean stop", nil, 0},
		{"stop error", errFake, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready := make(chan struct{})
			ft := &fakeT{TB: t}
			start(ft, func(ctx context.Context) error {
				close(ready)
				<-ctx.Done()
				return tc.stopErr
			}, ready, childDeadline)
			ft.runCleanups()
			if len(ft.errs) != tc.want {
				t.Errorf("reported %q, want %d errors", ft.errs, tc.want)
			}
		})
	}
}

// fakeT records errors and cleanups instead of failing the test.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func (f *fakeT) Errorf(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, a...))
}

func (f *fakeT) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// refusingConfig is a node whose database refuses connections and that has
// no other tier to fall back on, so it stops while starting.
func refusingConfig(t testing.TB) *config.Config {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused
	cfg, err := config.Parse("refusing.hcl", []byte(`
database {
  url             = "postgres://postgres@`+addr+`/none?sslmode=disable"
  connect_timeout = "2s"
}
spool { enabled = false }
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Address = "127.0.0.1:0"
	return cfg
}
