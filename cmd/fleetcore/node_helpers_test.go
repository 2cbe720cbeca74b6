package main

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/plugins"
)

// runTestNode runs an in-process node on cfg, logging at level and above
// to the test, until the test ends, and waits until it is ready; ctx is
// the node's.
func runTestNode(t *testing.T, cfg *config.Config, level hclog.Level) (*node.Node, context.Context) {
	t.Helper()
	n := node.New(cfg, plugins.Decoders, hclog.New(&hclog.LoggerOptions{Level: level, Output: testWriter{t}}))
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
		t.Fatal("node not ready")
	}
	return n, ctx
}
