package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MetricsLock is the advisory lock key of the node that exports the
// fleet-wide database metrics ("fcmetric").
const MetricsLock = 0x66636d6574726963

// SessionLock is a session-level advisory lock held on a connection of its
// own (not the pool's), for as long as that connection lives: the node
// holding it does a fleet-wide duty (e.g. exporting the database's
// counts, so that a sum over nodes does not double-count). Postgres frees
// the lock when the session ends, so a node that dies or loses its
// connection hands the duty to the next node that asks.
type SessionLock struct {
	cfg *pgx.ConnConfig
	key int64

	mu   sync.Mutex
	conn *pgx.Conn
	held bool
}

// NewSessionLock returns a lock on key, connecting as pool does. It
// connects at the first Held.
func NewSessionLock(pool *pgxpool.Pool, key int64) *SessionLock {
	return &SessionLock{cfg: pool.Config().ConnConfig.Copy(), key: key}
}

// Held reports whether this process holds the lock, taking it when it is
// free: it checks that the holding connection still answers (a broken
// one is closed, which frees the lock on the server). Any error counts
// as not held.
func (l *SessionLock) Held(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil && l.conn.Ping(ctx) != nil {
		l.closeLocked()
	}
	if l.conn == nil {
		c, err := pgx.ConnectConfig(ctx, l.cfg)
		if err != nil {
			return false
		}
		l.conn = c
	}
	if l.held {
		return true
	}
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&l.held); err != nil {
		l.closeLocked()
		return false
	}
	return l.held
}

func (l *SessionLock) closeLocked() {
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.conn.Close(ctx)
		cancel()
	}
	l.conn, l.held = nil, false
}

// Close ends the session (freeing the lock when held).
func (l *SessionLock) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked()
}
