package api

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// dummyPool is a pool that never connects (New only checks it is set).
func dummyPool(t *testing.T) *pgxpool.Pool {
	p, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
