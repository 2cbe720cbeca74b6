package store

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Singleton runs fn only if no other node (no other session of any
// process on this database) is running the job name: it holds the
// session advisory lock derived from name on a pooled connection while fn
// runs, and reports false without running fn when the lock is taken. It
// makes an organizer job fleet-wide rather than per node: with three
// nodes, a round that finds the job running on another node skips. If
// the lock's connection dies, Postgres releases the lock.
func Singleton(ctx context.Context, pool *pgxpool.Pool, name string, fn func(context.Context) error) (bool, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: taking the job lock: %w", name, err)
	}
	defer conn.Release()
	key := singletonKey(name)
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
		return false, fmt.Errorf("%s: taking the job lock: %w", name, err)
	}
	if !got {
		return false, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key) //nolint:errcheck // a dead connection releases it too
	return true, fn(ctx)
}

// singletonKey is the advisory lock key of a job name: FNV-1a of
// "fleetcore job " + name (the partition job keeps its own fixed key).
func singletonKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("fleetcore job " + name)) //nolint:errcheck // never fails
	return int64(h.Sum64())
}
