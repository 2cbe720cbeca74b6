package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationSessionLock: of two nodes asking, one holds the lock;
// it passes on when the holder closes, and when the holder's session is
// killed (a node that died), the next asker takes it and the old holder
// knows it lost it.
func TestIntegrationSessionLock(t *testing.T) {
	testenv.Integration(t)
	st := openStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := store.NewSessionLock(st.Pool(), store.MetricsLock)
	b := store.NewSessionLock(st.Pool(), store.MetricsLock)
	defer a.Close()
	defer b.Close()
	if !a.Held(ctx) || b.Held(ctx) || !a.Held(ctx) {
		t.Fatal("want a holding and b not")
	}
	a.Close()
	if !b.Held(ctx) || a.Held(ctx) {
		t.Fatal("after a closed: want b holding and a not")
	}
	// b's session dies (its node is gone, or the connection broke).
	var killed int
	if err := st.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d lock holders, want 1", killed)
	}
	// The server frees the lock as the session ends; a takes it once it
	// has (pg_terminate_backend only signals).
	deadline := time.Now().Add(10 * time.Second)
	for !a.Held(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("a never took the lock of the killed session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.Held(ctx) {
		t.Fatal("b still believes it holds the lock after its session was killed")
	}
}
