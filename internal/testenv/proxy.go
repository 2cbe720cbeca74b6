package testenv

import (
	"testing"

	"github.com/fleetcore/fleetcore/internal/faultproxy"
)

// Proxy is an in-process TCP proxy that can cut a connection path (see
// package faultproxy).
type Proxy = faultproxy.Proxy

// NewProxy starts a proxy to target that is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := faultproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
