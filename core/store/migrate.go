package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/core/config"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order. File names
// are NNNN_name.sql.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		b, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// migrationLock is the advisory lock key serialising migrations across
// nodes ("fleetcor" in ASCII).
const migrationLock = 0x666c656574636f72

// Migrate applies every pending migration, each in its own transaction,
// while holding a session advisory lock so concurrent nodes apply each
// migration exactly once. It returns the versions it applied.
func Migrate(ctx context.Context, conn *pgx.Conn) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("taking migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock)) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("creating schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	if err := checkNotNewer(applied, ms); err != nil {
		return nil, err
	}
	var done []int
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("applying migration %s: %w", m.Name, err)
		}
		done = append(done, m.Version)
	}
	return done, nil
}

// ErrSchemaTooNew: the database holds migrations this binary does not know
// (a newer fleetcore migrated it; this one is a downgrade).
var ErrSchemaTooNew = errors.New("database schema is newer than this fleetcore")

// checkNotNewer refuses a database with an applied migration beyond the
// newest one known.
func checkNotNewer(applied map[int]bool, ms []Migration) error {
	known := 0
	if len(ms) > 0 {
		known = ms[len(ms)-1].Version
	}
	var unknown []int
	for v := range applied {
		if v > known {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Ints(unknown)
	return fmt.Errorf("%w: it has migration(s) %v applied, this binary knows up to %d; run the fleetcore that migrated it (or newer), or restore a backup taken before that upgrade",
		ErrSchemaTooNew, unknown, known)
}

// MigrationState is one migration as `fleetcore migrate status` lists it.
type MigrationState struct {
	Version int
	Name    string
	// Applied is when it was applied (zero: pending).
	Applied time.Time
	// Unknown: applied in the database but not known to this binary.
	Unknown bool
}

// MigrationStatus lists the known migrations with their state, then any
// applied migration this binary does not know. It changes nothing.
func MigrationStatus(ctx context.Context, conn *pgx.Conn) ([]MigrationState, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	applied := map[int]MigrationState{}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	if exists {
		rows, err := conn.Query(ctx, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
		if err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		for rows.Next() {
			var m MigrationState
			if err := rows.Scan(&m.Version, &m.Name, &m.Applied); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading schema_migrations: %w", err)
			}
			applied[m.Version] = m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
	}
	var out []MigrationState
	for _, m := range ms {
		st := MigrationState{Version: m.Version, Name: m.Name}
		if a, ok := applied[m.Version]; ok {
			st.Applied = a.Applied
		}
		delete(applied, m.Version)
		out = append(out, st)
	}
	var extra []MigrationState
	for _, a := range applied {
		a.Unknown = true
		extra = append(extra, a)
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Version < extra[j].Version })
	return append(out, extra...), nil
}

// EnsureDatabase creates the database named in dbURL when it does not
// exist, connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, dbURL string) (created bool, err error) {
	defer func() { err = config.RedactError(err, dbURL) }()
	u, err := url.Parse(dbURL)
	if err != nil {
		return false, fmt.Errorf("parsing database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return false, nil
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err == nil {
		conn.Close(ctx)
		return false, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return false, fmt.Errorf("connecting to database: %w", err)
	}
	admin := *u
	admin.Path = "/postgres"
	ac, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return false, fmt.Errorf("connecting to create database %s: %w", name, err)
	}
	defer ac.Close(ctx)
	if _, err := ac.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: a concurrent node won
			return false, nil
		}
		return false, fmt.Errorf("creating database %s: %w", name, err)
	}
	return true, nil
}
