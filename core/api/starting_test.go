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

// TestSetTokens: a reload's tokens replace the running ones (the old read
// token is refused, the new one served); tokens that New would refuse
// change nothing.
func TestSetTokens(t *testing.T) {
	const oldRead, newRead, admin = "old-read-token-0123456789abcdef", "new-read-token-0123456789abcdef", "admin-token-0123456789abcdef"
	s, err := New(Options{Address: "127.0.0.1:0", ReadToken: oldRead}, Deps{DB: noDB{}}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	code := func(tok string) int {
		t.Helper()
		c, _ := serve(s, "/api/decoders", "203.0.113.7:4000", tok)
		return c
	}
	if got := code(oldRead); got == http.StatusUnauthorized {
		t.Fatalf("old read token refused before SetTokens")
	}
	if err := s.SetTokens("", newRead, newRead); err == nil {
		t.Fatal("equal read and admin tokens accepted")
	}
	if err := s.SetTokens("", "short", ""); err == nil {
		t.Fatal("a short token accepted")
	}
	if got := code(oldRead); got == http.StatusUnauthorized {
		t.Fatalf("a refused SetTokens changed the tokens")
	}
	if err := s.SetTokens("", newRead, admin); err != nil {
		t.Fatal(err)
	}
	if got := code(oldRead); got != http.StatusUnauthorized {
		t.Errorf("old read token after SetTokens: %d, want 401", got)
	}
	if got := code(newRead); got == http.StatusUnauthorized {
		t.Errorf("new read token refused")
	}
	if got := code(admin); got == http.StatusUnauthorized {
		t.Errorf("new admin token refused")
	}
}
