package main

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/node"
	"github.com/fleetcore/fleetcore/internal/testnode"
	"github.com/fleetcore/fleetcore/plugins"
)

// runTestNode runs an in-process node with every decoder, logging at level
// and above to the test (see testnode.Run).
func runTestNode(t *testing.T, cfg *config.Config, level hclog.Level) (*node.Node, context.Context) {
	t.Helper()
	return testnode.Run(t, cfg, plugins.Decoders, hclog.New(&hclog.LoggerOptions{Level: level, Output: testWriter{t}}))
}
