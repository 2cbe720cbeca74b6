package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestReadyzWaitsForStarting: while Deps.Starting names something (the
// node's rules compiling), /readyz is 503 with that status although a
// storage path is up, /healthz is 200; once it is "", /readyz is 200; with
// no storage path up it is "not ready" whatever Starting says.
func TestReadyzWaitsForStarting(t *testing.T) {
	var compiling, pgUp atomic.Bool
	compiling.Store(true)
	pgUp.Store(true)
	deps := Deps{DB: noDB{}, Ready: []ReadyProbe{{Name: "postgres", Check: func(context.Context) error {
		if pgUp.Load() {
			return nil
		}
		return errors.New("down")
	}}}, Starting: func() string {
		if compiling.Load() {
			return "rules compiling"
		}
		return ""
	}}
	s, err := New(Options{Address: "127.0.0.1:0"}, deps, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	check := func(wantCode int, wantStatus string, wantReady bool) {
		t.Helper()
		code, body := serve(s, "/readyz", "127.0.0.1:4000", "")
		var got struct {
			Status string `json:"status"`
			Ready  bool   `json:"ready"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("readyz body %q: %v", body, err)
		}
		if code != wantCode || got.Status != wantStatus || got.Ready != wantReady {
			t.Fatalf("readyz %d %s, want %d %q ready=%v", code, body, wantCode, wantStatus, wantReady)
		}
		if hcode, hbody := serve(s, "/healthz", "127.0.0.1:4000", ""); hcode != http.StatusOK {
			t.Fatalf("healthz %d %s while starting", hcode, hbody)
		}
	}
	check(http.StatusServiceUnavailable, "rules compiling", false)
	pgUp.Store(false)
	check(http.StatusServiceUnavailable, "not ready", false)
	pgUp.Store(true)
	compiling.Store(false)
	check(http.StatusOK, "ready", true)
}
