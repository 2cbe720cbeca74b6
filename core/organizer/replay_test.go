package organizer

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestReplayErrorClassification(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", errors.New("dial tcp: connection refused"), false},
		{"deadline", context.DeadlineExceeded, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, false},
		{"connection failure", &pgconn.PgError{Code: "08006"}, false},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, false},
		{"disk full", &pgconn.PgError{Code: "53100"}, false},
		{"lock not available", &pgconn.PgError{Code: "55P03"}, false},
		{"internal", &pgconn.PgError{Code: "XX000"}, false},
		{"bad value", fmt.Errorf("copying signals: %w", &pgconn.PgError{Code: "22P02"}), true},
		{"check violation", &pgconn.PgError{Code: "23514"}, true},
		// Wrong with the deployment, not the data: retried until fixed
		// (a node started before Postgres sees tables appear once its
		// probe migrates them), never dead-lettered.
		{"undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"undefined column", &pgconn.PgError{Code: "42703"}, false},
		{"permission denied", &pgconn.PgError{Code: "42501"}, false},
		{"login refused", &pgconn.PgError{Code: "28P01"}, false},
		{"no such database", &pgconn.PgError{Code: "3D000"}, false},
		{"not null violation", &pgconn.PgError{Code: "23502"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := permanent(tc.err); got != tc.want {
				t.Fatalf("permanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
