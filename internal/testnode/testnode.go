// Package testnode runs an in-process fleetcore node for a test.
//
// A node that stops on its own (a database that refuses, a listener
// address already taken, a dependency that went away mid-run) fails the
// test at once with the node's error; the harness never waits for a node
// that is already gone.
package testnode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

const (
	// readyTimeout bounds the start: compiling the eleven built-in rules
	// on a cold cache took over 4 minutes under -race with the rest of
	// the suite running on two cores (tests share testenv.WasmCache, so
	// only the first pays).
	readyTimeout = 6 * time.Minute
	// stopTimeout bounds the wait at cleanup for a node that was asked to
	// stop (the node's own shutdown gives the gateway and ingest 30s each).
	stopTimeout = 2 * time.Minute
)

// Run runs a node on cfg with the decoders of reg, logging to log, until
// the test ends, and waits until it is ready and its rules and drop-in
// decoders are live. ctx is the node's: it is
// cancelled when the test ends, or as soon as the node stops on its own
// (context.Cause then says why). A node that stops before it is ready
// fails the test at once with its error; one that stops while the test
// runs fails it (t.Errorf) the moment it stops.
func Run(t *testing.T, cfg *config.Config, reg *plugins.Registry, log hclog.Logger) (n *node.Node, ctx context.Context) {
	t.Helper()
	if cfg.API.Address == "127.0.0.1:8080" {
		// The default address: test binaries of several packages run at
		// once, so a test that did not choose one gets a free port.
		cfg.API.Address = "127.0.0.1:0"
	}
	n = node.New(cfg, reg, log)
	return n, Start(t, n)
}

// Start is Run for a node the test has built (and adjusted) itself.
func Start(t testing.TB, n *node.Node) context.Context {
	t.Helper()
	return start(t, n.Run, allClosed(n.Ready(), n.RulesLive(), n.DecodersLive()), readyTimeout)
}

// StartServing is Start returning once the node serves (Ready), without
// waiting for the rules and the drop-in decoders to compile.
func StartServing(t testing.TB, n *node.Node) context.Context {
	t.Helper()
	return start(t, n.Run, n.Ready(), readyTimeout)
}

// allClosed is closed once every channel is: a node is ready for a test
// once its listeners are bound and its first rule and decoder scans are
// done (the rules and the decoders compile in the background).
func allClosed(chans ...<-chan struct{}) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		for _, ch := range chans {
			<-ch
		}
		close(c)
	}()
	return c
}

// start runs run on a fresh context until the test ends and waits until
// ready is closed; see Run.
func start(t testing.TB, run func(context.Context) error, ready <-chan struct{}, readyTimeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	// stopped is closed (never sent on) once run has returned, so the
	// ready wait and the cleanup can both see it.
	stopped := make(chan struct{})
	var runErr error
	go func() {
		defer close(stopped)
		err := run(ctx)
		if ctx.Err() != nil {
			runErr = err // asked to stop: the cleanup reports err
			return
		}
		if err == nil {
			err = fmt.Errorf("node returned before the test ended")
		}
		err = fmt.Errorf("node stopped: %w", err)
		cancel(err)
		t.Errorf("%v", err)
	}()
	t.Cleanup(func() {
		cancel(context.Canceled)
		select {
		case <-stopped:
			if runErr != nil {
				t.Errorf("node run: %v", runErr)
			}
		case <-time.After(stopTimeout):
			t.Errorf("node still running %v after the test asked it to stop", stopTimeout)
		}
	})
	select {
	case <-ready:
	case <-stopped:
		// The run goroutine has reported the node's error.
		t.FailNow()
	case <-time.After(readyTimeout):
		t.Fatalf("node not ready after %v", readyTimeout)
	}
	return ctx
}
