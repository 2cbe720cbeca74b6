package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/core/store"
)

// TestUnreachableTellsAbsentFromRefusing: the errors a node sees opening
// the store at start, and whether it starts anyway on a later tier
// (moved here from core/node with the classification it tests).
func TestUnreachableTellsAbsentFromRefusing(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("connecting: %w", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}), true},
		{&pgconn.PgError{Code: "53300", Message: "too many clients"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{fmt.Errorf("connecting: %w", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}), false},
		{&pgconn.PgError{Code: "3D000", Message: "database does not exist"}, false},
		{fmt.Errorf("migration 0003: %w", &pgconn.PgError{Code: "42601", Message: "syntax error"}), false},
	} {
		if got := store.Unreachable(tc.err); got != tc.want {
			t.Errorf("Unreachable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
