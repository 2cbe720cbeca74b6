// Package testnode runs an in-process fleetcore node for a test.
package testnode

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

// Run runs a node on cfg with the decoders of reg, logging to log, until
// the test ends (a Run error then fails the test), and waits until it is
// ready; ctx is the node's.
func Run(t *testing.T, cfg *config.Config, reg *plugins.Registry, log hclog.Logger) (*node.Node, context.Context) {
	t.Helper()
	n := node.New(cfg, reg, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(3 * time.Minute): // compiling the rules is slow under -race on a busy machine
		t.Fatal("node not ready after 3 minutes")
	}
	return n, ctx
}
